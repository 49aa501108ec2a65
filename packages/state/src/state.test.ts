import { randomBytes } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import {
  compareEventIds,
  encodeEventBody,
  type ReplyEndEvent,
  type SessionEventBody,
} from '@chorus/protocol';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import {
  ClusterDirectory,
  createRedis,
  decodeLiveMessage,
  encodeControl,
  GraphStore,
  KeySchema,
  MessageInbox,
  SessionDirectory,
  SessionEvents,
  sessionJobKey,
  SessionLease,
  type Graph,
  type HistoryTurn,
  type InboxSettings,
} from './index.js';

const EVENT_ID = /^\d+-\d+$/;
const SETTINGS: InboxSettings = {
  eventsMaxLen: 1_000,
  sessionTtlSeconds: 3_600,
  historyMaxEntries: 4,
};

let redis: Redis;
let prefix: string;
let keys: KeySchema;
let inbox: MessageInbox;
let events: SessionEvents;
let lease: SessionLease;
let session: string;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const newSessionId = () => randomBytes(8).toString('hex');

/** The stream as stored: [eventId, parsed body]. */
async function storedEvents(sessionId: string): Promise<[string, Record<string, unknown>][]> {
  const entries = await redis.xrange(keys.session(sessionId).events, '-', '+');
  return entries.map(([id, fields]) => {
    expect(fields[0]).toBe('e');
    return [id, JSON.parse(fields[1] ?? 'null') as Record<string, unknown>];
  });
}

async function deleteKeys(pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (found.length > 0) await redis.del(...found);
  } while (cursor !== '0');
}

beforeAll(() => {
  redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 1 });
});
afterAll(() => {
  redis.disconnect();
});
beforeEach(() => {
  prefix = `t${randomBytes(5).toString('hex')}`;
  keys = new KeySchema(prefix);
  inbox = new MessageInbox(redis, keys, SETTINGS);
  events = new SessionEvents(redis, keys, SETTINGS.eventsMaxLen);
  lease = new SessionLease(redis, keys, 5_000);
  session = newSessionId();
});
afterEach(async () => {
  await deleteKeys(`*${prefix}*`);
  expect(await redis.keys(`*${prefix}*`)).toEqual([]);
});

/** accept() for a message that must be stored (no rate limit is configured here). */
async function acceptOk(sessionId: string, message: { id: string; text: string; ts: number }) {
  const result = await inbox.accept(sessionId, message);
  if (result.status === 'rate_limited') throw new Error('unexpected rate limit');
  return result;
}

/** One event appended as the lease holder: its eventId, or null when fenced out. */
async function appendOne(
  log: SessionEvents,
  sessionId: string,
  fence: number,
  body: SessionEventBody,
): Promise<string | null> {
  return (
    (await log.appendManyAsLeaseHolder(sessionId, fence, [encodeEventBody(body)]))?.[0] ?? null
  );
}

describe('MessageInbox.accept', () => {
  it('is idempotent on (session, id): one record, one user.message, one inbox entry', async () => {
    const first = await acceptOk(session, { id: 'm1', text: 'hello', ts: 1_000 });
    expect(first.status).toBe('accepted');
    expect(first.record).toEqual({
      eventId: expect.stringMatching(EVENT_ID),
      text: 'hello',
      ts: 1_000,
      state: 'pending',
    });

    const again = await acceptOk(session, { id: 'm1', text: 'something else', ts: 2_000 });
    expect(again).toEqual({ status: 'duplicate', record: first.record, jobKey: first.jobKey });

    const k = keys.session(session);
    expect(await storedEvents(session)).toEqual([
      [first.record.eventId, { type: 'user.message', id: 'm1', text: 'hello', ts: 1_000 }],
    ]);
    expect(await redis.lrange(k.inbox, 0, -1)).toEqual(['m1']);
    expect(await inbox.get(session, 'm1')).toEqual(first.record);
    expect(await inbox.head(session)).toEqual({ id: 'm1', record: first.record });
    const ttl = await redis.ttl(k.messages);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(SETTINGS.sessionTtlSeconds);
  });

  it('refuses new messages over the session token bucket; resends cost nothing', async () => {
    const limited = new MessageInbox(redis, keys, {
      ...SETTINGS,
      messageBurst: 2,
      messageRefillMs: 100,
    });
    const send = (id: string, ts: number) => limited.accept(session, { id, text: id, ts });
    expect((await send('a', 1_000)).status).toBe('accepted');
    expect((await send('b', 1_000)).status).toBe('accepted');
    expect(await send('c', 1_010)).toEqual({ status: 'rate_limited', retryAfterMs: 90 });
    expect((await send('a', 1_020)).status).toBe('duplicate');
    // Nothing of the refused message was stored or logged.
    expect(await limited.get(session, 'c')).toBeNull();
    expect(await redis.lrange(keys.session(session).inbox, 0, -1)).toEqual(['a', 'b']);
    expect((await storedEvents(session)).length).toBe(2);
    expect((await send('c', 1_100)).status).toBe('accepted');
    expect((await send('d', 1_150)).status).toBe('rate_limited');
    // Another session has a bucket of its own.
    expect((await limited.accept(newSessionId(), { id: 'x', text: 'x', ts: 1_150 })).status).toBe(
      'accepted',
    );
  });

  it('queues distinct ids in order and scopes ids to their session', async () => {
    const m1 = await acceptOk(session, { id: 'm1', text: 'one', ts: 1 });
    const m2 = await acceptOk(session, { id: 'm2', text: 'two', ts: 2 });
    const other = await acceptOk(newSessionId(), { id: 'm1', text: 'one', ts: 1 });
    expect(m2.status).toBe('accepted');
    expect(other.status).toBe('accepted');
    expect(await redis.lrange(keys.session(session).inbox, 0, -1)).toEqual(['m1', 'm2']);
    expect((await storedEvents(session)).map(([id]) => id)).toEqual([
      m1.record.eventId,
      m2.record.eventId,
    ]);
    expect(await inbox.get(session, 'missing')).toBeNull();
    expect(await inbox.head(newSessionId())).toBeNull();
  });
});

describe('SessionLease', () => {
  it('is only acquired when a message waits, by one holder at a time, with increasing fences', async () => {
    expect(await lease.acquire(session)).toBeNull();
    expect(await redis.exists(keys.session(session).lease)).toBe(0);

    await acceptOk(session, { id: 'm1', text: 'hi', ts: 1 });
    const first = await lease.acquire(session);
    expect(first).toEqual(expect.any(Number));
    expect(await lease.acquire(session)).toBeNull();
    expect(await redis.zscore(keys.processing, session)).not.toBeNull();

    await lease.release(session, first!);
    expect(await redis.zscore(keys.processing, session)).toBeNull();
    const second = await lease.acquire(session);
    expect(second).toBeGreaterThan(first!);

    // A stale holder can neither release nor renew the current lease.
    await lease.release(session, first!);
    expect(await lease.acquire(session)).toBeNull();
    expect(await lease.renew(session, first!)).toBe(false);
    expect(await lease.renew(session, second!)).toBe(true);
  });

  it('expires by itself after its TTL', async () => {
    const short = new SessionLease(redis, keys, 300);
    await acceptOk(session, { id: 'm1', text: 'hi', ts: 1 });
    const fence = await short.acquire(session);
    expect(fence).not.toBeNull();
    const pttl = await redis.pttl(keys.session(session).lease);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(300);
    expect(await short.acquire(session)).toBeNull();

    await sleep(400);
    expect(await redis.exists(keys.session(session).lease)).toBe(0);
    expect(await short.renew(session, fence!)).toBe(false);
    const next = await short.acquire(session);
    expect(next).toBeGreaterThan(fence!);
  });
});

describe('fencing', () => {
  it('a stale fence appends nothing; the current fence appends a readable event', async () => {
    const { record } = await acceptOk(session, { id: 'm1', text: 'hi', ts: 1 });
    const stale = (await lease.acquire(session))!;
    await lease.release(session, stale);
    const current = (await lease.acquire(session))!;

    expect(
      await appendOne(events, session, stale, {
        type: 'status',
        state: 'processing',
        replyTo: 'm1',
      }),
    ).toBeNull();
    expect(await redis.xlen(keys.session(session).events)).toBe(1);

    const eventId = await appendOne(events, session, current, {
      type: 'status',
      state: 'processing',
      replyTo: 'm1',
    });
    expect(eventId).toMatch(EVENT_ID);
    const after = await events.readAfter(session, record.eventId, 10);
    expect(after).toHaveLength(1);
    expect(after[0]?.eventId).toBe(eventId);
    expect(JSON.parse(after[0]?.body ?? '')).toEqual({
      type: 'status',
      state: 'processing',
      replyTo: 'm1',
    });
  });

  it('nobody appends once the lease has expired, not even its last holder', async () => {
    const short = new SessionLease(redis, keys, 200);
    await acceptOk(session, { id: 'm1', text: 'hi', ts: 1 });
    const fence = (await short.acquire(session))!;
    await sleep(300);
    expect(await appendOne(events, session, fence, { type: 'status', state: 'idle' })).toBeNull();
    expect(await redis.xlen(keys.session(session).events)).toBe(1);
  });
});

describe('MessageInbox.finish', () => {
  const replyEnd = (id: string, text: string): ReplyEndEvent => ({
    type: 'reply.end',
    replyTo: id,
    agent: 'tutor',
    agents: ['tutor'],
    text,
  });
  const turnsOf = (id: string, question: string, answer: string): HistoryTurn[] => [
    { role: 'user', content: question, id },
    { role: 'assistant', content: answer, id },
  ];

  it('ends the last waiting message: final event, done, out of the inbox, history, lease freed, idle', async () => {
    const { record } = await acceptOk(session, { id: 'm1', text: 'q1', ts: 1 });
    const fence = (await lease.acquire(session))!;
    const result = await inbox.finish(
      session,
      fence,
      'm1',
      replyEnd('m1', 'a1'),
      turnsOf('m1', 'q1', 'a1'),
    );
    expect(result).toEqual({ eventId: expect.stringMatching(EVENT_ID), waiting: 0 });

    const after = await events.readAfter(session, record.eventId, 10);
    expect(after.map((e) => JSON.parse(e.body) as unknown)).toEqual([
      { type: 'reply.end', replyTo: 'm1', agent: 'tutor', agents: ['tutor'], text: 'a1' },
      { type: 'status', state: 'idle' },
    ]);
    expect(after[0]?.eventId).toBe(result?.eventId);
    const done = { ...record, state: 'done', finalId: result?.eventId };
    expect(await inbox.get(session, 'm1')).toEqual(done);
    expect(await redis.llen(keys.session(session).inbox)).toBe(0);
    expect(await inbox.head(session)).toBeNull();
    expect(await inbox.history(session)).toEqual(turnsOf('m1', 'q1', 'a1'));
    expect(await redis.exists(keys.session(session).lease)).toBe(0);
    expect(await lease.acquire(session)).toBeNull(); // free, but nothing waits

    // A resend after the answer is a duplicate of a done message.
    expect(await inbox.accept(session, { id: 'm1', text: 'q1', ts: 2 })).toEqual({
      status: 'duplicate',
      record: done,
      jobKey: null,
    });
  });

  it("lengthens the session keys' TTL to its own, meta and fence included, and never shortens one", async () => {
    await acceptOk(session, { id: 'm1', text: 'q1', ts: 1 });
    const fence = (await lease.acquire(session))!;
    const k = keys.session(session);
    // Close to expiry, all but the log, which a gateway with a longer TTL kept for longer.
    for (const key of [k.meta, k.fence, k.messages]) await redis.expire(key, 10);
    await redis.expire(k.events, 2 * SETTINGS.sessionTtlSeconds);

    await inbox.finish(session, fence, 'm1', replyEnd('m1', 'a1'), turnsOf('m1', 'q1', 'a1'));
    for (const key of [k.meta, k.fence, k.messages, k.history]) {
      expect(await redis.ttl(key)).toBeGreaterThan(SETTINGS.sessionTtlSeconds - 5);
    }
    expect(await redis.ttl(k.events)).toBeGreaterThan(2 * SETTINGS.sessionTtlSeconds - 5);
  });

  it('run twice for one message (its first reply lost), ends it once', async () => {
    for (const id of ['m1', 'm2']) await acceptOk(session, { id, text: `q-${id}`, ts: 1 });
    const fence = (await lease.acquire(session))!;
    const finish = () =>
      inbox.finish(session, fence, 'm1', replyEnd('m1', 'a1'), turnsOf('m1', 'q-m1', 'a1'));
    const first = await finish();
    expect(await finish()).toEqual(first);
    const ends = (await storedEvents(session)).filter(([, e]) => e.type === 'reply.end');
    expect(ends.map(([id]) => id)).toEqual([first?.eventId]);
    expect(await inbox.history(session)).toEqual(turnsOf('m1', 'q-m1', 'a1'));
    expect(await redis.lrange(keys.session(session).inbox, 0, -1)).toEqual(['m2']);
  });

  it('keeps the lease while another message waits, and trims the history to historyMaxEntries', async () => {
    const accepted = [];
    for (const id of ['m1', 'm2', 'm3'])
      accepted.push(await acceptOk(session, { id, text: `q-${id}`, ts: 1 }));
    const fence = (await lease.acquire(session))!;
    const before = await redis.xlen(keys.session(session).events);

    const first = await inbox.finish(
      session,
      fence,
      'm1',
      replyEnd('m1', 'a1'),
      turnsOf('m1', 'q-m1', 'a1'),
    );
    expect(first?.waiting).toBe(2);
    const second = await inbox.finish(
      session,
      fence,
      'm2',
      replyEnd('m2', 'a2'),
      turnsOf('m2', 'q-m2', 'a2'),
    );
    expect(second?.waiting).toBe(1);
    // Only the two reply.end events: no idle while messages wait, and the lease is still ours.
    expect(await redis.xlen(keys.session(session).events)).toBe(before + 2);
    expect(await redis.get(keys.session(session).lease)).toBe(String(fence));
    expect(await lease.acquire(session)).toBeNull();
    expect(await inbox.head(session)).toEqual({ id: 'm3', record: accepted[2]?.record });

    const third = await inbox.finish(
      session,
      fence,
      'm3',
      replyEnd('m3', 'a3'),
      turnsOf('m3', 'q-m3', 'a3'),
    );
    expect(third?.waiting).toBe(0);
    expect(await inbox.history(session)).toEqual([
      ...turnsOf('m2', 'q-m2', 'a2'),
      ...turnsOf('m3', 'q-m3', 'a3'),
    ]);
    const tail = (await storedEvents(session)).slice(-2).map(([, body]) => body);
    expect(tail).toEqual([replyEnd('m3', 'a3'), { type: 'status', state: 'idle' }]);
    expect(await redis.exists(keys.session(session).lease)).toBe(0);
  });

  it('returns waiting=1 for the first of two messages', async () => {
    await acceptOk(session, { id: 'm1', text: 'q1', ts: 1 });
    await acceptOk(session, { id: 'm2', text: 'q2', ts: 2 });
    const fence = (await lease.acquire(session))!;
    const error = {
      type: 'error',
      code: 'llm_unavailable',
      message: 'down',
      replyTo: 'm1',
    } as const;
    const result = await inbox.finish(session, fence, 'm1', error, [
      { role: 'user', content: 'q1', id: 'm1' },
    ]);
    expect(result).toEqual({ eventId: expect.stringMatching(EVENT_ID), waiting: 1 });
    expect((await storedEvents(session)).at(-1)).toEqual([result?.eventId, error]);
    expect(await redis.get(keys.session(session).lease)).toBe(String(fence));
    expect(await redis.lrange(keys.session(session).inbox, 0, -1)).toEqual(['m2']);
  });

  it('with a stale fence returns null and changes nothing', async () => {
    const { record } = await acceptOk(session, { id: 'm1', text: 'q1', ts: 1 });
    const stale = (await lease.acquire(session))!;
    await lease.release(session, stale);
    const current = (await lease.acquire(session))!;
    const k = keys.session(session);
    const snapshot = async () => ({
      events: await redis.xrange(k.events, '-', '+'),
      inbox: await redis.lrange(k.inbox, 0, -1),
      messages: await redis.hgetall(k.messages),
      history: await redis.lrange(k.history, 0, -1),
      lease: await redis.get(k.lease),
    });
    const before = await snapshot();

    expect(
      await inbox.finish(session, stale, 'm1', replyEnd('m1', 'late'), turnsOf('m1', 'q1', 'late')),
    ).toBeNull();
    expect(await snapshot()).toEqual(before);
    expect(before.lease).toBe(String(current));
    expect(await inbox.get(session, 'm1')).toEqual(record);
  });
});

describe('SessionEvents', () => {
  it('readAfter returns events strictly after an id, in order; oldestEventId is the first', async () => {
    expect(await events.oldestEventId(session)).toBeNull();
    expect(await events.readAfter(session, '0-0', 10)).toEqual([]);

    const { record } = await acceptOk(session, { id: 'm1', text: 'hi', ts: 1 });
    const fence = (await lease.acquire(session))!;
    const ids = [record.eventId];
    for (let i = 0; i < 5; i++) {
      ids.push(
        (await appendOne(events, session, fence, {
          type: 'reply.delta',
          replyTo: 'm1',
          agent: 'tutor',
          text: `${i}`,
        }))!,
      );
    }
    expect([...ids].sort(compareEventIds)).toEqual(ids);
    expect(new Set(ids).size).toBe(6);

    const afterSecond = await events.readAfter(session, ids[1]!, 10);
    expect(afterSecond.map((e) => e.eventId)).toEqual(ids.slice(2));
    expect(afterSecond.map((e) => (JSON.parse(e.body) as { text: string }).text)).toEqual([
      '1',
      '2',
      '3',
      '4',
    ]);
    expect((await events.readAfter(session, '0-0', 2)).map((e) => e.eventId)).toEqual(
      ids.slice(0, 2),
    );
    expect(await events.readAfter(session, ids[5]!, 10)).toEqual([]);
    expect(await events.oldestEventId(session)).toBe(ids[0]);
  });

  it('the log is bounded: oldestEventId moves on once old entries are trimmed', async () => {
    const small = new SessionEvents(redis, keys, 10);
    const { record } = await acceptOk(session, { id: 'm1', text: 'hi', ts: 1 });
    const fence = (await lease.acquire(session))!;
    let last = '';
    for (let i = 0; i < 300; i++)
      last = (await appendOne(small, session, fence, {
        type: 'status',
        state: 'processing',
      }))!;
    expect(await redis.xlen(keys.session(session).events)).toBeLessThan(300);
    const oldest = await small.oldestEventId(session);
    expect(oldest).not.toBe(record.eventId);
    expect(await small.readAfter(session, last, 10)).toEqual([]);
  });
});

describe('live messages', () => {
  let subscriber: Redis;
  afterEach(() => subscriber?.disconnect());

  it('accept and append publish `<eventId>\\n<body>` on the session shard channel', async () => {
    subscriber = new Redis(inject('redisUrl'));
    const received: string[] = [];
    subscriber.on('smessage', (channel: string, raw: string) => {
      if (channel === keys.session(session).channel) received.push(raw);
    });
    await subscriber.ssubscribe(keys.session(session).channel);

    const { record } = await acceptOk(session, { id: 'm1', text: 'line one\nline two', ts: 7 });
    await acceptOk(session, { id: 'm1', text: 'resent', ts: 8 }); // a duplicate publishes nothing
    const fence = (await lease.acquire(session))!;
    const appended = await appendOne(events, session, fence, {
      type: 'reply.start',
      replyTo: 'm1',
      agent: 'tutor',
    });
    // A fenced-out append publishes nothing either.
    expect(
      await appendOne(events, session, fence + 1, { type: 'status', state: 'idle' }),
    ).toBeNull();

    const deadline = Date.now() + 2_000;
    while (received.length < 2 && Date.now() < deadline) await sleep(10);
    await sleep(50);
    expect(received).toHaveLength(2);
    const [first, second] = received.map((raw) => decodeLiveMessage(raw));
    const stored = (await events.readAfter(session, '0-0', 10))[0]!;
    expect(received[0]).toBe(`${record.eventId}\n${stored.body}`);
    expect(first).toEqual({
      kind: 'events',
      events: [{ eventId: record.eventId, body: stored.body }],
    });
    expect(JSON.parse(stored.body)).toEqual({
      type: 'user.message',
      id: 'm1',
      text: 'line one\nline two',
      ts: 7,
    });
    expect(second).toEqual({
      kind: 'events',
      events: [
        {
          eventId: appended,
          body: JSON.stringify({ type: 'reply.start', replyTo: 'm1', agent: 'tutor' }),
        },
      ],
    });
  });

  it('control messages round-trip and garbage decodes to null', () => {
    const raw = encodeControl({ kind: 'evict', connectionId: 'c-1', code: 4001 });
    expect(raw.startsWith('!')).toBe(true);
    expect(decodeLiveMessage(raw)).toEqual({ kind: 'evict', connectionId: 'c-1', code: 4001 });
    expect(decodeLiveMessage('1-0\n{"a":1}\n1-1\n{"b":2}')).toEqual({
      kind: 'events',
      events: [
        { eventId: '1-0', body: '{"a":1}' },
        { eventId: '1-1', body: '{"b":2}' },
      ],
    });
    for (const garbage of [
      '',
      'no newline',
      '\nbody only',
      '1-0\n',
      '1-0\n{"a":1}\n{"b":2}',
      '!',
      '!not json',
      '!{"kind":"evict"}',
      '!{"kind":"evict","connectionId":1,"code":4001}',
      '!{"kind":"other","connectionId":"c","code":1}',
      '!null',
    ]) {
      expect(decodeLiveMessage(garbage), garbage).toBeNull();
    }
  });
});

describe('SessionDirectory', () => {
  it('removeSocket removes one socket, and unlists the session under a gateway left without one', async () => {
    const directory = new SessionDirectory(redis, keys, 60);
    const a = { connectionId: 'sock-a', gatewayId: 'gw-a' };
    const b = { connectionId: 'sock-b', gatewayId: 'gw-a' };
    for (const entry of [a, b]) await directory.join(session, { entry, maxSockets: 0 });
    await directory.listUnderGateway([session], 'gw-a');

    await directory.removeSocket(session, 'sock-b', { id: 'gw-a', lastHere: false });
    await directory.removeSocket(session, 'never-there', { id: 'gw-a', lastHere: false });
    expect(await directory.sockets(session)).toEqual([{ ...a, openedAt: expect.any(Number) }]);
    expect(await redis.sismember(keys.gatewaySessions('gw-a'), session)).toBe(1);
    await directory.removeSocket(session, 'sock-a', { id: 'gw-a', lastHere: true });
    expect(await directory.sockets(session)).toEqual([]);
    expect(await redis.sismember(keys.gatewaySessions('gw-a'), session)).toBe(0);
  });

  it('reapGateway removes only the sockets a dead gateway left behind', async () => {
    const directory = new SessionDirectory(redis, keys, 60);
    const other = newSessionId();
    const mine = { connectionId: 'keep', gatewayId: 'gw-live' };
    const joins: [string, { connectionId: string; gatewayId: string }][] = [
      [session, { connectionId: 'd1', gatewayId: 'gw-dead' }],
      [session, mine],
      [other, { connectionId: 'd2', gatewayId: 'gw-dead' }],
    ];
    for (const [id, entry] of joins) await directory.join(id, { entry, maxSockets: 0 });
    await directory.listUnderGateway([session, other], 'gw-dead');
    expect(await directory.reapGateway('gw-dead')).toBe(2);
    expect(await directory.sockets(session)).toEqual([{ ...mine, openedAt: expect.any(Number) }]);
    expect(await directory.sockets(other)).toEqual([]);
    expect(await redis.exists(keys.gatewaySessions('gw-dead'))).toBe(0);
  });
});

describe('ClusterDirectory', () => {
  it('heartbeats make members live with their figures until the TTL passes', async () => {
    const cluster = new ClusterDirectory(redis, keys);
    await cluster.heartbeat('gateway', 'gw-1', { connections: 3, sessions: 2 }, 300);
    await cluster.heartbeat('worker', 'wk-1', { active_jobs: 1, offline: 0 }, 10_000);
    expect(await cluster.view()).toEqual({
      gateways: [{ id: 'gw-1', figures: { connections: 3, sessions: 2 } }],
      workers: [{ id: 'wk-1', figures: { active_jobs: 1, offline: 0 } }],
      processingSessions: 0,
    });
    // A newer heartbeat replaces the figures, it does not merge them.
    await cluster.heartbeat('worker', 'wk-1', { active_jobs: 2 }, 10_000);
    expect((await cluster.view()).workers).toEqual([{ id: 'wk-1', figures: { active_jobs: 2 } }]);

    await sleep(400);
    const later = await cluster.view();
    expect(later.gateways).toEqual([]);
    expect(later.workers.map((w) => w.id)).toEqual(['wk-1']);
    expect(await redis.exists(keys.gatewayStats('gw-1'))).toBe(0);
    expect(await cluster.liveIds('gateway')).toEqual([]);
    expect(await cluster.expiredIds('gateway')).toEqual(['gw-1']);
    await cluster.forget('gateway', 'gw-1');
    expect(await cluster.expiredIds('gateway')).toEqual([]);

    await cluster.leave('worker', 'wk-1');
    expect((await cluster.view()).workers).toEqual([]);
    expect(await redis.exists(keys.workerStats('wk-1'))).toBe(0);
  });

  it('counts sessions that hold a processing lease', async () => {
    const cluster = new ClusterDirectory(redis, keys);
    await acceptOk(session, { id: 'm1', text: 'hi', ts: 1 });
    const fence = (await lease.acquire(session))!;
    expect((await cluster.view()).processingSessions).toBe(1);
    await lease.release(session, fence);
    expect((await cluster.view()).processingSessions).toBe(0);
  });

  it('incrementCounters adds up; counters reads them back as numbers', async () => {
    const cluster = new ClusterDirectory(redis, keys);
    expect(await cluster.counters()).toEqual({});
    await cluster.incrementCounters({ messages: 2, errors: 0, connections: 1 });
    await cluster.incrementCounters({ messages: 3 });
    expect(await cluster.counters()).toEqual({ messages: 5, connections: 1 });
  });
});

describe('GraphStore', () => {
  const graph: Graph = {
    nodes: [
      { id: 'a', label: 'Array', type: 'concept', description: 'contiguous' },
      { id: 'b', label: 'Binary search', type: 'algorithm' },
      { id: 'c', label: 'Sorting', type: 'topic' },
    ],
    edges: [
      { source: 'b', target: 'a', label: 'uses' },
      { source: 'b', target: 'a', label: 'uses' },
      { source: 'b', target: 'a', label: 'requires' },
      { source: 'b', target: 'c', label: 'requires' },
    ],
  };
  const byId = <T extends { id: string }>(list: T[]) =>
    [...list].sort((x, y) => x.id.localeCompare(y.id));
  const edgeOrder = (list: Graph['edges']) =>
    [...list].sort((x, y) =>
      `${x.source}|${x.label}|${x.target}`.localeCompare(`${y.source}|${y.label}|${y.target}`),
    );

  it('seeds once per version, dedupes edges, counts and loads', async () => {
    const store = new GraphStore(redis, keys);
    expect(await store.counts()).toEqual({ nodes: 0, edges: 0 });
    expect(await store.seed(graph, 'v1')).toBe(true);
    expect(await store.counts()).toEqual({ nodes: 3, edges: 3 });
    const loaded = await store.load();
    expect(byId(loaded.nodes)).toEqual(graph.nodes);
    expect(edgeOrder(loaded.edges)).toEqual(
      edgeOrder([graph.edges[0]!, graph.edges[2]!, graph.edges[3]!]),
    );

    const changed: Graph = {
      nodes: [...graph.nodes, { id: 'd', label: 'Heap', type: 'concept' }],
      edges: graph.edges,
    };
    expect(await store.seed(changed, 'v1')).toBe(false);
    expect(await store.counts()).toEqual({ nodes: 3, edges: 3 });
    expect(await store.seed(changed, 'v2')).toBe(true);
    expect(await store.counts()).toEqual({ nodes: 4, edges: 3 });
  });

  it('loads a graph larger than one write batch', async () => {
    const store = new GraphStore(redis, keys);
    const nodes = Array.from({ length: 1_203 }, (_, i) => ({
      id: `n${i}`,
      label: `Node ${i}`,
      type: 'concept',
    }));
    const edges = nodes.slice(1).map((n, i) => ({ source: `n${i}`, target: n.id, label: 'next' }));
    expect(await store.seed({ nodes, edges }, 'big')).toBe(true);
    expect(await store.counts()).toEqual({ nodes: 1_203, edges: 1_202 });
    expect((await store.load()).nodes).toHaveLength(1_203);
  });
});

describe('group commit: appendManyAsLeaseHolder and finish with queued events', () => {
  const body = (text: string) =>
    JSON.stringify({ type: 'reply.delta', replyTo: 'm1', agent: 'tutor', text });

  it('appends every event in order in one step, publishes them in one message, and refuses a stale fence', async () => {
    const subscriber = new Redis(inject('redisUrl'));
    try {
      const received: string[] = [];
      subscriber.on('smessage', (channel: string, raw: string) => {
        if (channel === keys.session(session).channel) received.push(raw);
      });
      await subscriber.ssubscribe(keys.session(session).channel);
      await acceptOk(session, { id: 'm1', text: 'q', ts: 1 });
      const fence = (await lease.acquire(session))!;
      const ids = await events.appendManyAsLeaseHolder(session, fence, [
        body('a'),
        body('b'),
        body('c'),
      ]);
      expect(ids).toHaveLength(3);
      expect([...ids!].sort(compareEventIds)).toEqual(ids);
      const stored = await storedEvents(session);
      expect(stored.slice(1).map(([id, e]) => [id, e.text])).toEqual([
        [ids![0], 'a'],
        [ids![1], 'b'],
        [ids![2], 'c'],
      ]);
      expect(await events.appendManyAsLeaseHolder(session, fence + 1, [body('x')])).toBeNull();
      expect(await redis.xlen(keys.session(session).events)).toBe(4);
      await sleep(50);
      expect(received.slice(1)).toEqual([
        ids!.map((id, i) => `${id}\n${body('abc'[i]!)}`).join('\n'),
      ]);
    } finally {
      subscriber.disconnect();
    }
  });

  it('finish appends the queued events before the final one, in the same step, and publishes them in one message', async () => {
    await acceptOk(session, { id: 'm1', text: 'q1', ts: 1 });
    await acceptOk(session, { id: 'm2', text: 'q2', ts: 2 });
    const subscriber = new Redis(inject('redisUrl'));
    const received: string[] = [];
    subscriber.on('smessage', (_channel: string, raw: string) => received.push(raw));
    await subscriber.ssubscribe(keys.session(session).channel);
    const fence = (await lease.acquire(session))!;
    const end: ReplyEndEvent = {
      type: 'reply.end',
      replyTo: 'm1',
      agent: 'tutor',
      agents: ['tutor'],
      text: 'ab',
    };
    const result = await inbox.finish(
      session,
      fence,
      'm1',
      end,
      [
        { role: 'user', content: 'q1', id: 'm1' },
        { role: 'assistant', content: 'ab', id: 'm1' },
      ],
      [body('a'), body('b')],
    );
    // m2 still waits: no idle status yet, and the lease stays.
    expect(result).toEqual({ eventId: expect.stringMatching(EVENT_ID), waiting: 1 });
    const types = async () =>
      (await storedEvents(session)).map(([, e]) => (e.type === 'reply.delta' ? e.text : e.type));
    expect(await types()).toEqual(['user.message', 'user.message', 'a', 'b', 'reply.end']);
    expect((await inbox.history(session)).map((t) => t.content)).toEqual(['q1', 'ab']);
    expect(await redis.exists(keys.session(session).lease)).toBe(1);

    // The last one: its end and the idle status, the lease let go.
    await inbox.finish(session, fence, 'm2', { ...end, replyTo: 'm2' }, [], [body('c')]);
    expect((await types()).slice(5)).toEqual(['c', 'reply.end', 'status']);
    expect(await redis.exists(keys.session(session).lease)).toBe(0);

    // Each step's events went out as stored, in one message per step.
    await expect.poll(() => received.length).toBe(2);
    subscriber.disconnect();
    const stored = await storedEvents(session);
    expect(received.map((raw) => decodeLiveMessage(raw))).toEqual(
      [stored.slice(2, 5), stored.slice(5)].map((step) => ({
        kind: 'events',
        events: step.map(([eventId, e]) => ({ eventId, body: JSON.stringify(e) })),
      })),
    );
  });
});

describe('MessageInbox.accept: which messages need a job', () => {
  it('one job key per turn of the lease: none while a worker holds it, a new one after', async () => {
    const m1 = await acceptOk(session, { id: 'm1', text: 'q1', ts: 1 });
    const m2 = await acceptOk(session, { id: 'm2', text: 'q2', ts: 2 });
    // Nobody holds the session: both need the job, and it is the same one.
    expect(m1.jobKey).toBe(sessionJobKey(session, 0));
    expect(m2.jobKey).toBe(m1.jobKey);
    // A resend of a waiting message queues it too (its gateway may have died before it did).
    expect((await acceptOk(session, { id: 'm1', text: 'q1', ts: 3 })).jobKey).toBe(m1.jobKey);

    const claim = await inbox.claim(session, {
      heldFence: null,
      leaseTtlMs: 5_000,
      withHistory: false,
    });
    if (claim.status !== 'claimed') throw new Error('not claimed');
    // The holder answers every waiting message before it lets go: no job while it holds.
    expect((await acceptOk(session, { id: 'm3', text: 'q3', ts: 4 })).jobKey).toBeNull();
    for (const [id, behind] of [
      ['m1', 2],
      ['m2', 1],
      ['m3', 0],
    ] as const) {
      const head = await inbox.claim(session, {
        heldFence: claim.fence,
        leaseTtlMs: 5_000,
        withHistory: false,
      });
      expect(head).toMatchObject({ status: 'claimed', id });
      const idle = { type: 'status', state: 'idle' } as const;
      expect(await inbox.finish(session, claim.fence, id, idle, [])).toMatchObject({
        waiting: behind,
      });
    }
    // Let go with the last answer: the next message needs a job, under a key not used before.
    expect(await redis.exists(keys.session(session).lease)).toBe(0);
    const m4 = await acceptOk(session, { id: 'm4', text: 'q4', ts: 5 });
    expect(m4.jobKey).toBe(sessionJobKey(session, claim.fence));
    expect(m4.jobKey).not.toBe(m1.jobKey);
    // An answered message never needs one.
    expect((await acceptOk(session, { id: 'm2', text: 'q2', ts: 6 })).jobKey).toBeNull();
  });
});

describe('MessageInbox.claim', () => {
  const claimFor = (withHistory = true) =>
    inbox.claim(session, { heldFence: null, leaseTtlMs: 5_000, withHistory });

  it('takes the lease and returns the head, its cancel request and the history', async () => {
    await acceptOk(session, { id: 'm1', text: 'q1', ts: 1 });
    await acceptOk(session, { id: 'm2', text: 'q2', ts: 2 });
    await redis.rpush(
      keys.session(session).history,
      JSON.stringify({ role: 'user', content: 'old', id: 'm0' }),
    );
    await inbox.requestCancel(session, 'm1');
    const claim = await claimFor();
    expect(claim).toMatchObject({
      status: 'claimed',
      id: 'm1',
      record: { text: 'q1', state: 'pending', tries: 1 },
      cancelRequested: true,
      history: [{ role: 'user', content: 'old', id: 'm0' }],
    });
    if (claim.status !== 'claimed') return;
    expect(await redis.get(keys.session(session).lease)).toBe(String(claim.fence));
    // Held: another claim is busy; the holder reads the next message with its fence.
    expect(await claimFor()).toEqual({ status: 'busy' });
    await inbox.finish(session, claim.fence, 'm1', { type: 'status', state: 'idle' }, []);
    const next = await inbox.claim(session, {
      heldFence: claim.fence,
      leaseTtlMs: 5_000,
      withHistory: false,
    });
    expect(next).toMatchObject({
      status: 'claimed',
      fence: claim.fence,
      id: 'm2',
      cancelRequested: false,
      history: [],
    });
    expect(
      await inbox.claim(session, {
        heldFence: claim.fence + 1,
        leaseTtlMs: 5_000,
        withHistory: false,
      }),
    ).toEqual({ status: 'lost' });
  });

  it('nothing when no message waits, and drops ids without a record', async () => {
    expect(await claimFor()).toEqual({ status: 'nothing' });
    await acceptOk(session, { id: 'm1', text: 'q1', ts: 1 });
    const first = await claimFor();
    if (first.status !== 'claimed') throw new Error('not claimed');
    await inbox.finish(session, first.fence, 'm1', { type: 'status', state: 'idle' }, []);
    expect(await claimFor()).toEqual({ status: 'nothing' });

    await acceptOk(session, { id: 'm2', text: 'q2', ts: 2 });
    await redis.lpush(keys.session(session).inbox, 'ghost');
    const claim = await claimFor(false);
    expect(claim).toMatchObject({ status: 'claimed', id: 'm2', history: [] });
    expect(await redis.lrange(keys.session(session).inbox, 0, -1)).toEqual(['m2']);
    if (claim.status === 'claimed') await lease.release(session, claim.fence);
    await redis.del(keys.session(session).inbox);
    await redis.rpush(keys.session(session).inbox, 'ghost');
    expect(await claimFor()).toEqual({ status: 'nothing' });
    expect(await redis.exists(keys.session(session).lease)).toBe(0);

    // A holder whose next look finds only ids without a record lets go in the same step.
    await acceptOk(session, { id: 'm3', text: 'q3', ts: 3 });
    const third = await claimFor();
    if (third.status !== 'claimed') throw new Error('not claimed');
    await redis.hdel(keys.session(session).messages, 'm3');
    expect(
      await inbox.claim(session, { heldFence: third.fence, leaseTtlMs: 5_000, withHistory: false }),
    ).toEqual({ status: 'nothing' });
    expect(await redis.exists(keys.session(session).lease)).toBe(0);
  });
});

describe('SessionDirectory.join (a socket joins its session in one script)', () => {
  const entry = (connectionId: string, gatewayId: string) => ({ connectionId, gatewayId });
  /** As read back: with its age by Redis's clock (µs). */
  const aged = (connectionId: string, gatewayId: string) => ({
    connectionId,
    gatewayId,
    openedAt: expect.any(Number) as number,
  });

  it('records the session and the socket, and tells a new session from a known one', async () => {
    const directory = new SessionDirectory(redis, keys, 60);
    const [seconds = '0'] = await redis.time();
    const first = await directory.join(
      session,
      { entry: entry('c1', 'gw-a'), maxSockets: 8 },
      1_000,
    );
    expect(first).toEqual({ existed: false, evict: [], reset: false, page: [] });
    const again = await directory.join(
      session,
      { entry: entry('c2', 'gw-a'), maxSockets: 8 },
      2_000,
    );
    expect(again.existed).toBe(true);
    const k = keys.session(session);
    expect(await redis.hgetall(k.meta)).toEqual({ created: '1000', lastSeen: '2000' });
    const sockets = await directory.sockets(session);
    expect(sockets).toEqual([aged('c1', 'gw-a'), aged('c2', 'gw-a')]);
    // Aged by Redis's clock, in µs, in the order they joined.
    expect(sockets[0]!.openedAt).toBeGreaterThanOrEqual(Number(seconds) * 1e6);
    expect(sockets[0]!.openedAt).toBeLessThan(sockets[1]!.openedAt);
    for (const key of [k.meta, k.sockets]) {
      expect(await redis.ttl(key)).toBeGreaterThan(0);
      expect(await redis.ttl(key)).toBeLessThanOrEqual(60);
    }
    await directory.listUnderGateway([session, 'other'], 'gw-a');
    await directory.listUnderGateway([], 'gw-a');
    expect(await redis.smembers(keys.gatewaySessions('gw-a'))).toEqual(
      expect.arrayContaining([session, 'other']),
    );
  });

  it('names the oldest sockets on live gateways beyond the cap, and only those', async () => {
    const directory = new SessionDirectory(redis, keys, 60);
    const cluster = new ClusterDirectory(redis, keys);
    await cluster.heartbeat('gateway', 'gw-a', {}, 10_000);
    await cluster.heartbeat('gateway', 'gw-b', {}, 1);
    await sleep(5);
    const join = (e: ReturnType<typeof entry>) =>
      directory.join(session, { entry: e, maxSockets: 2 });
    // gw-b's heartbeat lapsed: its socket, the oldest, neither counts nor is evicted.
    expect((await join(entry('s-dead', 'gw-b'))).evict).toEqual([]);
    expect((await join(entry('s-b', 'gw-a'))).evict).toEqual([]);
    expect((await join(entry('s-c', 'gw-a'))).evict).toEqual([]);
    // Ids sort the other way round from age: only the order of joining counts.
    expect((await join(entry('s-a', 'gw-a'))).evict).toEqual([aged('s-b', 'gw-a')]);
    // A gateway without a heartbeat yet still counts its own new socket.
    expect((await join(entry('s-0', 'gw-new'))).evict).toEqual([
      aged('s-b', 'gw-a'),
      aged('s-c', 'gw-a'),
    ]);
    const none = await directory.join(session, { entry: entry('s-x', 'gw-a'), maxSockets: 0 });
    expect(none.evict).toEqual([]);
  });

  it('reads the first replay page after lastEventId, or the log from its start on a reset', async () => {
    const directory = new SessionDirectory(redis, keys, 60);
    const stream = keys.session(session).events;
    const join = (replayAfter: string, pageSize = 200) =>
      directory.join(session, {
        entry: entry('c1', 'gw-a'),
        maxSockets: 8,
        replayAfter,
        pageSize,
      });
    // An empty log: anything is older than every retained event.
    expect(await join('0-0')).toMatchObject({ reset: true, page: [] });
    expect(await join('5-0')).toMatchObject({ reset: true, page: [] });
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++)
      ids.push((await redis.xadd(stream, `${i}0-0`, 'e', `{"n":${i}}`))!);
    const page = (from: number, to: number) =>
      ids.slice(from, to).map((eventId, i) => ({ eventId, body: `{"n":${from + i + 1}}` }));
    expect(await join(ids[1]!)).toMatchObject({ reset: false, page: page(2, 5) });
    expect(await join(ids[1]!, 2)).toMatchObject({ reset: false, page: page(2, 4) });
    expect(await join(ids[4]!)).toMatchObject({ reset: false, page: [] });
    // Between two retained events: still a replay, from the next one.
    expect(await join('25-0')).toMatchObject({ reset: false, page: page(2, 5) });
    expect(await join('0-0')).toMatchObject({ reset: true, page: page(0, 5) });
    await redis.xtrim(stream, 'MAXLEN', 3);
    expect(await join(ids[0]!)).toMatchObject({ reset: true, page: page(2, 5) });
    expect(await join(ids[2]!)).toMatchObject({ reset: false, page: page(3, 5) });
  });
});

/** A TCP proxy to the test Redis that can swallow the next reply and reset the connection. */
async function replyDroppingProxy() {
  const upstream = new URL(inject('redisUrl'));
  let dropNext = false;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const up = connect(Number(upstream.port || 6379), upstream.hostname);
    for (const socket of [client, up]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        client.destroy();
        up.destroy();
      });
    }
    client.on('data', (data) => up.write(data));
    up.on('data', (data) => {
      if (!dropNext) return void client.write(data);
      dropNext = false;
      client.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `redis://127.0.0.1:${port}`,
    dropNextReply: () => (dropNext = true),
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

describe('a reply lost with its connection (Redis ran the command)', () => {
  // The call waits for its command timeout (5 s) before it fails.
  it(
    'is not run again on the new connection: the events are appended once',
    { timeout: 15_000 },
    async () => {
      const proxy = await replyDroppingProxy();
      const viaProxy = createRedis({ kind: 'single', url: proxy.url }, { name: 'test:proxied' });
      try {
        await acceptOk(session, { id: 'm1', text: 'q', ts: 1 });
        const fence = (await new SessionLease(redis, keys, 60_000).acquire(session))!;
        const delta = (text: string) =>
          JSON.stringify({ type: 'reply.delta', replyTo: 'm1', agent: 'tutor', text });
        const proxiedEvents = new SessionEvents(viaProxy, keys, SETTINGS.eventsMaxLen);
        expect(
          await proxiedEvents.appendManyAsLeaseHolder(session, fence, [delta('a')]),
        ).toHaveLength(1);

        proxy.dropNextReply();
        // The outcome is unknown to the caller, which hears an error and retries its own way.
        await expect(
          proxiedEvents.appendManyAsLeaseHolder(session, fence, [delta('b')]),
        ).rejects.toThrow();
        expect(
          await proxiedEvents.appendManyAsLeaseHolder(session, fence, [delta('c')]),
        ).toHaveLength(1);
        const texts = (await storedEvents(session)).slice(1).map(([, e]) => e.text);
        expect(texts).toEqual(['a', 'b', 'c']);
      } finally {
        viaProxy.disconnect();
        proxy.close();
      }
    },
  );
});
