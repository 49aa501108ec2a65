export interface BackoffOptions {
  /** The ceiling of the first retry's delay (ms). */
  baseMs: number;
  /** No delay is ever longer than this (ms). */
  capMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 250, capMs: 10_000 };

/**
 * Exponential backoff with full jitter: a delay drawn uniformly from
 * [0, min(capMs, baseMs · 2^attempt)). `attempt` counts failures since the connection last
 * proved itself (see Connection.proven), from 0.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(0, attempt), 30);
  const ceiling = Math.min(options.capMs, options.baseMs * 2 ** exponent);
  return Math.floor(Math.min(Math.max(random(), 0), 0.999_999) * ceiling);
}
