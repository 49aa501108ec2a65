import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSentinelGroup, type TestSentinelGroup } from './support/redis-sentinel.js';
import { TestBrowser, UpgradeRefused } from './support/test-browser.js';
import { TestCluster } from './support/test-cluster.js';

/**
 * Chorus behind Redis Sentinel (REDIS_URL=redis+sentinel://…/chorus): it finds the master through
 * the Sentinels, and after the master is killed and a replica promoted, it chats again without a
 * restart.
 */
describe('behind Redis Sentinel', () => {
  let group: TestSentinelGroup;
  let cluster: TestCluster;
  const browsers: TestBrowser[] = [];

  /** A new session's chat; its answer and the session id. */
  const chat = async (id: string) => {
    const { browser, welcome } = await TestBrowser.open(cluster.gateway(0).wsUrl);
    browsers.push(browser);
    browser.chat(id, 'What is a binary tree?');
    const reply = await browser.reply(id, 30_000);
    expect(reply.end.text).toBe(reply.deltas);
    expect(String(reply.end.text).length).toBeGreaterThan(0);
    return String(welcome.sessionId);
  };

  beforeAll(async () => {
    group = await startSentinelGroup(2);
    cluster = await TestCluster.start({ redisUrl: group.url, gateways: 1, workers: 1 });
  }, 60_000);
  afterAll(async () => {
    for (const browser of browsers) browser.terminate();
    await cluster?.stop();
    await group?.stop();
  });

  it('finds the master through the Sentinels', async () => {
    const sessionId = await chat('first');
    const master = new Redis(group.masterPort, '127.0.0.1', { maxRetriesPerRequest: 1 });
    try {
      expect(await master.exists(cluster.keys.session(sessionId).events)).toBe(1);
    } finally {
      master.disconnect();
    }
  }, 40_000);

  it('after the master dies and a replica is promoted, chat works again without a restart', async () => {
    const master = group.master;
    master.kill('SIGKILL');
    const deadline = Date.now() + 30_000;
    // Until its live-event subscription is back, the gateway says so and lets no socket in (one
    // let in would be sent away with 1001 as soon as the subscription returned).
    const gateway = cluster.gateway(0);
    let feed = '';
    while (feed !== 'down' && Date.now() < deadline) {
      const res = await fetch(`${gateway.url}/health`);
      feed = ((await res.json()) as { redis: { live_events: string } }).redis.live_events;
    }
    expect(feed).toBe('down');
    const refused = await TestBrowser.connect(gateway.wsUrl).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(UpgradeRefused);
    expect((refused as UpgradeRefused).status).toBe(503);
    while ((await group.currentMasterPort()) !== group.replicaPort) {
      if (Date.now() > deadline) throw new Error('the Sentinels never promoted the replica');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    // The services reconnect on their own, asking the Sentinels where the master is now.
    let healthy = false;
    while (!healthy && Date.now() < deadline + 15_000) {
      const res = await fetch(`${gateway.url}/health`);
      healthy = res.status === 200;
      if (!healthy) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(healthy).toBe(true);
    const sessionId = await chat('after-failover');
    const promoted = new Redis(group.replicaPort, '127.0.0.1', { maxRetriesPerRequest: 1 });
    try {
      expect(await promoted.exists(cluster.keys.session(sessionId).events)).toBe(1);
    } finally {
      promoted.disconnect();
    }
  }, 90_000);
});
