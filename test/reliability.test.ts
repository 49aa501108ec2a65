import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { compareEventIds } from '../packages/protocol/dist/index.js';
import { startFreezableProxy } from './support/freezable-proxy.js';
import { startRedisServer, type TestRedis } from './support/redis-server.js';
import type { GatewayProcess, WorkerProcess } from './support/service-process.js';
import { TestBrowser, type ConnectOptions, type Frame } from './support/test-browser.js';
import { TestCluster } from './support/test-cluster.js';

/**
 * Fault injection: sockets dropped mid-reply, replays, resends, gateways and workers stopped or
 * killed, Redis restarted. Every case asserts on what the client sees, assembled the way a
 * client does across its sockets: the whole reply once, no duplicate eventId, order kept.
 */

/**
 * The tutor alone answers this (no keyword of another agent), offline in about 100 words, so a
 * worker with OFFLINE_CHUNK_DELAY_MS=30 streams it for ~3 s.
 */
const LONG_QUESTION = 'Explain how a hash table works';
const SLOW_WORKER = { OFFLINE_CHUNK_DELAY_MS: '30' };

type Process = GatewayProcess | WorkerProcess;
type Session = { session: string; token: string };

interface Health {
  status: string;
  cluster: { gateways: number; workers: number };
}

// ---------------------------------------------------------------------------------------------
// What the client sees

/** Session events among `frames`, in arrival order (an `ack` repeats its user.message's id). */
const eventsOf = (frames: Frame[]): Frame[] =>
  frames.filter((f) => typeof f.eventId === 'string' && f.type !== 'ack');
const idsOf = (frames: Frame[]): string[] => eventsOf(frames).map((f) => String(f.eventId));

/** The eventId a client keeps: the last session event this socket received. */
function lastEventId(browser: TestBrowser): string {
  const id = idsOf(browser.frames).at(-1);
  if (id === undefined) throw new Error('the socket received no session event');
  return id;
}

function expectIncreasing(ids: string[], label: string): void {
  const broken = ids.flatMap((id, i) => {
    const previous = ids[i - 1];
    return previous !== undefined && compareEventIds(previous, id) >= 0
      ? [`${previous} -> ${id}`]
      : [];
  });
  expect(broken, `${label}: eventIds must increase strictly`).toEqual([]);
}

function expectNoDuplicates(ids: string[], label: string): void {
  const seen = new Set<string>();
  const duplicates = ids.filter((id) => (seen.has(id) ? true : (seen.add(id), false)));
  expect(duplicates, `${label}: duplicate eventIds`).toEqual([]);
}

const deltasOf = (frames: Frame[], id: string) =>
  frames.filter((f) => f.type === 'reply.delta' && f.replyTo === id).length;

/**
 * The reply to `id` as one client assembles it over its sockets, used one after another: the
 * last reply.start, the deltas after it, and the one reply.end.
 */
function assembleReply(frames: Frame[], id: string) {
  const mine = frames.filter((f) => f.replyTo === id);
  const starts = mine.filter((f) => f.type === 'reply.start').length;
  const lastStart = mine.map((f) => f.type).lastIndexOf('reply.start');
  const deltas = mine
    .slice(lastStart + 1)
    .filter((f) => f.type === 'reply.delta')
    .map((f) => String(f.text))
    .join('');
  const ends = mine.filter((f) => f.type === 'reply.end');
  const errors = mine.filter((f) => f.type === 'error');
  return { starts, lastStart, deltas, ends, errors };
}

/**
 * One client that used `sockets` in turn: each socket in order, all of them together without a
 * duplicate eventId, and exactly one reply.end for `id` whose text equals the deltas.
 */
function expectWholeReplyOnce(sockets: TestBrowser[], id: string): Frame {
  sockets.forEach((s, i) => expectIncreasing(idsOf(s.frames), `socket ${i}`));
  const frames = sockets.flatMap((s) => s.frames);
  expectNoDuplicates(idsOf(frames), 'all sockets of the client');
  const reply = assembleReply(frames, id);
  expect(reply.errors).toEqual([]);
  expect(reply.ends).toHaveLength(1);
  expect(reply.lastStart).toBeGreaterThanOrEqual(0);
  const end = reply.ends[0]!;
  expect(end.text).toBe(reply.deltas);
  return end;
}

/** An answer that ran to its end: not cancelled, not empty. */
function expectComplete(end: Frame): void {
  expect(end.type).toBe('reply.end');
  expect(end.cancelled).toBeUndefined();
  expect(String(end.text).length).toBeGreaterThan(0);
}

const replyEnded = (id: string) => (f: Frame) =>
  (f.type === 'reply.end' || f.type === 'error') && f.replyTo === id;
const isIdle = (f: Frame) => f.type === 'status' && f.state === 'idle';

/** Waits until `count` deltas of `id` arrived on the socket. */
const waitForDeltas = (browser: TestBrowser, id: string, count: number) =>
  browser.waitFor(() => deltasOf(browser.frames, id) >= count, 15_000);

/** Waits for the reply.end of `id`, then for the `status: idle` after it. */
async function waitForIdleAfter(browser: TestBrowser, id: string, timeoutMs = 20_000) {
  const end = await browser.waitFor(replyEnded(id), timeoutMs);
  await browser.waitFor(isIdle, timeoutMs, browser.frames.indexOf(end));
  return end;
}

// ---------------------------------------------------------------------------------------------
// Harness helpers

async function getJson<T>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: (await res.json()) as T };
}

const alive = (p: Process) => p.child.exitCode === null && p.child.signalCode === null;

/** Session events as Redis holds them, oldest first. */
async function storedEvents(cluster: TestCluster, sessionId: string): Promise<Frame[]> {
  const key = cluster.keys.session(sessionId).events;
  const entries = await cluster.redis().xrange(key, '-', '+');
  return entries.map(([eventId, fields]) => ({
    ...(JSON.parse(fields[1] ?? '{}') as Frame),
    eventId,
  }));
}

/**
 * A connection to the cluster's Redis named `name` (CLIENT SETNAME) whose id is not `exceptId`,
 * as Redis lists it: id, client port, shard channels.
 */
async function namedConnection(cluster: TestCluster, name: string, exceptId = '') {
  const clients = String(await cluster.redis().client('LIST'));
  for (const line of clients.split('\n').filter((l) => l.includes(` name=${name} `))) {
    const field = (key: string) => new RegExp(`\\b${key}=(\\S+)`).exec(line)?.[1] ?? '';
    if (field('id') === exceptId) continue;
    return {
      id: field('id'),
      port: Number(field('addr').split(':').at(-1)),
      channels: Number(field('ssub')),
    };
  }
  return undefined;
}

/** A gateway's events connection (its live-event subscriptions). */
const eventsConnection = (cluster: TestCluster, gatewayId: unknown) =>
  namedConnection(cluster, `${String(gatewayId)}:events`);

/** Browsers opened by a suite, terminated when it ends. */
function browserPool(cluster: () => TestCluster) {
  const browsers: TestBrowser[] = [];
  const open = async (gateway: number, options: ConnectOptions = {}) => {
    const result = await TestBrowser.open(cluster().gateway(gateway).wsUrl, options);
    browsers.push(result.browser);
    return result;
  };
  const closeAll = () => {
    for (const browser of browsers) browser.terminate();
  };
  return { open, closeAll };
}

const sessionOf = (welcome: Frame): Session => ({
  session: String(welcome.sessionId),
  token: String(welcome.token),
});

// ---------------------------------------------------------------------------------------------

describe('reliability', () => {
  describe('two gateways, one slow worker', () => {
    let cluster: TestCluster;
    const { open, closeAll } = browserPool(() => cluster);

    beforeAll(async () => {
      cluster = await TestCluster.start({ gateways: 2, workers: 1, workerEnv: SLOW_WORKER });
    });
    afterAll(async () => {
      closeAll();
      await cluster?.stop();
    });

    it('reconnecting mid-reply to the other replica replays exactly the missed events, then live ones', async () => {
      const { browser: first, welcome } = await open(0);
      first.chat('long', LONG_QUESTION);
      await waitForDeltas(first, 'long', 3);
      first.terminate();
      await first.closed;
      const seen = lastEventId(first);

      const { browser: second, welcome: again } = await open(1, {
        ...sessionOf(welcome),
        lastEventId: seen,
      });
      expect(again).toMatchObject({ resumed: true, sessionId: welcome.sessionId });
      expect(again.gatewayId).not.toBe(welcome.gatewayId);
      await waitForIdleAfter(second, 'long');
      const end = expectWholeReplyOnce([first, second], 'long');
      expectComplete(end);

      // The second socket starts right after what the first one saw; together they hold the
      // session's whole log, once each, in order.
      const secondIds = idsOf(second.frames);
      expect(compareEventIds(secondIds[0] ?? '0-0', seen)).toBeGreaterThan(0);
      const stored = (await storedEvents(cluster, String(welcome.sessionId))).map((f) =>
        String(f.eventId),
      );
      expect([...idsOf(first.frames), ...secondIds]).toEqual(stored);
      expect(second.frames.findIndex((f) => f.type === 'welcome')).toBe(0);
    });

    it('ten abrupt reconnects during one reply, alternating replicas: no gap, no duplicate', async () => {
      const { browser: first, welcome } = await open(0);
      const sockets = [first];
      first.chat('storm', LONG_QUESTION);
      await waitForDeltas(first, 'storm', 1);
      for (let i = 1; i <= 10; i++) {
        await sleep(150);
        const previous = sockets[sockets.length - 1]!;
        previous.terminate();
        await previous.closed;
        const { browser } = await open(i % 2, {
          ...sessionOf(welcome),
          lastEventId: lastEventId(previous),
        });
        sockets.push(browser);
      }
      const last = sockets[sockets.length - 1]!;
      await waitForIdleAfter(last, 'storm');
      expectComplete(expectWholeReplyOnce(sockets, 'storm'));
      const stored = await storedEvents(cluster, String(welcome.sessionId));
      expect(sockets.flatMap((s) => idsOf(s.frames))).toEqual(stored.map((f) => String(f.eventId)));
    });

    // A lone socket gets its live events directly; two of a session on one gateway share a topic.
    it.each(['alone on its gateway', 'sharing its session with a second socket there'])(
      'a resume frame on an open socket replays everything after its eventId once, in order (%s)',
      async (setting) => {
        const { browser, welcome } = await open(0);
        const sessionId = String(welcome.sessionId);
        const second = setting.startsWith('sharing')
          ? (await open(0, sessionOf(welcome))).browser
          : null;
        browser.chat('r1', LONG_QUESTION);
        await waitForDeltas(browser, 'r1', 5);

        // Mid-reply: resume from the reply.start. The event after it already arrived, so its
        // second arrival marks where the replay begins; frames in flight before it are live ones.
        const sentAt = browser.frames.length;
        const received = eventsOf(browser.frames);
        const startIndex = received.findIndex(
          (f) => f.type === 'reply.start' && f.replyTo === 'r1',
        );
        const resumeAt = String(received[startIndex]?.eventId);
        const nextId = received[startIndex + 1]?.eventId;
        expect(nextId).toBeDefined();
        browser.send({ type: 'resume', lastEventId: resumeAt });
        const replayStart = browser.frames.indexOf(
          await browser.waitFor((f) => f.eventId === nextId, 10_000, sentAt),
        );
        await browser.waitFor(isIdle, 20_000, replayStart);
        expectIncreasing(idsOf(browser.frames.slice(0, replayStart)), 'before the replay');
        const afterResume = browser.frames.slice(replayStart);
        const stored = await storedEvents(cluster, sessionId);
        const expected = stored
          .filter((f) => compareEventIds(String(f.eventId), resumeAt) > 0)
          .map((f) => String(f.eventId));
        expect(idsOf(afterResume)).toEqual(expected);
        const reply = assembleReply(afterResume, 'r1');
        expect(reply.ends).toHaveLength(1);
        expect(reply.ends[0]?.text).toBe(reply.deltas);
        expectComplete(reply.ends[0]!);

        // At rest: resume from the user.message, then keep chatting live with no seam.
        const userMessage = String(stored.find((f) => f.type === 'user.message')?.eventId);
        const lastStored = String(stored.at(-1)?.eventId);
        const restAt = browser.frames.length;
        browser.send({ type: 'resume', lastEventId: userMessage });
        await browser.waitFor((f) => f.eventId === lastStored, 10_000, restAt);
        browser.chat('r2', 'What is a hash table?');
        await browser.waitFor(replyEnded('r2'), 20_000, restAt);
        await browser.waitFor(
          (f) => isIdle(f) && compareEventIds(String(f.eventId), lastStored) > 0,
          20_000,
          restAt,
        );
        const rest = browser.frames.slice(restAt);
        const storedNow = (await storedEvents(cluster, sessionId)).map((f) => String(f.eventId));
        const userIndex = storedNow.indexOf(userMessage);
        expect(idsOf(rest)).toEqual(storedNow.slice(userIndex + 1));
        const r2 = assembleReply(rest, 'r2');
        expect(r2.ends).toHaveLength(1);
        expect(r2.ends[0]?.text).toBe(r2.deltas);
        // The other socket of the session got every event live, once, in order.
        if (second) {
          await second.waitFor((f) => f.eventId === storedNow.at(-1), 10_000);
          expect(idsOf(second.frames)).toEqual(storedNow);
        }
      },
    );

    it('a resent chat gets the same ack, no second user.message and one reply, on either replica', async () => {
      const { browser: a, welcome } = await open(0);
      const sessionId = String(welcome.sessionId);
      a.chat('same', LONG_QUESTION);
      const ack = await a.next('ack');
      expect(ack).toMatchObject({ id: 'same', eventId: expect.stringMatching(/^\d+-\d+$/) });
      await waitForDeltas(a, 'same', 2);

      const acksOf = (b: TestBrowser, from: number) =>
        b.waitFor((f) => f.type === 'ack' && f.id === 'same', 5_000, from);
      let from = a.frames.length;
      a.chat('same', LONG_QUESTION);
      expect((await acksOf(a, from)).eventId).toBe(ack.eventId);
      a.terminate();
      await a.closed;

      const { browser: b } = await open(1, { ...sessionOf(welcome), lastEventId: lastEventId(a) });
      b.chat('same', LONG_QUESTION);
      expect((await acksOf(b, 0)).eventId).toBe(ack.eventId);
      await waitForIdleAfter(b, 'same');

      // Once answered, a resend is still acked the same and starts nothing.
      from = b.frames.length;
      b.chat('same', LONG_QUESTION);
      expect((await acksOf(b, from)).eventId).toBe(ack.eventId);
      await sleep(1_500);
      expect(b.frames.slice(from).map((f) => f.type)).toEqual(['ack']);

      const end = expectWholeReplyOnce([a, b], 'same');
      expectComplete(end);
      const frames = [...a.frames, ...b.frames];
      expect(frames.filter((f) => f.type === 'user.message' && f.id === 'same')).toHaveLength(1);
      expect(assembleReply(frames, 'same').starts).toBe(1);
      const stored = await storedEvents(cluster, sessionId);
      expect(stored.filter((f) => f.type === 'user.message')).toHaveLength(1);
      expect(stored.filter((f) => f.type === 'reply.start')).toHaveLength(1);
      expect(stored.filter((f) => f.type === 'reply.end')).toHaveLength(1);
    });

    it('cancel from a socket on the other replica ends the reply as cancelled; the session goes on', async () => {
      const { browser: a, welcome } = await open(0);
      const { browser: b } = await open(1, sessionOf(welcome));
      a.chat('stop-me', LONG_QUESTION);
      await waitForDeltas(a, 'stop-me', 3);

      const cancelledAt = Date.now();
      b.send({ type: 'cancel', id: 'stop-me' });
      const end = await a.waitFor(replyEnded('stop-me'), 5_000);
      expect(Date.now() - cancelledAt).toBeLessThan(2_000);
      expect(end).toMatchObject({ type: 'reply.end', cancelled: true });
      await a.waitFor(isIdle, 5_000, a.frames.indexOf(end));
      await b.waitFor(replyEnded('stop-me'), 5_000);
      for (const browser of [a, b]) {
        expect(expectWholeReplyOnce([browser], 'stop-me').text).toBe(end.text);
        const types = eventsOf(browser.frames).map((f) => f.type);
        expect(types[types.lastIndexOf('reply.end') + 1]).toBe('status');
      }

      // A cancel for a message the session never sent: bad_request, tied to no message.
      const from = b.frames.length;
      b.send({ type: 'cancel', id: 'no-such-message' });
      const error = await b.waitFor((f) => f.type === 'error', 5_000, from);
      expect(error.code).toBe('bad_request');
      expect(error).not.toHaveProperty('replyTo');
      expect(error).not.toHaveProperty('eventId');

      // The session answers the next message in full; a message cancelled while it still
      // waits ends cancelled (empty) when its turn comes, and cancelling a finished one is refused.
      a.chat('after-cancel', LONG_QUESTION);
      a.chat('queued', LONG_QUESTION);
      await a.waitFor((f) => f.type === 'ack' && f.id === 'queued', 5_000);
      b.send({ type: 'cancel', id: 'queued' });
      const full = await a.waitFor(replyEnded('after-cancel'), 20_000);
      const queued = await waitForIdleAfter(a, 'queued');
      expectComplete(expectWholeReplyOnce([a], 'after-cancel'));
      expect(expectWholeReplyOnce([a], 'queued')).toMatchObject({ cancelled: true, text: '' });
      expect(queued.cancelled).toBe(true);
      const cancelledText = String(end.text);
      expect(cancelledText.length).toBeLessThan(String(full.text).length);
      expect(String(full.text).startsWith(cancelledText)).toBe(true);

      const late = b.frames.length;
      b.send({ type: 'cancel', id: 'after-cancel' });
      const refused = await b.waitFor((f) => f.type === 'error', 5_000, late);
      expect(refused.code).toBe('bad_request');
      expect(refused).not.toHaveProperty('replyTo');
    });

    it("a gateway's Redis subscription cut mid-reply: its sockets get 1001, then replay the gap", async () => {
      const { browser: watcher, welcome } = await open(0);
      const { browser: sender } = await open(1, sessionOf(welcome));
      sender.chat('cut', LONG_QUESTION);
      await waitForDeltas(watcher, 'cut', 3);

      // Redis drops the watcher's gateway's subscriber (as its pub/sub output limit would).
      const subscriber = await eventsConnection(cluster, welcome.gatewayId);
      if (!subscriber) throw new Error('no events connection of the gateway');
      await cluster.redis().client('KILL', 'ID', subscriber.id);
      expect((await watcher.closed).code).toBe(1001);

      const { browser: back } = await open(0, {
        ...sessionOf(welcome),
        lastEventId: lastEventId(watcher),
      });
      await waitForIdleAfter(back, 'cut');
      expectComplete(expectWholeReplyOnce([watcher, back], 'cut'));
      const stored = await storedEvents(cluster, String(welcome.sessionId));
      expect([...idsOf(watcher.frames), ...idsOf(back.frames)]).toEqual(
        stored.map((f) => String(f.eventId)),
      );
    });

    it('a subscription that drops twice within a moment sends the sockets away once', async () => {
      // The other replica than the test above's: a drop within 5 s of its trouble would be 1013.
      const { browser, welcome } = await open(1);
      const gateway = cluster.gateway(1);
      const interruptions = async () => {
        const text = await (await fetch(`${gateway.url}/metrics`)).text();
        return Number(
          /ws_errors_total\{reason="live_feed_interrupted"[^}]*\} (\d+)/.exec(text)?.[1] ?? 0,
        );
      };
      const before = await interruptions();
      /** The gateway's events connection (not `old`), once it has `subscriptions` channels. */
      const subscriber = async (old = '', channels = 0) => {
        for (;;) {
          const found = await eventsConnection(cluster, welcome.gatewayId);
          if (found && found.id !== old && found.channels >= channels) return found;
          await sleep(5);
        }
      };
      const first = await subscriber('', 1);
      await cluster.redis().client('KILL', 'ID', first.id);
      // Back (subscribed again to every session it holds), and dropped again at once.
      const second = await subscriber(first.id, first.channels);
      await cluster.redis().client('KILL', 'ID', second.id);
      expect((await browser.closed).code).toBe(1001);
      await sleep(1_000);
      expect(await interruptions()).toBe(before + 1);
      await open(1, sessionOf(welcome)); // and sockets are let in again
    });

    it("a gateway's events connection gone silent (no FIN, no RST) is replaced; its sockets get 1001, then replay the gap", async () => {
      const proxy = await startFreezableProxy(cluster.redisUrl);
      const gateway = await cluster.addGateway({ REDIS_URL: proxy.url });
      try {
        const { browser, welcome } = await TestBrowser.open(gateway.wsUrl);
        browser.chat('silent', LONG_QUESTION);
        await waitForDeltas(browser, 'silent', 1);

        const events = await eventsConnection(cluster, gateway.gatewayId);
        if (!events) throw new Error('no events connection of the gateway');
        proxy.freeze(events.port);
        // Noticed within two PING periods (see subscriber-watch.ts), then replaced.
        expect((await browser.closed).code).toBe(1001);

        const { browser: back } = await open(0, {
          ...sessionOf(welcome),
          lastEventId: lastEventId(browser),
        });
        await waitForIdleAfter(back, 'silent');
        expectComplete(expectWholeReplyOnce([browser, back], 'silent'));
      } finally {
        await gateway.kill();
        await proxy.close();
      }
    }, 40_000);

    it('SIGTERM on a gateway mid-reply: 1001, exit 0, and the other replica delivers the rest', async () => {
      const doomed = await cluster.addGateway({ DRAIN_TIMEOUT_MS: '3000' });
      const { browser: first, welcome } = await TestBrowser.open(doomed.wsUrl);
      first.chat('drained', LONG_QUESTION);
      await waitForDeltas(first, 'drained', 3);

      doomed.child.kill('SIGTERM');
      expect((await first.closed).code).toBe(1001);
      expect(await doomed.exited).toEqual({ code: 0, signal: null });

      const { browser: second } = await open(0, {
        ...sessionOf(welcome),
        lastEventId: lastEventId(first),
      });
      await waitForIdleAfter(second, 'drained');
      expectComplete(expectWholeReplyOnce([first, second], 'drained'));
    });
  });

  describe('a short retention window (EVENTS_MAXLEN=10)', () => {
    let cluster: TestCluster;
    const { open, closeAll } = browserPool(() => cluster);

    beforeAll(async () => {
      cluster = await TestCluster.start({
        gateways: 2,
        workers: 1,
        gatewayEnv: { EVENTS_MAXLEN: '10' },
        workerEnv: { EVENTS_MAXLEN: '10', OFFLINE_CHUNK_DELAY_MS: '1', DELTA_FLUSH_MS: '0' },
      });
    });
    afterAll(async () => {
      closeAll();
      await cluster?.stop();
    });

    it('a lastEventId older than the window gets reset, then the retained window', async () => {
      const { browser, welcome } = await open(0);
      const sessionId = String(welcome.sessionId);
      // XADD MAXLEN ~ trims whole stream nodes (100 entries): chat until the start is gone.
      let firstId: string | undefined;
      for (let i = 0; i < 20; i++) {
        browser.chat(`m${i}`, LONG_QUESTION);
        await waitForIdleAfter(browser, `m${i}`);
        firstId ??= String(browser.frames.find((f) => f.type === 'user.message')?.eventId);
        const oldest = (await storedEvents(cluster, sessionId))[0];
        if (oldest && compareEventIds(String(oldest.eventId), firstId) > 0) break;
      }
      const window = (await storedEvents(cluster, sessionId)).map((f) => String(f.eventId));
      expect(compareEventIds(window[0] ?? '0-0', firstId ?? '0-0')).toBeGreaterThan(0);
      expect(window.length).toBeGreaterThanOrEqual(10);
      expect(window.length).toBeLessThan(idsOf(browser.frames).length);

      for (const [gateway, since] of [
        [1, '1-0'],
        [0, firstId ?? '1-0'],
      ] as const) {
        const { browser: late } = await open(gateway, {
          ...sessionOf(welcome),
          lastEventId: since,
        });
        await late.waitFor((f) => f.eventId === window.at(-1), 10_000);
        expect(late.frames.slice(0, 2).map((f) => f.type)).toEqual(['welcome', 'reset']);
        expect(late.frames[1]).toEqual({ type: 'reset', reason: 'history_truncated' });
        expect(idsOf(late.frames)).toEqual(window);
        expect(late.frames).toHaveLength(window.length + 2);
      }

      // Inside the window: no reset, just what follows.
      const inside = window[3] ?? '';
      const { browser: recent } = await open(1, { ...sessionOf(welcome), lastEventId: inside });
      await recent.waitFor((f) => f.eventId === window.at(-1), 10_000);
      expect(recent.frames.some((f) => f.type === 'reset')).toBe(false);
      expect(idsOf(recent.frames)).toEqual(window.slice(4));
    });
  });

  describe('a gateway killed with SIGKILL', () => {
    let cluster: TestCluster;
    const { open, closeAll } = browserPool(() => cluster);

    beforeAll(async () => {
      cluster = await TestCluster.start({ gateways: 2, workers: 1, workerEnv: SLOW_WORKER });
    });
    afterAll(async () => {
      closeAll();
      await cluster?.stop();
    });

    it('drops its sockets (1006); the other replica resumes them and reaps the dead one', async () => {
      const { browser: first, welcome } = await open(0);
      const sessionId = String(welcome.sessionId);
      first.chat('killed', LONG_QUESTION);
      await waitForDeltas(first, 'killed', 3);

      await cluster.gateway(0).kill('SIGKILL');
      expect((await first.closed).code).toBe(1006);
      const { browser: second, welcome: again } = await open(1, {
        ...sessionOf(welcome),
        lastEventId: lastEventId(first),
      });
      await waitForIdleAfter(second, 'killed');
      expectComplete(expectWholeReplyOnce([first, second], 'killed'));

      const socketsKey = cluster.keys.session(sessionId).sockets;
      await vi.waitFor(
        async () => {
          const { status, body } = await getJson<Health>(`${cluster.gateway(1).url}/health`);
          expect(status).toBe(200);
          expect(body.cluster.gateways).toBe(1);
          const sockets = await cluster.redis().hgetall(socketsKey);
          expect(sockets).not.toHaveProperty(String(welcome.connectionId));
          expect(
            Object.values(sockets).filter((v) => v.startsWith(`${String(welcome.gatewayId)}|`)),
          ).toEqual([]);
          expect(sockets).toHaveProperty(String(again.connectionId));
        },
        { timeout: 25_000, interval: 500 },
      );
    }, 60_000);
  });

  describe('disconnect is not stop (REPLY_GRACE_MS=1500)', () => {
    let cluster: TestCluster;
    const { open, closeAll } = browserPool(() => cluster);

    beforeAll(async () => {
      cluster = await TestCluster.start({
        gateways: 2,
        workers: 1,
        workerEnv: { OFFLINE_CHUNK_DELAY_MS: '40', REPLY_GRACE_MS: '1500' },
      });
    });
    afterAll(async () => {
      closeAll();
      await cluster?.stop();
    });

    it('a client back within the grace period gets the whole reply', async () => {
      const { browser: first, welcome } = await open(0);
      first.chat('grace', LONG_QUESTION);
      await waitForDeltas(first, 'grace', 2);
      first.terminate();
      await first.closed;
      await sleep(500);
      const { browser: second } = await open(1, {
        ...sessionOf(welcome),
        lastEventId: lastEventId(first),
      });
      await waitForIdleAfter(second, 'grace');
      const end = expectWholeReplyOnce([first, second], 'grace');
      expectComplete(end);
    });

    it('a client away past the grace period finds the reply ended as cancelled', async () => {
      const { browser: first, welcome } = await open(0);
      first.chat('gone', LONG_QUESTION);
      await waitForDeltas(first, 'gone', 1);
      first.terminate();
      await first.closed;
      await sleep(4_000);
      const { browser: second } = await open(1, {
        ...sessionOf(welcome),
        lastEventId: lastEventId(first),
      });
      await waitForIdleAfter(second, 'gone', 10_000);
      const end = expectWholeReplyOnce([first, second], 'gone');
      expect(end.cancelled).toBe(true);

      // The session goes on: the same question, asked again, is answered in full, and the
      // abandoned reply was a true prefix of that answer.
      second.chat('gone-again', LONG_QUESTION);
      const full = await waitForIdleAfter(second, 'gone-again');
      expectComplete(expectWholeReplyOnce([first, second], 'gone-again'));
      expect(String(end.text).length).toBeLessThan(String(full.text).length);
      expect(String(full.text).startsWith(String(end.text))).toBe(true);
    });
  });

  describe('Redis restarted under a running cluster', () => {
    let cluster: TestCluster | undefined;
    const redisServers: (TestRedis & { process: ChildProcess })[] = [];
    const browsers: TestBrowser[] = [];

    afterAll(async () => {
      for (const browser of browsers) browser.terminate();
      await cluster?.stop();
      for (const server of redisServers) await server.stop();
    });

    it('goes unhealthy without dying, refuses chat meanwhile, and recovers on the same port', async () => {
      const redis = await startRedisServer();
      redisServers.push(redis);
      cluster = await TestCluster.start({
        gateways: 2,
        workers: 1,
        env: { REDIS_URL: redis.url },
      });
      const running = cluster;
      const gateway = running.gateway(0);
      const open = async (g: GatewayProcess) => {
        const result = await TestBrowser.open(g.wsUrl);
        browsers.push(result.browser);
        return result;
      };

      const { browser } = await open(gateway);
      browser.chat('before', 'What is a hash table?');
      await waitForIdleAfter(browser, 'before');
      expectComplete(expectWholeReplyOnce([browser], 'before'));
      expect((await getJson<Health>(`${gateway.url}/health`)).status).toBe(200);

      await redis.stop();
      await vi.waitFor(
        async () => {
          const health = await getJson<Health>(`${gateway.url}/health`);
          expect(health).toMatchObject({ status: 503, body: { status: 'unhealthy' } });
          expect((await getJson(`${gateway.url}/readyz`)).status).toBe(503);
        },
        { timeout: 5_000, interval: 200 },
      );
      for (const p of [...running.gateways, ...running.workers]) expect(alive(p)).toBe(true);

      // A chat meanwhile is refused out loud: an error frame, or a 1013 close.
      const from = browser.frames.length;
      browser.chat('during', 'What is TCP?');
      const outcome = await Promise.race([
        browser
          .waitFor((f) => f.type === 'error', 10_000, from)
          .then(
            (frame) => ({ frame }),
            () => null,
          ),
        browser.closed.then((closed) => ({ closed })),
      ]);
      expect(outcome).not.toBeNull();
      if (outcome && 'frame' in outcome) {
        expect(outcome.frame).toMatchObject({ code: expect.any(String), replyTo: 'during' });
      } else {
        expect(outcome?.closed.code).toBe(1013);
      }

      // Its gateway receives no live events: within 5 s of losing them it sends its sockets
      // away with 1013, and their clients back off.
      expect((await browser.closed).code).toBe(1013);

      redisServers.push(await startRedisServer(redis.port));
      await vi.waitFor(
        async () => {
          for (const g of running.gateways) {
            expect((await getJson<Health>(`${g.url}/health`)).status).toBe(200);
          }
        },
        { timeout: 15_000, interval: 250 },
      );
      for (const p of [...running.gateways, ...running.workers]) expect(alive(p)).toBe(true);

      for (const g of running.gateways) {
        const { browser: fresh } = await open(g);
        fresh.chat('after', 'What is a binary tree?');
        await fresh.waitFor(replyEnded('after'), 30_000);
        expectComplete(expectWholeReplyOnce([fresh], 'after'));
      }

      // The socket that lived through the outage may have missed live events meanwhile (it was
      // closed with 1013, see above): its client comes back with its lastEventId (this Redis kept
      // nothing, so the log starts over) and chats on.
      const { browser: back } = await TestBrowser.open(gateway.wsUrl, {
        ...sessionOf(browser.frames[0]!),
        lastEventId: lastEventId(browser),
      });
      browsers.push(back);
      back.chat('survivor', 'What is a queue?');
      await waitForIdleAfter(back, 'survivor');
      expectComplete(expectWholeReplyOnce([back], 'survivor'));
    }, 90_000);
  });

  describe('a worker stopped with SIGTERM mid-answer', () => {
    let cluster: TestCluster;
    const { open, closeAll } = browserPool(() => cluster);

    beforeAll(async () => {
      cluster = await TestCluster.start({
        gateways: 2,
        workers: 2,
        workerEnv: { ...SLOW_WORKER, SHUTDOWN_TIMEOUT_MS: '500' },
      });
    });
    afterAll(async () => {
      closeAll();
      await cluster?.stop();
    });

    it('hands the answer back; the other worker answers it again from a new reply.start', async () => {
      const { browser } = await open(0);
      browser.chat('handed-over', LONG_QUESTION);
      await waitForDeltas(browser, 'handed-over', 3);

      const busy = await Promise.all(
        cluster.workers.map(async (w) => {
          const { body } = await getJson<{ active_jobs: number }>(
            `http://127.0.0.1:${w.metricsPort}/health`,
          );
          return body.active_jobs > 0 ? [w] : [];
        }),
      ).then((lists) => lists.flat());
      expect(busy).toHaveLength(1);
      const stopping = busy[0]!;
      const other = cluster.workers.find((w) => w !== stopping)!;

      const stoppedAt = Date.now();
      stopping.child.kill('SIGTERM');
      expect(await stopping.exited).toEqual({ code: 0, signal: null });
      expect(Date.now() - stoppedAt).toBeLessThan(5_000);

      await waitForIdleAfter(browser, 'handed-over', 30_000);
      expect(alive(other)).toBe(true);
      const end = expectWholeReplyOnce([browser], 'handed-over');
      expectComplete(end);
      expect(assembleReply(browser.frames, 'handed-over').starts).toBe(2);
    }, 60_000);
  });
  describe("a worker's cancel subscription gone silent (no FIN, no RST)", () => {
    let cluster: TestCluster;
    const { open, closeAll } = browserPool(() => cluster);

    beforeAll(async () => {
      // Replies of about 30 s: one outlasts the silence.
      cluster = await TestCluster.start({
        gateways: 1,
        workers: 0,
        workerEnv: { OFFLINE_CHUNK_DELAY_MS: '300' },
      });
    });
    afterAll(async () => {
      closeAll();
      await cluster?.stop();
    });

    it('is replaced, and a cancel sent meanwhile still stops the reply', async () => {
      const proxy = await startFreezableProxy(cluster.redisUrl);
      try {
        await cluster.addWorker({ REDIS_URL: proxy.url, WORKER_ID: 'wk-silent' });
        const { browser } = await open(0);
        browser.chat('stop-me', LONG_QUESTION);
        await waitForDeltas(browser, 'stop-me', 2);

        const frozen = await namedConnection(cluster, 'wk-silent:cancels');
        if (!frozen) throw new Error('no cancels connection of the worker');
        proxy.freeze(frozen.port);
        const cancelledAt = Date.now();
        browser.send({ type: 'cancel', id: 'stop-me' }); // published, never heard by the worker
        // Noticed within two PING periods (see SubscriberWatch); once connected again, the
        // worker reads the stored request.
        const end = await browser.waitFor(replyEnded('stop-me'), 20_000);
        expect(end).toMatchObject({ type: 'reply.end', cancelled: true });
        expect(Date.now() - cancelledAt).toBeGreaterThan(2_000); // not heard live
        expect(await namedConnection(cluster, 'wk-silent:cancels', frozen.id)).toBeDefined();
      } finally {
        await proxy.close();
      }
    }, 50_000);
  });
});
