import { CloseCode, compareEventIds, withEventId } from '@chorus/protocol';
import { type Socket, connOf } from './connection.js';
import type { GatewayContext } from './gateway-context.js';
import { belowBufferLimit, sendFrame, sendRaw } from './send.js';

/** Events per page of a replay. */
export const REPLAY_PAGE = 200;
/** Replayed frames wait while the socket's buffer holds this much, or a quarter of its close limit. */
const BUFFER_LIMIT = 256 * 1024;

/** A replay's first page, read already (with the socket's join): see SessionDirectory.join. */
export interface FirstPage {
  /** `lastEventId` is older than every retained event: the page starts the log. */
  reset: boolean;
  page: { eventId: string; body: string }[];
}

/**
 * Sends every session event after `lastEventId`, then goes live with no gap and no duplicate:
 * live events that arrive meanwhile are held back and only those past the replay are sent.
 * With `first`, the socket was held back before that page was read.
 */
export async function replay(
  ws: Socket,
  ctx: GatewayContext,
  lastEventId: string,
  first?: FirstPage,
): Promise<'replayed' | 'reset'> {
  const conn = connOf(ws);
  if (!first) ctx.fanout.holdBack(ws);
  try {
    let reset: boolean;
    let page: FirstPage['page'];
    if (first) {
      ({ reset, page } = first);
    } else {
      // The client's last event was an entry of this log: older than the oldest kept means
      // trimmed, and the replay starts the log over.
      const kept = await readAfterUntrimmed(ctx, conn.sessionId, lastEventId);
      reset = kept === null;
      page = kept ?? (await ctx.events.readAfter(conn.sessionId, '0-0', REPLAY_PAGE));
    }
    if (reset) sendFrame(ws, ctx.stats, { type: 'reset', reason: 'history_truncated' });
    // Frame by frame, never past the limit: a page of large events (a long reply.end, big chats)
    // sent at once could pass MAX_BACKPRESSURE_BYTES and close the socket, again on every resume.
    const limit = Math.min(BUFFER_LIMIT, ctx.settings.maxBackpressureBytes / 4);
    const paced = async () => {
      // A drain callback only says the buffer shrank, not by how much.
      while (!conn.closed && ws.getBufferedAmount() >= limit) await belowBufferLimit(ws, limit);
      return !conn.closed;
    };
    const start = reset ? '0-0' : lastEventId;
    let cursor = start;
    // The events after the cursor. Should the log have been trimmed past it meanwhile (a client
    // reading slower than its session writes), the rest is gone: the client is sent away to
    // resume, and is told `reset`. Only an event sent here is sure to be an entry of the log
    // (the client's lastEventId need not be one).
    const nextPage = async () => {
      if (cursor === '0-0') return ctx.events.readAfter(conn.sessionId, cursor, REPLAY_PAGE);
      const next =
        cursor === start
          ? await readAfterUntrimmed(ctx, conn.sessionId, cursor)
          : await ctx.events.readAfterKept(conn.sessionId, cursor, REPLAY_PAGE);
      if (next === null && !conn.closed) {
        ctx.stats.metrics.slowConsumer('closed');
        ws.end(
          CloseCode.tooSlow,
          'fell behind the retained events: reconnect with your lastEventId',
        );
      }
      return next ?? [];
    };
    for (;;) {
      for (;;) {
        for (const event of page) {
          if (!(await paced())) break;
          sendRaw(ws, ctx.stats, withEventId(event.eventId, event.body));
          cursor = event.eventId;
        }
        if (page.length < REPLAY_PAGE || conn.closed) break;
        page = await nextPage();
      }
      // Live events held meanwhile; more may arrive while this waits, and are sent in turn.
      const held = conn.catchingUp ?? [];
      for (let i = 0; i < held.length && !conn.catchUpDropped; i++) {
        const pending = held[i]!;
        if (compareEventIds(pending.eventId, cursor) <= 0) continue;
        if (!(await paced())) break;
        sendRaw(ws, ctx.stats, pending.frame);
        cursor = pending.eventId;
      }
      // Some were dropped (too many waited): what followed the cursor is read from the log again.
      if (conn.closed || !conn.catchUpDropped) break;
      conn.catchUpDropped = false;
      page = await nextPage();
    }
    conn.catchingUp = null;
    ctx.fanout.goLiveAfter(ws, cursor);
    const outcome = reset ? 'reset' : 'replayed';
    ctx.stats.metrics.resumed(outcome);
    return outcome;
  } finally {
    if (conn.catchingUp) {
      // The replay failed part way: live events from here would leave a gap behind them.
      conn.catchingUp = null;
      if (!conn.closed)
        ws.end(CloseCode.tryAgainLater, 'replay failed; reconnect with your lastEventId');
    }
  }
}

/** The events after `cursor`, or null if it is older than every event kept (trimmed). */
async function readAfterUntrimmed(ctx: GatewayContext, sessionId: string, cursor: string) {
  const page = await ctx.events.readAfter(sessionId, cursor, REPLAY_PAGE);
  // Read after the page: a trim between the two reads cannot then pass unseen (the log only
  // loses its oldest entries).
  const oldest = await ctx.events.oldestEventId(sessionId);
  return oldest === null || compareEventIds(cursor, oldest) < 0 ? null : page;
}
