import {
  parseClientFrame,
  type CancelFrame,
  type ChatFrame,
  type ClientFrame,
} from '@chorus/protocol';
import { enqueueChat } from '@chorus/state';
import { type Socket, connOf } from './connection.js';
import type { GatewayContext } from './gateway-context.js';
import { replay } from './replay.js';
import { sendFrame } from './send.js';
import { toWireError } from './wire-error.js';

/** Handles one text frame of a socket; never throws. */
export async function handleFrame(
  ws: Socket,
  ctx: GatewayContext,
  text: string,
  byteLength: number,
): Promise<void> {
  const conn = connOf(ws);
  const parsed = parseClientFrame(text, byteLength, {
    maxMessageBytes: ctx.settings.maxMessageBytes,
  });
  if (!parsed.ok) {
    ctx.stats.frameReceived('invalid');
    ctx.stats.error(parsed.code);
    sendFrame(ws, ctx.stats, {
      type: 'error',
      code: parsed.code,
      message: parsed.message,
      // A rejected chat was never acked, so this error is its one ending.
      ...(parsed.frameType === 'chat' && parsed.id !== undefined ? { replyTo: parsed.id } : {}),
    });
    return;
  }
  const frame = parsed.frame;
  ctx.stats.frameReceived(frame.type);
  try {
    await dispatch(ws, ctx, frame);
  } catch (error) {
    const wire = toWireError(error);
    ctx.stats.error(wire.reason);
    ctx.log.warn(
      { err: error, sessionId: conn.sessionId, connectionId: conn.connectionId, frame: frame.type },
      'frame failed',
    );
    sendFrame(ws, ctx.stats, {
      type: 'error',
      code: wire.code,
      message: wire.message,
      ...(frame.type === 'chat' ? { replyTo: frame.id } : {}),
    });
  }
}

async function dispatch(ws: Socket, ctx: GatewayContext, frame: ClientFrame): Promise<void> {
  switch (frame.type) {
    case 'ping':
      sendFrame(ws, ctx.stats, { type: 'pong', ts: Date.now() });
      return;
    case 'chat':
      return acceptChat(ws, ctx, frame);
    case 'cancel':
      return cancelChat(ws, ctx, frame);
    case 'resume':
      await replay(ws, ctx, frame.lastEventId);
      return;
    default: {
      const unreachable: never = frame;
      throw new Error(`unhandled frame ${JSON.stringify(unreachable)}`);
    }
  }
}

/**
 * Stores the message (once), makes sure a job will answer it, then acks: an ack means it will be
 * answered.
 */
async function acceptChat(ws: Socket, ctx: GatewayContext, frame: ChatFrame): Promise<void> {
  const { sessionId } = connOf(ws);
  const result = await ctx.inbox.accept(sessionId, {
    id: frame.id,
    text: frame.text,
    ts: Date.now(),
  });
  if (result.status === 'rate_limited') {
    ctx.stats.error('rate_limited');
    // Not stored, not acked: this error is the message's one ending; the client may resend later.
    sendFrame(ws, ctx.stats, {
      type: 'error',
      code: 'rate_limited',
      message: `too many messages; retry in ${Math.ceil(result.retryAfterMs / 1000)} s`,
      replyTo: frame.id,
      retryAfterMs: result.retryAfterMs,
    });
    return;
  }
  const { record, jobKey } = result;
  if (jobKey !== null) {
    // Also on a resend: the first attempt may have died between storing and queueing.
    await enqueueChat(ctx.queue, { sessionId, messageId: frame.id }, jobKey);
    ctx.stats.metrics.chatEnqueued();
  }
  sendFrame(ws, ctx.stats, { type: 'ack', id: frame.id, eventId: record.eventId });
  if (record.state === 'pending') ctx.firstDelta.acked(sessionId, frame.id);
}

/**
 * Asks the worker answering the message to stop; the answer then ends with `reply.end`
 * `cancelled: true`. A message that is unknown or already answered has nothing to stop: the
 * error carries no `replyTo`, since that message's one ending is (or will be) elsewhere.
 */
async function cancelChat(ws: Socket, ctx: GatewayContext, frame: CancelFrame): Promise<void> {
  const { sessionId } = connOf(ws);
  const record = await ctx.inbox.get(sessionId, frame.id);
  if (!record || record.state === 'done') {
    sendFrame(ws, ctx.stats, {
      type: 'error',
      code: 'bad_request',
      message: record
        ? `message ${frame.id} is already answered`
        : `no message ${frame.id} in this session`,
    });
    return;
  }
  await ctx.inbox.requestCancel(sessionId, frame.id);
}
