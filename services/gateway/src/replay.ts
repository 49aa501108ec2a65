import { compareEventIds } from '@chorus/protocol';
import type { Socket } from './connection.js';
import type { GatewayContext } from './gateway-context.js';
import { belowBufferLimit, sendFrame, sendRaw } from './send.js';
import { withEventId } from '@chorus/protocol';

const PAGE = 200;
const BUFFER_LIMIT = 256 * 1024;

/**
 * Sends every session event after `lastEventId`, then goes live with no gap and no duplicate:
 * live events that arrive meanwhile are held back and only those past the replay are sent.
 */
export async function replay(
  ws: Socket,
  ctx: GatewayContext,
  lastEventId: string,
): Promise<'replayed' | 'reset'> {
  const conn = ws.getUserData();
  ctx.fanout.holdBack(ws);
  try {
    const oldest = await ctx.events.oldestEventId(conn.sessionId);
    // The client's last event was an entry of this log: older than the oldest kept means trimmed.
    let outcome: 'replayed' | 'reset' = 'replayed';
    let cursor = lastEventId;
    if (oldest === null || compareEventIds(lastEventId, oldest) < 0) {
      sendFrame(ws, ctx.stats, { type: 'reset', reason: 'history_truncated' });
      outcome = 'reset';
      cursor = '0-0';
    }
    for (;;) {
      const page = await ctx.events.readAfter(conn.sessionId, cursor, PAGE);
      for (const event of page) sendRaw(ws, ctx.stats, withEventId(event.eventId, event.body));
      const last = page[page.length - 1];
      if (last) cursor = last.eventId;
      if (page.length < PAGE || conn.closed) break;
      await belowBufferLimit(ws, BUFFER_LIMIT);
    }
    for (const pending of conn.catchingUp ?? []) {
      if (compareEventIds(pending.eventId, cursor) > 0) sendRaw(ws, ctx.stats, pending.frame);
    }
    ctx.stats.metrics.resumed(outcome);
    return outcome;
  } finally {
    conn.catchingUp = null;
    ctx.fanout.goLive(ws);
  }
}
