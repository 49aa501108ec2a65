// The machine's floor, measured in the same run: a Redis round trip, a bare uWS echo round trip,
// BullMQ's add → active hop, and what idle sockets cost a bare uWS server.
/* global performance */
import { createRequire } from 'node:module';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { forkClients, stopClients } from './clients.mjs';
import {
  log,
  mergeHistograms,
  newHistogram,
  recordMs,
  round,
  rssBytes,
  sleep,
  startRedis,
  startUwsEcho,
  summarize,
} from './lib.mjs';

const requireFromWorker = createRequire(
  new URL('../services/worker/package.json', import.meta.url),
);

/** Sequential round trips of `once()` for `durationMs` (at most `maxCount`), after a warm-up. */
async function roundTrips(once, durationMs, maxCount) {
  for (let i = 0; i < 200; i++) await once();
  const histogram = newHistogram();
  const end = performance.now() + durationMs;
  for (let i = 0; i < maxCount && performance.now() < end; i++) {
    const t = performance.now();
    await once();
    recordMs(histogram, performance.now() - t);
  }
  return summarize(histogram);
}

async function redisFloor(redisUrl, durationMs) {
  const redis = new Redis(redisUrl);
  try {
    return await roundTrips(() => redis.ping(), durationMs, 100_000);
  } finally {
    redis.disconnect();
  }
}

/** BullMQ add → processor start, open loop at `rate` per second (latency from the intended add). */
async function bullmqFloor(redis, rate, durationMs) {
  const { Queue, Worker } = requireFromWorker('bullmq');
  const connection = { host: '127.0.0.1', port: redis.port };
  const queue = new Queue('floor', { connection, prefix: 'benchfloor' });
  const histogram = newHistogram();
  const total = Math.floor((rate * durationMs) / 1000);
  const intended = new Map();
  let started = 0;
  let finish = () => undefined;
  const allStarted = new Promise((resolve) => (finish = resolve));
  const worker = new Worker(
    'floor',
    (job) => {
      const at = intended.get(job.data.k);
      if (at !== undefined && job.data.k >= 0) recordMs(histogram, performance.now() - at);
      if (++started >= total) finish();
      return Promise.resolve();
    },
    { connection, prefix: 'benchfloor', concurrency: 8 },
  );
  try {
    await worker.waitUntilReady();
    const options = { removeOnComplete: true, removeOnFail: true };
    for (let i = 0; i < 50; i++) await queue.add('warm', { k: -1 }, options);
    await sleep(200);
    const t0 = performance.now() + 10;
    for (let k = 0; k < total; k++) {
      const due = t0 + (k * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      intended.set(k, due);
      void queue.add('floor', { k }, options);
    }
    await Promise.race([allStarted, sleep(10_000)]);
    return { rate, ...summarize(histogram) };
  } finally {
    await worker.close(true);
    await queue.close();
  }
}

async function uwsEchoFloor(wsUrl, durationMs) {
  const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const frame = JSON.stringify({ type: 'chat', id: 'floor-0001', text: 'x'.repeat(64) });
  let waiter = () => undefined;
  ws.on('message', () => waiter());
  try {
    return await roundTrips(
      () =>
        new Promise((resolve) => {
          waiter = resolve;
          ws.send(frame);
        }),
      durationMs,
      100_000,
    );
  } finally {
    ws.terminate();
  }
}

/** Idle sockets on the bare uWS server: its RSS per socket and the connect rate. */
async function uwsIdleFloor(server, sockets, clientCount) {
  const before = rssBytes(server.pid);
  const clients = forkClients(clientCount, 'floor-client');
  try {
    const per = Math.ceil(sockets / clientCount);
    const results = await Promise.all(
      clients.map((c) =>
        c.call('hold', { urls: [server.wsUrl], count: per, concurrency: 100, plain: true }),
      ),
    );
    await sleep(1000);
    const after = rssBytes(server.pid);
    const connected = results.reduce((n, r) => n + r.connected, 0);
    const elapsedMs = Math.max(...results.map((r) => r.elapsedMs));
    return {
      sockets: connected,
      failed: results.reduce((n, r) => n + r.failed, 0),
      rssPerSocketBytes: round((after - before) / connected, 0),
      connectRatePerSec: round((connected / elapsedMs) * 1000, 0),
      connectTime: summarize(mergeHistograms(results.map((r) => r.connectTimes))),
    };
  } finally {
    await stopClients(clients);
  }
}

export async function measureFloor({ quick }) {
  const durationMs = quick ? 500 : 3000;
  const redis = await startRedis();
  let redisRtt;
  let bullmq;
  try {
    log('floor: Redis PING round trip');
    redisRtt = await redisFloor(redis.url, durationMs);
    log('floor: BullMQ add → active');
    bullmq = await bullmqFloor(redis, quick ? 100 : 500, durationMs);
  } finally {
    await redis.stop();
  }
  const server = await startUwsEcho();
  let uwsEcho;
  let uwsIdle;
  try {
    log('floor: uWS echo round trip');
    uwsEcho = await uwsEchoFloor(server.wsUrl, durationMs);
    log('floor: idle sockets on a bare uWS server');
    uwsIdle = await uwsIdleFloor(server, quick ? 200 : 5000, quick ? 1 : 2);
  } finally {
    await server.stop();
  }
  return { redisRtt, uwsEcho, bullmqAddToActive: bullmq, uwsIdle };
}
