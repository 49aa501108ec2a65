/**
 * What a close code asks of the client (PROTOCOL.md, "Close codes"; 1013 from docs/protocol.md).
 * - `halt`: no automatic reconnect (4001, replaced by a newer socket of the session)
 * - `new-session`: forget the session and connect anew at once (4401, bad token)
 * - `now`: reconnect at once, to the next replica (1001, draining)
 * - `backoff`: reconnect after an exponential, jittered delay (1013, 4408, 4413, 4429, 1006, the rest)
 */
export type NextStep = 'halt' | 'new-session' | 'now' | 'backoff';

export function nextStepAfterClose(code: number): NextStep {
  switch (code) {
    case 4001:
      return 'halt';
    case 4401:
      return 'new-session';
    case 1001:
      return 'now';
    default:
      return 'backoff';
  }
}
