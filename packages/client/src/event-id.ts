/**
 * Orders two eventIds (`<ms>-<seq>`): negative when a is older than b.
 *
 * @chorus/protocol has the same function, but importing it at run time would pull zod into
 * every browser bundle; the client imports only types from there and keeps this one copy.
 */
export function compareEventIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  return Number(am) - Number(bm) || Number(as) - Number(bs);
}

/** Asks the gateway for everything it retains: older than any real eventId. */
export const FROM_THE_START = '0-0';
