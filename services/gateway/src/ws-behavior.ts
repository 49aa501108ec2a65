import { randomBytes } from 'node:crypto';
import { CloseCode, isEventId, PROTOCOL_VERSION } from '@chorus/protocol';
import { encodeControl } from '@chorus/state';
import type { Connection, Socket } from './connection.js';
import { handleFrame } from './frame-handler.js';
import type { GatewayContext } from './gateway-context.js';
import { originAllowed } from './origin.js';
import { replay } from './replay.js';
import { sendFrame } from './send.js';
import type { WebSocketBehavior } from 'uWebSockets.js';

/** Service unavailable for now (RFC 6455 "try again later"): Redis was unreachable at connect. */
const TRY_AGAIN_LATER = 1013;

/** The /ws endpoint: connecting rules, welcome, frames, and cleanup. */
export function wsBehavior(ctx: GatewayContext): WebSocketBehavior<Connection> {
  const { settings } = ctx;
  return {
    compression: 0,
    maxPayloadLength: settings.maxFrameBytes,
    // A socket that stops reading is closed (1006) once this much waits for it, rather than
    // left to lose published frames silently: its client reconnects with lastEventId and replays.
    maxBackpressure: settings.maxBackpressureBytes,
    closeOnBackpressureLimit: 1, // typed as a number by uWS; a flag in effect
    idleTimeout: 0,
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
      if (!originAllowed(origin, settings.allowedOrigins)) {
        ctx.stats.error('origin_forbidden');
        res.writeStatus('403 Forbidden').end('origin not allowed');
        return;
      }
      // The last entry is the one our own load balancer appended; earlier ones the client wrote.
      const forwarded = req.getHeader('x-forwarded-for').split(',').at(-1)?.trim() ?? '';
      const peer = Buffer.from(res.getRemoteAddressAsText()).toString();
      const ip = settings.trustProxy && forwarded ? forwarded.slice(0, 64) : peer;
      const now = Date.now();
      const requested = query.get('session');
      const conn: Connection = {
        connectionId: `c-${randomBytes(9).toString('base64url')}`,
        sessionId: '',
        token: '',
        joining: requested !== null,
        ip,
        admitted: false,
        openedAt: now,
        lastSeen: now,
        closed: false,
        chain: Promise.resolve(),
        catchingUp: null,
        live: false,
        drainWaiters: [],
      };
      if (requested === null) {
        conn.sessionId = ctx.tokens.newSessionId();
        conn.token = ctx.tokens.sign(conn.sessionId);
      } else if (ctx.tokens.verify(requested, query.get('token') ?? '')) {
        conn.sessionId = requested;
        conn.token = query.get('token') ?? '';
      } else {
        conn.rejectWith = CloseCode.badToken;
      }
      const lastEventId = query.get('lastEventId');
      if (lastEventId !== null) conn.lastEventId = lastEventId;
      res.upgrade(conn, key, protocol, extensions, context);
    },

    open: (ws) => {
      const conn = ws.getUserData();
      if (conn.rejectWith) {
        conn.closed = true;
        ctx.stats.error('bad_token');
        ws.end(conn.rejectWith, 'unauthorized');
        return;
      }
      ctx.sockets.add(ws);
      ctx.stats.connectionOpened(conn.sessionId);
      // Frames wait for the welcome; when it fails, the socket is closed and they are dropped.
      conn.chain = welcome(ws, ctx).catch((error: unknown) => {
        ctx.stats.error('connect_failed');
        ctx.log.warn(
          { err: error, sessionId: conn.sessionId, connectionId: conn.connectionId },
          'connect failed',
        );
        if (!conn.closed) ws.end(TRY_AGAIN_LATER, 'service temporarily unavailable');
      });
    },

    message: (ws, message, isBinary) => {
      const conn = ws.getUserData();
      conn.lastSeen = Date.now();
      const byteLength = message.byteLength;
      if (byteLength > settings.maxMessageBytes * 4) {
        ctx.stats.frameReceived('invalid');
        ctx.stats.error('too_large');
        ws.end(CloseCode.tooLarge, 'frame too large');
        return;
      }
      // The ArrayBuffer is only valid during this call: decode it now.
      const text = isBinary ? null : Buffer.from(message).toString('utf8');
      conn.chain = conn.chain.then(() => {
        if (conn.closed) return;
        if (text !== null) return handleFrame(ws, ctx, text, byteLength);
        ctx.stats.frameReceived('invalid');
        ctx.stats.error('bad_request');
        sendFrame(ws, ctx.stats, {
          type: 'error',
          code: 'bad_request',
          message: 'binary frames are not supported; send JSON text',
        });
      });
    },

    drain: (ws) => {
      const conn = ws.getUserData();
      const waiters = conn.drainWaiters.splice(0);
      for (const resolve of waiters) resolve();
    },

    close: (ws, code) => {
      const conn = ws.getUserData();
      const wasOpen = !conn.rejectWith;
      conn.closed = true;
      for (const resolve of conn.drainWaiters.splice(0)) resolve();
      if (!wasOpen) return;
      if (conn.admitted) releaseAdmission(conn, ctx);
      ctx.sockets.delete(ws);
      ctx.stats.connectionClosed(conn.sessionId, code);
      const lastHere = ctx.fanout.leave(ws, conn);
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

/** Subscribe, register the socket, enforce the per-session cap, welcome, then replay or go live. */
async function welcome(ws: Socket, ctx: GatewayContext): Promise<void> {
  const conn = ws.getUserData();
  if (!(await admit(ws, ctx))) return;
  const [, existed, sockets] = await Promise.all([
    ctx.fanout.join(ws),
    ctx.directory.ensure(conn.sessionId),
    ctx.directory.addSocket(conn.sessionId, {
      connectionId: conn.connectionId,
      gatewayId: ctx.settings.gatewayId,
      openedAt: conn.openedAt,
    }),
  ]);
  if (conn.closed) return;
  const excess = sockets.length - ctx.settings.maxSocketsPerSession;
  for (const victim of sockets.slice(0, Math.max(0, excess))) {
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
    gatewayId: ctx.settings.gatewayId,
    resumed: conn.joining && existed,
    heartbeatMs: ctx.settings.heartbeatMs,
    limits: { maxMessageBytes: ctx.settings.maxMessageBytes },
  });
  if (conn.lastEventId === undefined) {
    ctx.fanout.goLive(ws);
  } else if (isEventId(conn.lastEventId)) {
    await replay(ws, ctx, conn.lastEventId);
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
  const conn = ws.getUserData();
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
