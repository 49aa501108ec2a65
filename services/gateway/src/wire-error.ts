import type { ErrorCode } from '@chorus/protocol';

/** Turns anything thrown while serving a frame into a code and a message safe to send. */
export function toWireError(error: unknown): { code: ErrorCode; message: string; reason: string } {
  const text = error instanceof Error ? error.message : '';
  if (
    /Connection is closed|MaxRetriesPerRequest|ECONNREFUSED|Command timed out|Stream isn't writeable/i.test(
      text,
    )
  ) {
    return {
      code: 'internal',
      message: 'service temporarily unavailable; retry shortly',
      reason: 'redis_unavailable',
    };
  }
  return { code: 'internal', message: 'internal error', reason: 'internal' };
}
