import type { ConnectionInfo } from '@chorus/client';
import { useEffect, useState } from 'react';

const LABELS: Record<ConnectionInfo['state'], string> = {
  connecting: 'Connecting…',
  open: 'Connected',
  reconnecting: 'Reconnecting…',
  closed: 'Disconnected',
};

/** Connection state and the replica in use; a retry button when waiting or replaced. */
export function ConnectionStatus({
  connection,
  onRetry,
}: {
  connection: ConnectionInfo;
  onRetry: () => void;
}) {
  const seconds = useSecondsUntil(connection.retryAt);
  let detail = '';
  if (connection.state === 'open' && connection.gatewayId) detail = `via ${connection.gatewayId}`;
  else if (connection.state === 'reconnecting' && seconds !== null) {
    detail = seconds > 0 ? `retrying in ${seconds} s` : 'retrying';
  } else if (connection.state === 'closed' && connection.closeReason === 'replaced') {
    detail = 'this tab was replaced by a newer one';
  }
  const canRetry =
    (connection.state === 'reconnecting' && connection.retryAt !== undefined) ||
    (connection.state === 'closed' && connection.closeReason === 'replaced');
  return (
    <div
      className={`status status-${connection.state}`}
      data-testid="connection"
      data-state={connection.state}
      data-gateway={connection.gatewayId ?? ''}
      role="status"
      aria-live="polite"
    >
      <span className="dot" aria-hidden="true" />
      <span>{LABELS[connection.state]}</span>
      {detail && <span className="detail">{detail}</span>}
      {canRetry && (
        <button type="button" className="link" onClick={onRetry}>
          {connection.state === 'closed' ? 'Reconnect' : 'Retry now'}
        </button>
      )}
    </div>
  );
}

function useSecondsUntil(at: number | undefined): number | null {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (at === undefined) return;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(timer);
  }, [at]);
  return at === undefined ? null : Math.max(0, Math.ceil((at - now) / 1000));
}
