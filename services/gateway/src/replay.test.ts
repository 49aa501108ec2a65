import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { createLogger, createRegistry, GatewayMetrics } from '@chorus/observability';
import { KeySchema, SessionEvents } from '@chorus/state';
import { Connection, type Socket } from './connection.js';
import { FirstDeltaClock } from './first-delta-clock.js';
import type { GatewayContext } from './gateway-context.js';
import { replay } from './replay.js';
import { ReplicaStats } from './replica-stats.js';
import { SessionFanout } from './session-fanout.js';
import type { TemplatedApp } from './uws.js';

/**
 * The replay against a real Redis (log and live events), with a socket whose send buffer the test
 * fills and drains: what a client would read on it, frame by frame.
 */
const SESSION = 'replayed';
let redis: Redis;
let subscriber: Redis;
let keys: KeySchema;

beforeAll(() => {
  redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 1 });
  subscriber = redis.duplicate();
  keys = new KeySchema(`t${randomBytes(5).toString('hex')}`);
});
afterAll(async () => {
  const stale = await redis.keys(`${keys.prefix}:*`);
  if (stale.length > 0) await redis.del(...stale);
  redis.disconnect();
  subscriber.disconnect();
});

/** A socket that keeps what is sent to it; `buffered` is its send buffer, set by the test. */
function stubSocket(conn: Connection) {
  const sent: string[] = [];
  const socket = {
    buffered: 0,
    sent,
    closedWith: 0,
    getUserData: () => ({ conn }),
    getBufferedAmount: () => socket.buffered,
    send: (frame: string) => (sent.push(frame), 1),
    cork: (write: () => void) => write(),
    ping: () => 1,
    subscribe: () => true,
    unsubscribe: () => true,
    end: (code: number) => {
      socket.closedWith = code;
      conn.closed = true; // as the gateway's close handler, which uWS calls at once
    },
  };
  return socket;
}

/** Appends an event to the session's log and publishes it, as the worker's script does. */
async function emit(n: number, text = `message ${n}`): Promise<string> {
  const k = keys.session(SESSION);
  const body = JSON.stringify({ type: 'user.message', id: `m${n}`, text });
  const eventId = (await redis.xadd(k.events, '*', 'e', body))!;
  await redis.spublish(k.channel, `${eventId}\n${body}`);
  return eventId;
}

/** A socket joined to SESSION and held back, as the gateway's welcome does before a replay. */
async function heldBackSocket(log: Redis) {
  const registry = createRegistry('gateway', 'test');
  const metrics = new GatewayMetrics(registry);
  const stats = new ReplicaStats(metrics);
  const fanout = new SessionFanout(
    { publish: () => true } as unknown as TemplatedApp,
    subscriber,
    keys,
    stats,
    new FirstDeltaClock(metrics),
    createLogger('gateway', 'test', 'silent'),
    { slowBytes: 64 * 1024, maxBytes: 1024 * 1024 },
  );
  const ctx = {
    events: new SessionEvents(log, keys, 10_000),
    fanout,
    stats,
    settings: { maxBackpressureBytes: 1024 * 1024 },
  } as unknown as GatewayContext;
  const conn = new Connection('c1', SESSION, true, '127.0.0.1', 'token', 0, undefined);
  const ws = stubSocket(conn);
  const socket = ws as unknown as Socket;
  await fanout.join(socket).subscribed;
  fanout.holdBack(socket); // from here, live events wait in catchingUp
  const sentIds = () => ws.sent.map((frame) => (JSON.parse(frame) as { eventId: string }).eventId);
  return { ctx, conn, ws, socket, registry, sentIds };
}

/**
 * A replay stalled on a full send buffer while the session goes on: three events in the page
 * read, one more held back, then 300 more, which passes the cap and drops the held ones. Then the
 * client reads again. `log` is the connection the replay reads the log with.
 */
async function stalledReplay(log: Redis) {
  await redis.del(keys.session(SESSION).events);
  const { ctx, conn, ws, socket, registry, sentIds } = await heldBackSocket(log);

  // Three events the client missed; one more that arrives after the page was read. All four
  // come live too (and wait, held back).
  const ids = [await emit(1), await emit(2), await emit(3)];
  const page = await ctx.events.readAfter(SESSION, '0-0', 200);
  ids.push(await emit(4));
  await expect.poll(() => conn.catchingUp?.length).toBe(4);

  // The page fills the send buffer: the replay waits before sending the held event.
  ws.send = (frame: string) => {
    if (ws.sent.push(frame) < page.length) return 1;
    ws.buffered = 10_000_000;
    return 0;
  };
  const replayed = replay(socket, ctx, '0-0', { reset: false, page });
  replayed.catch(() => undefined); // awaited by the test
  await expect.poll(() => conn.drainWaiters?.length).toBe(1);

  // Meanwhile the session goes on: 300 more events, more than a replay holds.
  for (let n = 5; n <= 304; n++) ids.push(await emit(n));
  await expect.poll(() => conn.catchUpDropped).toBe(true);
  expect(conn.catchingUp!.length).toBeLessThanOrEqual(256);

  const readAgain = () => {
    ws.send = (frame: string) => (ws.sent.push(frame), 1);
    ws.buffered = 0;
    for (const resolve of conn.drainWaiters!) resolve();
    conn.drainWaiters = null;
  };
  return { ids, ws, replayed, readAgain, sentIds, registry };
}

it('drops the live events it held past 256 and reads them from the log: each event once, in order', async () => {
  const { ids, ws, replayed, readAgain, sentIds, registry } = await stalledReplay(redis);
  readAgain();
  expect(await replayed).toBe('replayed');
  expect(sentIds()).toEqual(ids);
  expect(ws.closedWith).toBe(0);
  expect(await registry.getSingleMetricAsString('chorus_ws_slow_consumer_total')).toMatch(
    /step="catch_up_dropped"[^}]*\} 1\b/,
  );
});

it('drops the live events it held past 1 MiB too, and reads them from the log', async () => {
  await redis.del(keys.session(SESSION).events);
  const { ctx, conn, ws, socket, registry, sentIds } = await heldBackSocket(redis);
  const ids = [await emit(1)];
  const page = await ctx.events.readAfter(SESSION, '0-0', 200);
  ws.buffered = 10_000_000; // the client reads nothing yet
  const replayed = replay(socket, ctx, '0-0', { reset: false, page });
  replayed.catch(() => undefined); // awaited by the test
  await expect.poll(() => conn.drainWaiters?.length).toBe(1);

  // Three large events: far fewer than 256, but more bytes than a replay holds.
  for (let n = 2; n <= 4; n++) ids.push(await emit(n, 'x'.repeat(400_000)));
  await expect.poll(() => conn.catchUpDropped).toBe(true);
  expect(conn.catchingUp!.length).toBeLessThan(3);

  ws.buffered = 0;
  for (const resolve of conn.drainWaiters!) resolve();
  conn.drainWaiters = null;
  expect(await replayed).toBe('replayed');
  expect(sentIds()).toEqual(ids);
  expect(await registry.getSingleMetricAsString('chorus_ws_slow_consumer_total')).toMatch(
    /step="catch_up_dropped"[^}]*\} 1\b/,
  );
});

it('reads the events it dropped from the log after a lastEventId that is no event there', async () => {
  await redis.del(keys.session(SESSION).events);
  const { ctx, conn, ws, socket, sentIds } = await heldBackSocket(redis);
  const seen = [await emit(1), await emit(2)];
  // Past every event, and none itself: a client may send any valid id.
  const lastEventId = `${Number(seen[1]!.split('-')[0]) + 1}-0`;
  await new Promise((resolve) => setTimeout(resolve, 5)); // the next events' ids come after it
  const page = await ctx.events.readAfter(SESSION, lastEventId, 200);
  // While the first page was read, more events came than a replay holds.
  const ids: string[] = [];
  for (let n = 3; n <= 302; n++) ids.push(await emit(n));
  await expect.poll(() => conn.catchUpDropped).toBe(true);

  expect(await replay(socket, ctx, lastEventId, { reset: false, page })).toBe('replayed');
  expect(ws.closedWith).toBe(0);
  expect(sentIds()).toEqual(ids);
});

it('sends the client away (4413) rather than past a gap, when the log was trimmed past it meanwhile', async () => {
  const { ids, ws, replayed, readAgain, sentIds } = await stalledReplay(redis);
  await redis.xtrim(keys.session(SESSION).events, 'MAXLEN', 100);
  readAgain();
  await replayed;
  expect(ws.closedWith).toBe(4413);
  // What it got has no gap; resuming from its last event, it will be told `reset`.
  expect(sentIds()).toEqual(ids.slice(0, 4));
});

it('sends the client away (1013) rather than live past a gap, when reading the log fails', async () => {
  const log = redis.duplicate({ enableOfflineQueue: false });
  const { ids, ws, replayed, readAgain, sentIds } = await stalledReplay(log);
  log.disconnect();
  readAgain();
  await expect(replayed).rejects.toThrow();
  expect(ws.closedWith).toBe(1013);
  expect(sentIds()).toEqual(ids.slice(0, 4));
});
