import { useChorus } from '@chorus/client/react';
import { useEffect, useRef, useState } from 'react';
import { ActivityPanel } from './ActivityPanel.js';
import { Composer } from './Composer.js';
import { ConnectionStatus } from './ConnectionStatus.js';
import { ConversationView } from './ConversationView.js';
import { GraphView } from './GraphView.js';

export function App({ urls }: { urls: string[] }) {
  const chorus = useChorus({ urls });
  const [panelOpen, setPanelOpen] = useState(false);
  const toggleRef = useRef<HTMLButtonElement>(null);
  const closeRef = useRef<HTMLButtonElement>(null);
  const wasOpen = useRef(false);
  const active = chorus.messages.find((m) => m.status === 'processing' || m.status === 'answering');

  // On a phone the panel covers the chat: focus moves into it, and back to its button after.
  useEffect(() => {
    if (panelOpen) closeRef.current?.focus();
    else if (wasOpen.current) toggleRef.current?.focus();
    wasOpen.current = panelOpen;
    if (!panelOpen) return;
    const onKey = (event: KeyboardEvent) => {
      if (event.key === 'Escape') setPanelOpen(false);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [panelOpen]);

  return (
    <div className="app">
      <a className="skip" href="#message">
        Skip to the message box
      </a>
      <header className="top">
        <h1>Chorus</h1>
        <ConnectionStatus connection={chorus.connection} onRetry={chorus.reconnect} />
        <button
          ref={toggleRef}
          type="button"
          className="panel-toggle"
          aria-expanded={panelOpen}
          aria-controls="side-panel"
          onClick={() => setPanelOpen((open) => !open)}
        >
          Agents &amp; graph
        </button>
      </header>
      <main className="chat">
        <ConversationView messages={chorus.messages} />
        <Composer
          onSend={chorus.send}
          onStop={active ? () => chorus.cancel(active.id) : undefined}
          processing={chorus.processing}
          queued={chorus.outbox.length}
        />
      </main>
      <aside
        id="side-panel"
        className={panelOpen ? 'side open' : 'side'}
        aria-label="Agents and knowledge graph"
      >
        <button
          ref={closeRef}
          type="button"
          className="panel-close"
          onClick={() => setPanelOpen(false)}
        >
          Back to the chat
        </button>
        <ActivityPanel activity={chorus.activity} active={active} />
        <GraphView />
      </aside>
    </div>
  );
}
