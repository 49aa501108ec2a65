import type { ChatMessage, MessageStatus } from '@chorus/client';
import { useLayoutEffect, useRef } from 'react';

const STATUS_TEXT: Partial<Record<MessageStatus, string>> = {
  queued: 'not sent yet: waiting for the connection',
  sent: 'waiting for its turn',
  processing: 'the agents are on it',
};

/** The conversation: each message with its reply, the reply streaming in as it comes. */
export function ConversationView({ messages }: { messages: readonly ChatMessage[] }) {
  const listRef = useRef<HTMLOListElement>(null);
  const pinned = useRef(true);

  // Follow new text while the reader is at the bottom; leave them alone when they scrolled up.
  useLayoutEffect(() => {
    const list = listRef.current;
    if (list && pinned.current) list.scrollTop = list.scrollHeight;
  }, [messages]);

  return (
    <ol
      ref={listRef}
      className="conversation"
      role="log"
      aria-label="Conversation"
      aria-live="polite"
      tabIndex={0}
      onScroll={(event) => {
        const list = event.currentTarget;
        pinned.current = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
      }}
    >
      {messages.length === 0 && (
        <li className="empty">Ask the agent team about a computer-science topic.</li>
      )}
      {messages.map((message) => (
        <MessageItem key={message.id} message={message} />
      ))}
    </ol>
  );
}

function MessageItem({ message }: { message: ChatMessage }) {
  const { reply, status } = message;
  const note = STATUS_TEXT[status];
  return (
    <li className="turn" data-testid="message" data-id={message.id} data-status={status}>
      {message.text && (
        <div className="bubble user">
          <span className="who">You</span>
          <p className="text" data-testid="user-text">
            {message.text}
          </p>
          {note && <span className="note">{note}</span>}
        </div>
      )}
      {reply && (
        <article
          className={`bubble reply${reply.done ? '' : ' streaming'}`}
          data-testid="reply"
          data-agent={reply.agent}
          data-done={reply.done ? 'true' : 'false'}
          aria-busy={!reply.done}
        >
          <span className="who">{reply.agents.join(', ')}</span>
          <p className="text" data-testid="reply-text">
            {reply.parts.length > 1
              ? reply.parts.map((part, i) => {
                  const newSpeaker = i === 0 || reply.parts[i - 1]?.agent !== part.agent;
                  // A new speaker's text starts with the blank line between voices: keep it
                  // before the name, not after.
                  const gap = newSpeaker ? (/^\s*/.exec(part.text)?.[0] ?? '') : '';
                  return (
                    <span key={i} className="part">
                      {gap}
                      {newSpeaker && <strong className="part-agent">{part.agent}: </strong>}
                      {part.text.slice(gap.length)}
                    </span>
                  );
                })
              : reply.text}
          </p>
          {reply.cancelled && <span className="note">stopped</span>}
        </article>
      )}
      {message.error && (
        <div className="bubble error" role="alert">
          <span className="who">Error: {message.error.code}</span>
          <p className="text">{message.error.message}</p>
        </div>
      )}
      {status === 'cancelled' && !reply && <span className="note">cancelled</span>}
    </li>
  );
}
