import type { ReplyDeltaEvent } from '@chorus/protocol';

const DELTA_PREFIX = '{"type":"reply.delta"';

/**
 * The body of one delta carrying the text of `earlier` and then `later`, when both are deltas of
 * the same reply by the same agent; undefined otherwise. A socket that cannot keep up gets fewer,
 * larger deltas this way: the merged event takes the later eventId, so nothing is skipped.
 */
export function mergeDeltas(earlier: string, later: string): string | undefined {
  if (!earlier.startsWith(DELTA_PREFIX) || !later.startsWith(DELTA_PREFIX)) return undefined;
  const a = JSON.parse(earlier) as ReplyDeltaEvent;
  const b = JSON.parse(later) as ReplyDeltaEvent;
  if (a.replyTo !== b.replyTo || a.agent !== b.agent) return undefined;
  return JSON.stringify({ ...b, text: a.text + b.text });
}
