/**
 * Browsers always send Origin on a WebSocket upgrade, so a foreign one is refused. Clients that
 * are not browsers send none and are let through: they could forge any Origin anyway.
 */
export function originAllowed(origin: string, allowed: readonly string[]): boolean {
  if (origin === '' || allowed.includes('*')) return true;
  return allowed.includes(origin);
}
