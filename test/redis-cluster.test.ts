import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisCluster, type TestRedisCluster } from './support/redis-cluster.js';
import type { WorkerProcess } from './support/service-process.js';
import { TestBrowser, type ConnectOptions, type Frame } from './support/test-browser.js';
import { TestCluster } from './support/test-cluster.js';

/**
 * Chorus on a real 3-master Redis Cluster (REDIS_URL=redis+cluster://…): sessions spread over
 * the shards, their live events travel by sharded pub/sub, and chat, resume and a worker crash
 * behave as on one Redis.
 */

/** The tutor alone answers this, offline in ~100 words: ~3 s with OFFLINE_CHUNK_DELAY_MS=30. */
const LONG_QUESTION = 'Explain how a hash table works';

const eventIds = (frames: Frame[]) =>
  frames.filter((f) => typeof f.eventId === 'string' && f.type !== 'ack').map((f) => f.eventId);

describe('on a 3-node Redis Cluster', () => {
  let redisCluster: TestRedisCluster;
  let cluster: TestCluster;
  let reader: Cluster;
  const browsers: TestBrowser[] = [];

  const open = async (gateway: number, options: ConnectOptions = {}) => {
    const opened = await TestBrowser.open(cluster.gateway(gateway).wsUrl, options);
    browsers.push(opened.browser);
    return opened;
  };
  const resumeOf = (welcome: Frame) => ({
    session: String(welcome.sessionId),
    token: String(welcome.token),
  });
  /** Which node's port owns a key's slot, as the cluster itself says. */
  const ownerOf = async (key: string): Promise<number> =>
    ownerOfSlot(await reader.cluster('KEYSLOT', key));
  const ownerOfSlot = async (slot: number): Promise<number> => {
    const ranges = await reader.cluster('SLOTS');
    const port = ranges.find(([from, to]) => slot >= from && slot <= to)?.[2]?.[1];
    if (port === undefined) throw new Error(`no node owns slot ${slot}`);
    return port;
  };

  beforeAll(async () => {
    redisCluster = await startRedisCluster(3);
    reader = new Cluster(redisCluster.ports.map((port) => ({ host: '127.0.0.1', port })));
    cluster = await TestCluster.start({
      redisUrl: redisCluster.url,
      gateways: 2,
      workers: 2,
      workerEnv: { OFFLINE_CHUNK_DELAY_MS: '30' },
    });
  }, 60_000);
  afterAll(async () => {
    for (const browser of browsers) browser.terminate();
    reader?.disconnect();
    await cluster?.stop();
    await redisCluster?.stop();
  });

  it('sessions land on every shard; each one chats, with both replicas showing the same reply', async () => {
    const sessions = await Promise.all(
      Array.from({ length: 9 }, async (_, i) => {
        const { browser: here, welcome } = await open(i % 2);
        const { browser: there } = await open((i + 1) % 2, resumeOf(welcome));
        here.chat(`c${i}`, `What is a queue? (${i})`);
        const [mine, theirs] = await Promise.all([here.reply(`c${i}`), there.reply(`c${i}`)]);
        expect(mine.end.text).toBe(mine.deltas);
        expect(String(mine.end.text).length).toBeGreaterThan(0);
        expect(theirs.end.text).toBe(mine.end.text);
        expect(eventIds(there.frames)).toEqual(eventIds(here.frames));
        return String(welcome.sessionId);
      }),
    );
    const owners = await Promise.all(
      sessions.map((id) => ownerOf(cluster.keys.session(id).events)),
    );
    // 9 random session ids on one shard: (1/3)^8 ≈ 0.015 %.
    expect(new Set(owners).size).toBeGreaterThan(1);

    // Each session's live channel is a shard channel, subscribed on the shard that owns it by
    // both gateways (they each hold one socket of it).
    const channel = cluster.keys.session(sessions[0]!).channel;
    const owner = redisCluster.node(await ownerOf(channel));
    const [, shardSubscribers] = (await owner.call('PUBSUB', 'SHARDNUMSUB', channel)) as [
      string,
      number,
    ];
    expect(shardSubscribers).toBe(2);
    const [, plainSubscribers] = (await owner.call('PUBSUB', 'NUMSUB', channel)) as [
      string,
      number,
    ];
    expect(plainSubscribers).toBe(0);
  }, 60_000);

  it('resume on the other replica mid-reply replays exactly the missed events', async () => {
    const { browser: first, welcome } = await open(0);
    first.chat('long', LONG_QUESTION);
    await first.waitFor((f) => f.type === 'reply.delta' && f.replyTo === 'long');
    await new Promise((resolve) => setTimeout(resolve, 300));
    first.terminate();
    await first.closed;
    const seen = eventIds(first.frames);

    const { browser: second, welcome: again } = await open(1, {
      ...resumeOf(welcome),
      lastEventId: String(seen.at(-1)),
    });
    expect(again).toMatchObject({ resumed: true, sessionId: welcome.sessionId });
    const end = await second.waitFor((f) => f.type === 'reply.end' && f.replyTo === 'long');
    await second.waitFor(
      (f) => f.type === 'status' && f.state === 'idle',
      10_000,
      second.frames.indexOf(end),
    );
    const stored = await reader.xrange(
      cluster.keys.session(String(welcome.sessionId)).events,
      '-',
      '+',
    );
    expect([...seen, ...eventIds(second.frames)]).toEqual(stored.map(([id]) => id));
    const deltas = [...first.frames, ...second.frames]
      .filter((f) => f.type === 'reply.delta' && f.replyTo === 'long')
      .map((f) => String(f.text))
      .join('');
    expect(end.text).toBe(deltas);
    expect(end.cancelled).toBeUndefined();
  }, 60_000);

  it('a worker killed mid-answer: the other worker answers again from a new reply.start, once', async () => {
    const { browser } = await open(0);
    browser.chat('crash', LONG_QUESTION);
    await browser.waitFor((f) => f.type === 'reply.delta' && f.replyTo === 'crash');
    const busy = await busyWorker(cluster.workers);
    await busy.kill('SIGKILL');
    expect(browser.frames.filter((f) => f.type === 'reply.end')).toEqual([]);

    const reply = await browser.reply('crash', 45_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const mine = browser.frames.filter((f) => f.replyTo === 'crash');
    expect(mine.filter((f) => f.type === 'reply.start')).toHaveLength(2);
    expect(mine.filter((f) => f.type === 'reply.end')).toHaveLength(1);
    expect(mine.filter((f) => f.type === 'error')).toEqual([]);
    expect(reply.end.text).toBe(reply.deltas);
    expect(reply.end.cancelled).toBeUndefined();
    expect(String(reply.end.text).length).toBeGreaterThan(0);
  }, 90_000);

  it('no service logged a Redis error (CROSSSLOT, MOVED, a failed loop) on the cluster', () => {
    const problems = [...cluster.gateways, ...cluster.workers].flatMap((service) =>
      service.logs
        .filter((line) => ['warn', 'error', 'fatal'].includes(line.level))
        .filter((line) => !line.msg.startsWith('no model configured')) // offline on purpose
        .map((line) => `${service.name}: ${line.msg} ${JSON.stringify(line.err ?? '')}`),
    );
    expect(problems).toEqual([]);
  });

  it('a slot none of its sessions is in moves to another shard: no socket is sent away', async () => {
    const { browser } = await open(0);
    const held = new Set(
      await Promise.all(
        browsers.map((b) =>
          reader.cluster('KEYSLOT', cluster.keys.session(String(b.frames[0]?.sessionId)).channel),
        ),
      ),
    );
    const slot = Array.from({ length: 16_384 }, (_, i) => i).find((i) => !held.has(i))!;
    const from = await ownerOfSlot(slot);
    await migrateSlot(
      slot,
      from,
      redisCluster.ports.find((port) => port !== from)!,
    );
    expect(await closeCodeWithin(browser, 6_000)).toBeNull();
    expect(cluster.gateway(0).logs.map((line) => line.msg)).not.toContain(
      'a shard dropped live-event subscriptions: slot moved?',
    );
    browser.chat('still-here', 'What is a queue?');
    expect((await browser.reply('still-here')).end.text).toBeTruthy();
  });

  // Last: it moves a slot, and its warnings would fail the test above.
  it("a session's slot moved to another shard: its sockets are sent away (1001), resume with nothing missed, and chat on", async () => {
    const { browser, welcome } = await open(0);
    browser.chat('before', 'What is a queue?');
    await browser.reply('before');
    const channel = cluster.keys.session(String(welcome.sessionId)).channel;
    const from = await ownerOf(channel);
    const to = redisCluster.ports.find((port) => port !== from)!;
    await migrateSlot(Number(await reader.cluster('KEYSLOT', channel)), from, to);

    expect(await closeCodeWithin(browser, 20_000)).toBe(1001);
    // Noticed from the shard's push, not by chance.
    expect(cluster.gateway(0).logs.map((line) => line.msg)).toContain(
      'a shard dropped live-event subscriptions: slot moved?',
    );
    const { browser: back } = await open(0, {
      ...resumeOf(welcome),
      lastEventId: String(eventIds(browser.frames).at(-1)),
    });
    back.chat('after', 'What is a stack?');
    const reply = await back.reply('after');
    expect(reply.end.text).toBe(reply.deltas);
    const stored = await reader.xrange(
      cluster.keys.session(String(welcome.sessionId)).events,
      '-',
      '+',
    );
    expect([...eventIds(browser.frames), ...eventIds(back.frames)]).toEqual(
      stored.map(([id]) => id),
    );
  }, 60_000);

  /** Moves one slot and its keys between two nodes, as `redis-cli --cluster reshard` does. */
  async function migrateSlot(slot: number, from: number, to: number) {
    const source = redisCluster.node(from);
    const target = redisCluster.node(to);
    const sourceId = String(await source.call('CLUSTER', 'MYID'));
    const targetId = String(await target.call('CLUSTER', 'MYID'));
    await target.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId);
    await source.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId);
    for (;;) {
      const keys = (await source.call('CLUSTER', 'GETKEYSINSLOT', slot, 100)) as string[];
      if (keys.length === 0) break;
      await source.call('MIGRATE', '127.0.0.1', to, '', 0, 5_000, 'KEYS', ...keys);
    }
    for (const port of redisCluster.ports)
      await redisCluster.node(port).call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId);
  }
});

/** The code `browser` is closed with within `ms`, or null if it stays open. */
function closeCodeWithin(browser: TestBrowser, ms: number): Promise<number | null> {
  const open = new Promise<null>((resolve) => setTimeout(() => resolve(null), ms));
  return Promise.race([browser.closed.then(({ code }) => code), open]);
}

/** The worker whose /health reports an active job. */
async function busyWorker(workers: WorkerProcess[]): Promise<WorkerProcess> {
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    for (const worker of workers) {
      const res = await fetch(`http://127.0.0.1:${worker.metricsPort}/health`);
      const body = (await res.json()) as { active_jobs: number };
      if (body.active_jobs > 0) return worker;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('no worker reported an active job');
}
