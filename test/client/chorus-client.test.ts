import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { memorySession, type ChorusClient } from '../../packages/client/src/index.js';
import { TestBrowser, type Frame } from '../support/test-browser.js';
import { TestCluster } from '../support/test-cluster.js';
import {
  closeClients,
  isOpen,
  newClient,
  replyDone,
  startSilentableProxy,
  trackClientTimers,
  TrackedWebSocket,
  waitForState,
} from './harness.js';

/** ChorusClient on `ws`, against two real gateway replicas and a worker answering offline. */
describe('ChorusClient', () => {
  let cluster: TestCluster;
  const observers: TestBrowser[] = [];
  const urls = () => [cluster.gateway(0).wsUrl, cluster.gateway(1).wsUrl];

  /** A raw socket of the same session that records every event from the start. */
  const observe = async (client: ChorusClient, gateway = 1) => {
    const session = credentials(client);
    const { browser } = await TestBrowser.open(cluster.gateway(gateway).wsUrl, {
      ...session,
      lastEventId: '0-0',
    });
    observers.push(browser);
    return browser;
  };
  const storages = new WeakMap<ChorusClient, ReturnType<typeof memorySession>>();
  const credentials = (client: ChorusClient) => {
    const saved = storages.get(client)?.load();
    if (!saved?.sessionId || !saved.token) throw new Error('client has no session yet');
    return { session: saved.sessionId, token: saved.token };
  };
  const client = (options: Parameters<typeof newClient>[1] = {}, list = urls()) => {
    const storage = options.storage ?? memorySession();
    const created = newClient(list, { ...options, storage });
    storages.set(created, storage);
    return created;
  };
  const count = (browser: TestBrowser, match: (f: Frame) => boolean) =>
    browser.frames.filter(match).length;
  const idle = (browser: TestBrowser) =>
    browser.waitFor((f) => f.type === 'status' && f.state === 'idle');

  beforeAll(async () => {
    cluster = await TestCluster.start({
      gateways: 2,
      workers: 1,
      gatewayEnv: { MAX_SOCKETS_PER_SESSION: '3' },
      workerEnv: { OFFLINE_CHUNK_DELAY_MS: '15' },
    });
  });
  afterEach(() => {
    closeClients();
    for (const browser of observers.splice(0)) browser.terminate();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('chats: the message is acked, the reply streams in and is assembled once', async () => {
    const chorus = client();
    chorus.connect();
    const open = await waitForState(chorus, isOpen);
    // The first URL of the list: gateway 0.
    expect(open.connection.gatewayId).toBe(cluster.gateway(0).gatewayId);
    expect(open.connection.sessionId).toMatch(/^[A-Za-z0-9_-]{22}$/);

    let streamed = 0;
    chorus.on('change', (state) => {
      const reply = state.messages[0]?.reply;
      if (reply && !reply.done) streamed = Math.max(streamed, reply.text.length);
    });
    const id = chorus.chat('What is a hash table?');
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(chorus.state.messages[0]).toMatchObject({ id, status: 'queued' });
    const done = await waitForState(chorus, replyDone(id));
    const message = done.messages.find((m) => m.id === id);
    expect(message?.status).toBe('done');
    expect(message?.reply?.agent).toBe('tutor');
    expect(message?.reply?.text).toContain('offline mode');
    expect(streamed).toBeGreaterThan(0);
    expect(done.outbox).toEqual([]);

    const observer = await observe(chorus);
    const end = await observer.reply(id);
    expect(message?.reply?.text).toBe(end.end.text);
  });

  it('resumes on the other replica after a drop mid-reply: no event lost or repeated', async () => {
    const chorus = client();
    const seen: string[] = [];
    chorus.on('event', (event) => seen.push(event.eventId));
    chorus.connect();
    const first = await waitForState(chorus, isOpen);
    const id = chorus.chat('Tell me about graph algorithms like Dijkstra and breadth-first search');
    await waitForState(chorus, (s) => (s.messages[0]?.reply?.text.length ?? 0) > 20);

    TrackedWebSocket.last().terminate();
    const again = await waitForState(
      chorus,
      (s) => isOpen(s) && s.connection.gatewayId !== first.connection.gatewayId,
    );
    expect(again.connection.sessionId).toBe(first.connection.sessionId);
    const done = await waitForState(chorus, replyDone(id));
    await waitForState(chorus, (s) => !s.processing);

    const observer = await observe(chorus, 0);
    const { end } = await observer.reply(id);
    await idle(observer);
    expect(done.messages[0]?.reply?.text).toBe(end.text);
    expect(seen).toEqual(observer.events().map((f) => f.eventId));
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('a message typed while disconnected is sent after the reconnect and answered once', async () => {
    const chorus = client({ random: () => 0.99, backoff: { baseMs: 800 } });
    chorus.connect();
    await waitForState(chorus, isOpen);
    TrackedWebSocket.last().terminate();
    await waitForState(chorus, (s) => s.connection.state === 'reconnecting');

    const id = chorus.chat('What is a queue?');
    expect(chorus.state.outbox.map((entry) => entry.id)).toEqual([id]);
    expect(chorus.state.messages[0]?.status).toBe('queued');
    await waitForState(chorus, replyDone(id));
    expect(chorus.state.outbox).toEqual([]);

    const observer = await observe(chorus);
    await observer.reply(id);
    expect(count(observer, (f) => f.type === 'user.message' && f.id === id)).toBe(1);
    expect(count(observer, (f) => f.type === 'reply.end' && f.replyTo === id)).toBe(1);
  });

  it('a chat whose socket died before its ack is resent with the same id, answered once', async () => {
    const chorus = client();
    chorus.connect();
    await waitForState(chorus, isOpen);
    const id = chorus.chat('What is a binary tree?');
    TrackedWebSocket.last().terminate();
    await waitForState(chorus, replyDone(id));
    await waitForState(chorus, (s) => !s.processing);

    const observer = await observe(chorus);
    await observer.reply(id);
    await idle(observer);
    expect(count(observer, (f) => f.type === 'user.message' && f.id === id)).toBe(1);
    expect(count(observer, (f) => f.type === 'reply.end' && f.replyTo === id)).toBe(1);
    expect(chorus.state.messages.filter((m) => m.id === id)).toHaveLength(1);
  });

  it('4401: a bad token starts a new session at once and keeps the outbox', async () => {
    const forged = 'A'.repeat(22);
    const storage = memorySession({
      sessionId: forged,
      token: 'forged',
      outbox: [{ id: 'carried-over', text: 'What is a stack?', ts: 1 }],
    });
    const chorus = client({ storage });
    const closes: number[] = [];
    chorus.on('connection', (c) => {
      if (c.lastClose) closes.push(c.lastClose.code);
    });
    expect(chorus.state.messages[0]).toMatchObject({ id: 'carried-over', status: 'queued' });
    chorus.connect();
    const done = await waitForState(chorus, replyDone('carried-over'));
    expect(closes[0]).toBe(4401);
    expect(done.connection.sessionId).not.toBe(forged);
    expect(storage.load()).toMatchObject({ sessionId: done.connection.sessionId, outbox: [] });
  });

  it('4001: a client replaced by newer sockets does not reconnect', async () => {
    const chorus = client();
    chorus.connect();
    await waitForState(chorus, isOpen);
    const session = credentials(chorus);
    for (const gateway of [0, 1, 1]) {
      const { browser } = await TestBrowser.open(cluster.gateway(gateway).wsUrl, session);
      observers.push(browser);
    }
    const closed = await waitForState(chorus, (s) => s.connection.state === 'closed');
    expect(closed.connection).toMatchObject({ closeReason: 'replaced', lastClose: { code: 4001 } });
    const sockets = TrackedWebSocket.opened.length;
    await sleep(1_000);
    expect(TrackedWebSocket.opened.length).toBe(sockets);
    expect(chorus.state.connection.state).toBe('closed');
  });

  it('1001: a draining gateway is left at once for the next replica', async () => {
    const extra = await cluster.addGateway();
    // A backoff of ~5 s would show: 1001 must skip it.
    const chorus = client({ random: () => 0.999, backoff: { baseMs: 5_000, capMs: 5_000 } }, [
      extra.wsUrl,
      cluster.gateway(1).wsUrl,
    ]);
    chorus.connect();
    const first = await waitForState(chorus, isOpen);
    const started = Date.now();
    void extra.kill('SIGTERM');
    const moved = await waitForState(
      chorus,
      (s) => isOpen(s) && s.connection.gatewayId !== first.connection.gatewayId,
    );
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(moved.connection.lastClose?.code).toBe(1001);
    expect(moved.connection.sessionId).toBe(first.connection.sessionId);
  });

  it('a connection gone silent is noticed within twice heartbeatMs and replaced', async () => {
    const proxy = await startSilentableProxy(cluster.gateway(0).port);
    try {
      const chorus = client({ heartbeatMs: 200 }, [proxy.wsUrl, cluster.gateway(1).wsUrl]);
      chorus.connect();
      const first = await waitForState(chorus, isOpen);
      await sleep(500); // pings and pongs flow: nothing happens
      expect(chorus.state.connection.gatewayId).toBe(first.connection.gatewayId);
      proxy.silence();
      const started = Date.now();
      const moved = await waitForState(
        chorus,
        (s) => isOpen(s) && s.connection.gatewayId !== first.connection.gatewayId,
      );
      expect(Date.now() - started).toBeLessThan(2_500);
      expect(moved.connection.lastClose?.code).toBe(4408);
    } finally {
      proxy.close();
    }
  });

  it('close() releases every timer, open or waiting to reconnect', async () => {
    const timers = trackClientTimers();
    try {
      const chorus = client({ heartbeatMs: 1_000 });
      let changes = 0;
      chorus.on('change', () => changes++);
      chorus.connect();
      await waitForState(chorus, isOpen);
      chorus.chat('What is an array?');
      expect(timers.pending()).toContain('interval');
      chorus.close();
      chorus.close();
      expect(chorus.state.connection).toMatchObject({ state: 'closed', closeReason: 'closed' });
      expect(timers.pending()).toEqual([]);
      const after = changes;
      await sleep(300);
      expect(changes).toBe(after);

      // Waiting out a backoff against a port where nothing listens.
      const waiting = client({ random: () => 0.99, backoff: { baseMs: 10_000 } }, [
        'ws://127.0.0.1:9/ws',
      ]);
      waiting.connect();
      await waitForState(waiting, (s) => s.connection.retryAt !== undefined);
      expect(timers.pending()).toEqual(['timeout']);
      waiting.close();
      expect(timers.pending()).toEqual([]);
      expect(timers.created()).toBeGreaterThan(2);
    } finally {
      timers.restore();
    }
  });
});
