import type { AgentActivity, ChatMessage } from '@chorus/client';

const SHOWN = 40;

/** What the agent team is doing: who answers now, and the latest agent.log lines. */
export function ActivityPanel({
  activity,
  active,
}: {
  activity: readonly AgentActivity[];
  active: ChatMessage | undefined;
}) {
  const recent = activity.slice(-SHOWN).reverse();
  const speaking = active?.reply?.agents ?? [];
  return (
    <section className="panel" aria-labelledby="activity-title" data-testid="activity">
      <h2 id="activity-title">Agent activity</h2>
      <p className="now" aria-live="polite">
        {active
          ? speaking.length > 0
            ? `${speaking.join(', ')} ${speaking.length > 1 ? 'are' : 'is'} answering`
            : 'The team is picking who answers…'
          : 'Idle'}
      </p>
      {recent.length === 0 ? (
        <p className="muted">Nothing yet: routing, tool calls and retries show here.</p>
      ) : (
        <ol className="activity">
          {recent.map((entry) => (
            <li key={entry.eventId} className={`level-${entry.level}`}>
              <span className="agent">{entry.agent}</span>
              <span className="category">{entry.category}</span>
              <span className="message">{entry.message}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
