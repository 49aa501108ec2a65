import { useState, type FormEvent, type KeyboardEvent } from 'react';

const DRAFT_KEY = 'chorus.draft';

function loadDraft(): string {
  try {
    return localStorage.getItem(DRAFT_KEY) ?? '';
  } catch {
    return '';
  }
}

function saveDraft(text: string): void {
  try {
    if (text) localStorage.setItem(DRAFT_KEY, text);
    else localStorage.removeItem(DRAFT_KEY);
  } catch {
    // No storage (privacy mode): the draft lives as long as the page.
  }
}

/**
 * The message box. Enter sends, Shift+Enter starts a new line, Escape stops the reply. What is
 * typed is kept across reloads, and a sent message waits in the client's outbox while offline.
 */
export function Composer({
  onSend,
  onStop,
  processing,
  queued,
}: {
  onSend: (text: string) => string | undefined;
  onStop: (() => void) | undefined;
  processing: boolean;
  queued: number;
}) {
  const [text, setText] = useState(loadDraft);
  const [problem, setProblem] = useState('');

  const update = (value: string) => {
    setText(value);
    saveDraft(value);
  };

  const submit = (event?: FormEvent) => {
    event?.preventDefault();
    const message = text.trim();
    if (!message) return;
    try {
      if (onSend(message) === undefined) return;
      update('');
      setProblem('');
    } catch (error) {
      setProblem(error instanceof Error ? error.message : String(error));
    }
  };

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      submit();
    } else if (event.key === 'Escape' && onStop) {
      event.preventDefault();
      onStop();
    }
  };

  return (
    <form className="composer" onSubmit={submit} aria-label="Send a message">
      <textarea
        id="message"
        name="message"
        aria-label="Message"
        aria-describedby="composer-hint"
        placeholder="Ask about computer science…"
        rows={2}
        value={text}
        onChange={(event) => update(event.target.value)}
        onKeyDown={onKeyDown}
      />
      <div className="actions">
        <button type="submit" disabled={!text.trim()}>
          Send
        </button>
        <button
          type="button"
          className="stop"
          onClick={onStop}
          disabled={!onStop}
          aria-keyshortcuts="Escape"
        >
          Stop
        </button>
      </div>
      <p id="composer-hint" className="hint">
        {problem ||
          (queued > 0
            ? `${queued} message${queued === 1 ? '' : 's'} waiting for the connection`
            : processing
              ? 'Enter sends · Shift+Enter new line · Esc stops the reply'
              : 'Enter sends · Shift+Enter new line')}
      </p>
    </form>
  );
}
