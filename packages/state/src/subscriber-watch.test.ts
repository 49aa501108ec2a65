import { createServer, type Socket } from 'node:net';
import { afterEach, expect, inject, it } from 'vitest';
import { createRedis, type Redis } from './redis-connection.js';
import { SUBSCRIBER_PING_MS, SubscriberWatch } from './subscriber-watch.js';

/**
 * The watch over a subscriber connection, on connections made as the gateway and the worker make
 * theirs (blocking: no command timeout, no ready check).
 */
const log = { warn: () => undefined };
let subscriber: Redis | undefined;
afterEach(() => subscriber?.disconnect());

const eventsConnection = (url: string) =>
  createRedis({ kind: 'single', url }, { name: 'test:events', blocking: true });

it('keeps a connection whose PONG came while the event loop was blocked past the wait', async () => {
  subscriber = eventsConnection(inject('redisUrl'));
  await new Promise((resolve) => subscriber!.once('ready', resolve));
  const stream = subscriber.stream;
  let silent = 0;
  const watch = new SubscriberWatch(subscriber, log, () => silent++);
  const checked = watch.check();
  const blockedUntil = Date.now() + SUBSCRIBER_PING_MS + 500;
  while (Date.now() < blockedUntil); // the PONG arrives meanwhile, unread
  await checked;
  expect(silent).toBe(0);
  expect(subscriber.status).toBe('ready');
  expect(subscriber.stream).toBe(stream);
}, 15_000);

it('drops a connection that stays between TCP connect and ready, and connects again', async () => {
  // A peer that accepts and never answers: CLIENT SETNAME waits for good.
  const accepted: Socket[] = [];
  const server = createServer((socket) => accepted.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  try {
    subscriber = eventsConnection(`redis://127.0.0.1:${port}`);
    await new Promise((resolve) => subscriber!.once('connect', resolve));
    let silent = 0;
    const watch = new SubscriberWatch(subscriber, log, () => silent++);
    await watch.check();
    expect(silent).toBe(0); // connecting may take a moment
    await watch.check();
    expect(silent).toBe(1);
    await expect.poll(() => accepted.length, { timeout: 5_000 }).toBe(2);
  } finally {
    subscriber?.disconnect();
    for (const socket of accepted) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});

it('stopped, it ends a check in progress at once and drops nothing', async () => {
  subscriber = eventsConnection(inject('redisUrl'));
  await new Promise((resolve) => subscriber!.once('ready', resolve));
  let silent = 0;
  const watch = new SubscriberWatch(subscriber, log, () => silent++);
  // A PING that no reply can answer: the connection is paused, as if silent.
  subscriber.stream.pause();
  const started = Date.now();
  const checked = watch.check();
  watch.stop();
  await checked;
  expect(Date.now() - started).toBeLessThan(1_000);
  expect(silent).toBe(0);
  subscriber.stream.resume();
});
