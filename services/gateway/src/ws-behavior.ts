import { randomBytes } from 'node:crypto';
import { closeLimit, CloseCode, isEventId, PROTOCOL_VERSION } from '@chorus/protocol';
import { encodeControl } from '@chorus/state';
import {
  clock,
  connOf,
  Connection,
  type QueuedFrame,
  type Socket,
  type SocketData,
} from './connection.js';
import { handleFrame } from './frame-handler.js';
import type { GatewayContext } from './gateway-context.js';
import { originAllowed } from './origin.js';
import { replay, REPLAY_PAGE } from './replay.js';
import type { Joined } from './session-fanout.js';
import { sendFrame } from './send.js';
import type { WebSocketBehavior } from 'uWebSockets.js';

/**
 * Frames, and their bytes, that may wait while a socket's frame (or its replay) is handled: room
 * for a client resending a long outbox at once, not for one that sends while never reading.
 */
const MAX_QUEUED_FRAMES = 1024;
const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

const queuedBytes = (queue: QueuedFrame[]) =>
  queue.reduce((bytes, frame) => bytes + frame.byteLength, 0);

/** The /ws endpoint: connecting rules, welcome, frames, and cleanup. */
export function wsBehavior(ctx: GatewayContext): WebSocketBehavior<SocketData> {
  const { settings } = ctx;
  const closeAt = closeLimit({ maxMessageBytes: settings.maxMessageBytes });
  // Or two frames as large as the protocol allows, if that is more.
  const maxQueuedBytes = Math.max(MAX_QUEUED_BYTES, 2 * closeAt);
  const welcomes = new WelcomeQueue(ctx);
  return {
    compression: 0,
    maxPayloadLength: settings.maxFrameBytes,
    // A socket that stops reading is closed (1006) once this much waits for it, rather than
    // left to lose published frames silently: its client reconnects with lastEventId and replays.
    maxBackpressure: settings.maxBackpressureBytes,
    closeOnBackpressureLimit: 1, // typed as a number by uWS; a flag in effect
    // Silent sockets are closed by the heartbeat rule (4408) before this. It also sets how long a
    // socket we closed has to read its close frame before uWS resets it: 16 s here, whereas at 0
    // it was the next 4-s sweep, and a client reading a little late saw 1006 instead of our code.
    idleTimeout: 960,
    sendPingsAutomatically: false,

    upgrade: (res, req, context) => {
      const origin = req.getHeader('origin');
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      const query = new URLSearchParams(req.getQuery() ?? '');
      if (ctx.draining) {
        res
          .writeStatus('503 Service Unavailable')
          .end('gateway is draining; connect to another replica');
        return;
      }
      if (!ctx.fanout.liveFeedUp) {
        // A socket let in now would be sent away (1001) once the subscription is back.
        res
          .writeStatus('503 Service Unavailable')
          .writeHeader('Retry-After', '1')
          .end('live events interrupted; try again shortly');
        return;
      }
      if (!originAllowed(origin, settings.allowedOrigins)) {
        ctx.stats.error('origin_forbidden');
        res.writeStatus('403 Forbidden').end('origin not allowed');
        return;
      }
      // The last entry is the one our own load balancer appended; earlier ones the client wrote.
      const forwarded = settings.trustProxy
        ? (req.getHeader('x-forwarded-for').split(',').at(-1)?.trim() ?? '')
        : '';
      const ip = forwarded
        ? forwarded.slice(0, 64)
        : Buffer.from(res.getRemoteAddressAsText()).toString();
      const requested = query.get('session');
      const token = query.get('token') ?? '';
      let sessionId = '';
      let rejectWith = 0;
      if (requested === null) {
        sessionId = ctx.tokens.newSessionId();
      } else if (ctx.tokens.verify(requested, token)) {
        sessionId = requested;
      } else {
        rejectWith = CloseCode.badToken;
      }
      const conn = new Connection(
        newConnectionId(),
        sessionId,
        requested !== null,
        ip,
        requested === null ? ctx.tokens.sign(sessionId) : rejectWith ? '' : token,
        rejectWith,
        query.get('lastEventId') ?? undefined,
      );
      res.upgrade<SocketData>({ conn }, key, protocol, extensions, context);
    },

    open: (ws) => {
      const conn = connOf(ws);
      if (conn.rejectWith) {
        conn.closed = true;
        ctx.stats.error('bad_token');
        ws.end(conn.rejectWith, 'unauthorized');
        return;
      }
      ctx.stats.connectionOpened();
      const joined = ctx.fanout.join(ws);
      // Frames wait for the welcome; when it fails, the socket is closed and they are dropped.
      conn.busy = true;
      welcomes.start(ws, joined);
    },

    message: (ws, message, isBinary) => {
      const conn = connOf(ws);
      conn.lastSeen = clock();
      const byteLength = message.byteLength;
      if (byteLength > closeAt) {
        ctx.stats.frameReceived('invalid');
        ctx.stats.error('too_large');
        ws.end(CloseCode.tooLarge, 'frame too large');
        return;
      }
      // The ArrayBuffer is only valid during this call: decode it now.
      const text = isBinary ? null : Buffer.from(message).toString('utf8');
      if (conn.busy) {
        const queue = (conn.queue ??= []);
        queue.push({ text, byteLength });
        if (queue.length > MAX_QUEUED_FRAMES || queuedBytes(queue) > maxQueuedBytes) {
          // A client that keeps sending while a replay waits for it to read would grow this.
          conn.queue = null;
          ctx.stats.error('rate_limited');
          ws.end(CloseCode.tooMany, 'too many frames waiting; slow down');
        }
        return;
      }
      conn.busy = true;
      void handleInOrder(ws, ctx, text, byteLength);
    },

    drain: (ws) => {
      resolveDrainWaiters(connOf(ws));
      ctx.fanout.drained(ws);
    },

    close: (ws, code) => {
      const conn = connOf(ws);
      conn.closed = true;
      conn.queue = null;
      resolveDrainWaiters(conn);
      if (conn.rejectWith) return;
      if (conn.admitted) releaseAdmission(conn, ctx);
      const lastHere = ctx.fanout.leave(ws, conn);
      ctx.stats.connectionClosed(conn.sessionId, code, lastHere);
      const gateway = { id: settings.gatewayId, lastHere };
      ctx.directory
        .removeSocket(conn.sessionId, conn.connectionId, gateway)
        .catch((error: unknown) => {
          ctx.stats.error('redis_unavailable');
          ctx.log.warn(
            { err: error, sessionId: conn.sessionId, connectionId: conn.connectionId },
            'socket unregister failed',
          );
        });
    },
  };
}

function resolveDrainWaiters(conn: Connection): void {
  const waiters = conn.drainWaiters;
  if (waiters === null) return;
  conn.drainWaiters = null;
  for (const resolve of waiters) resolve();
}

/** `c-` and 12 random base64url characters, cut from a pool of random bytes drawn in bulk. */
const ID_BYTES = 9;
let idPool = Buffer.alloc(0);
let idOffset = 0;
function newConnectionId(): string {
  if (idOffset + ID_BYTES > idPool.length) {
    idPool = randomBytes(ID_BYTES * 256);
    idOffset = 0;
  }
  const id = `c-${idPool.toString('base64url', idOffset, idOffset + ID_BYTES)}`;
  idOffset += ID_BYTES;
  return id;
}

/** Sockets being set up at once; the others wait their turn, first come first served. */
const WELCOMES_IN_FLIGHT = 128;

/**
 * Sets sockets up a bounded number at a time, in arrival order. When thousands connect at once
 * (a replica died), each step of every setup would otherwise queue behind the same step of all
 * the others (Redis answers in order), so that nobody is welcomed before nearly everybody is,
 * and slow clients give up; this way they are welcomed steadily from the first second on.
 */
class WelcomeQueue {
  private running = 0;
  /** Sockets waiting, oldest at `next`; entries before it are cleared (undefined). */
  private waiting: ([Socket, Joined] | undefined)[] = [];
  private next = 0;

  constructor(private readonly ctx: GatewayContext) {}

  start(ws: Socket, joined: Joined): void {
    if (this.running >= WELCOMES_IN_FLIGHT) {
      this.waiting.push([ws, joined]);
      return;
    }
    this.running++;
    // The slot is the setup's (Redis steps); a replay after the welcome goes on without it.
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.running--;
      this.startWaiting();
    };
    void welcomeThenFrames(ws, this.ctx, joined, release).finally(release);
  }

  private startWaiting(): void {
    while (this.next < this.waiting.length && this.running < WELCOMES_IN_FLIGHT) {
      const [ws, joined] = this.waiting[this.next]!;
      this.waiting[this.next++] = undefined;
      // A socket closed while it waited has nothing to set up; its frames are dropped.
      if (connOf(ws).closed) continue;
      this.start(ws, joined);
    }
    if (this.next === this.waiting.length) {
      this.waiting = [];
      this.next = 0;
    }
  }
}

async function welcomeThenFrames(
  ws: Socket,
  ctx: GatewayContext,
  joined: Joined,
  setUp: () => void,
): Promise<void> {
  const conn = connOf(ws);
  try {
    await welcome(ws, ctx, joined, setUp);
  } catch (error) {
    ctx.stats.error('connect_failed');
    ctx.log.warn(
      { err: error, sessionId: conn.sessionId, connectionId: conn.connectionId },
      'connect failed',
    );
    if (!conn.closed) ws.end(CloseCode.tryAgainLater, 'service temporarily unavailable');
  }
  await nextFrames(ws, ctx);
}

/** Handles a frame, then those that arrived meanwhile, one after another. */
async function handleInOrder(
  ws: Socket,
  ctx: GatewayContext,
  text: string | null,
  byteLength: number,
): Promise<void> {
  await handleOne(ws, ctx, text, byteLength);
  await nextFrames(ws, ctx);
}

async function nextFrames(ws: Socket, ctx: GatewayContext): Promise<void> {
  const conn = connOf(ws);
  for (let next = conn.queue?.shift(); next !== undefined; next = conn.queue?.shift()) {
    await handleOne(ws, ctx, next.text, next.byteLength);
  }
  conn.queue = null;
  conn.busy = false;
}

async function handleOne(
  ws: Socket,
  ctx: GatewayContext,
  text: string | null,
  byteLength: number,
): Promise<void> {
  const conn = connOf(ws);
  if (conn.closed) return;
  if (text !== null) {
    await handleFrame(ws, ctx, text, byteLength);
    return;
  }
  ctx.stats.frameReceived('invalid');
  ctx.stats.error('bad_request');
  sendFrame(ws, ctx.stats, {
    type: 'error',
    code: 'bad_request',
    message: 'binary frames are not supported; send JSON text',
  });
}

/**
 * Admission and the session subscription at once, then one script on the session's slot
 * (session, socket map, cap, first replay page); evict over the cap, welcome, then replay or go
 * live.
 */
async function welcome(
  ws: Socket,
  ctx: GatewayContext,
  joined: Joined,
  setUp: () => void,
): Promise<void> {
  const conn = connOf(ws);
  const { settings } = ctx;
  const [admitted] = await Promise.all([admit(ws, ctx), joined.subscribed]);
  if (!admitted || conn.closed) return;
  const asked = conn.lastEventId;
  conn.lastEventId = undefined;
  const replayAfter = asked !== undefined && isEventId(asked) ? asked : undefined;
  // Live events from here on are held for the replay: the script reads the log after this.
  if (replayAfter !== undefined) ctx.fanout.holdBack(ws);
  const listing = ctx.lister.list(conn.sessionId);
  await listing.sent;
  if (conn.closed) return;
  const [, joinedSession] = await Promise.all([
    listing.done,
    ctx.directory.join(conn.sessionId, {
      entry: { connectionId: conn.connectionId, gatewayId: settings.gatewayId },
      maxSockets: settings.maxSocketsPerSession,
      ...(replayAfter !== undefined ? { replayAfter, pageSize: REPLAY_PAGE } : {}),
    }),
  ]);
  setUp();
  if (conn.closed) return;
  for (const victim of joinedSession.evict) {
    const control = encodeControl({
      kind: 'evict',
      connectionId: victim.connectionId,
      code: CloseCode.replaced,
    });
    await ctx.redis.spublish(ctx.keys.session(conn.sessionId).channel, control);
  }
  sendFrame(ws, ctx.stats, {
    type: 'welcome',
    protocol: PROTOCOL_VERSION,
    sessionId: conn.sessionId,
    token: conn.token,
    connectionId: conn.connectionId,
    gatewayId: settings.gatewayId,
    resumed: conn.joining && joinedSession.existed,
    heartbeatMs: settings.heartbeatMs,
    limits: { maxMessageBytes: settings.maxMessageBytes },
  });
  conn.token = '';
  if (asked === undefined) {
    ctx.fanout.goLive(ws);
  } else if (replayAfter !== undefined) {
    await replay(ws, ctx, replayAfter, joinedSession);
  } else {
    ctx.fanout.goLive(ws);
    ctx.stats.metrics.resumed('invalid');
    sendFrame(ws, ctx.stats, {
      type: 'error',
      code: 'bad_request',
      message: 'lastEventId must be an eventId received from the server',
    });
  }
}

/** The per-address limits; a refused socket is closed with 4429 and never registered. */
async function admit(ws: Socket, ctx: GatewayContext): Promise<boolean> {
  const conn = connOf(ws);
  const admission = await ctx.clientLimits.admit(conn.ip, ctx.settings.instance, ctx.liveInstances);
  if (!admission.ok) {
    ctx.stats.error(admission.reason === 'rate' ? 'connect_rate_limited' : 'too_many_connections');
    const reason =
      admission.reason === 'rate'
        ? `connecting too often; retry in ${Math.ceil(admission.retryAfterMs / 1000)} s`
        : 'too many connections from this address';
    if (!conn.closed) ws.end(CloseCode.tooMany, reason);
    return false;
  }
  conn.admitted = true;
  // Closed while being admitted: the close handler saw nothing to release.
  if (conn.closed) releaseAdmission(conn, ctx);
  return !conn.closed;
}

function releaseAdmission(conn: Connection, ctx: GatewayContext): void {
  conn.admitted = false;
  ctx.clientLimits.closed(conn.ip, ctx.settings.instance).catch((error: unknown) => {
    ctx.stats.error('redis_unavailable');
    ctx.log.warn(
      { err: error, connectionId: conn.connectionId },
      'connection count release failed',
    );
  });
}
