import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestBrowser, type Frame } from './support/test-browser.js';
import { TestCluster } from './support/test-cluster.js';

/** The per-session chat allowance: a token bucket in Redis that every replica shares. */
describe('chat rate limit', () => {
  let cluster: TestCluster;
  const browsers: TestBrowser[] = [];

  beforeAll(async () => {
    cluster = await TestCluster.start({
      gateways: 2,
      workers: 1,
      gatewayEnv: { CHAT_BURST: '3', CHAT_RATE_PER_MINUTE: '60' },
    });
  });
  afterAll(async () => {
    for (const browser of browsers) browser.terminate();
    await cluster?.stop();
  });

  const open = async (gateway: number, options = {}) => {
    const result = await TestBrowser.open(cluster.gateway(gateway).wsUrl, options);
    browsers.push(result.browser);
    return result;
  };
  const outcome = (browser: TestBrowser, id: string) =>
    browser.waitFor(
      (f: Frame) => (f.type === 'ack' || f.type === 'error') && (f.id === id || f.replyTo === id),
    );

  it('refuses messages over the burst on any replica, never resends, and refills with time', async () => {
    const { browser: a, welcome } = await open(0);
    const { browser: b } = await open(1, {
      session: String(welcome.sessionId),
      token: String(welcome.token),
    });
    for (const id of ['r1', 'r2', 'r3']) a.chat(id, `What is a heap? ${id}`);
    for (const id of ['r1', 'r2', 'r3']) expect((await outcome(a, id)).type).toBe('ack');

    // The other replica sees the same, empty bucket.
    b.chat('r4', 'What is a trie?');
    const refused = await outcome(b, 'r4');
    expect(refused).toMatchObject({ type: 'error', code: 'rate_limited', replyTo: 'r4' });
    expect(String(refused.message)).toMatch(/retry in \d+ s/);
    // Refused means not stored: no user.message for it reaches any socket.
    expect(a.frames.some((f) => f.type === 'user.message' && f.id === 'r4')).toBe(false);

    // A resend of an accepted message is not a new message: same ack, no token needed.
    const firstAck = a.frames.find((f) => f.type === 'ack' && f.id === 'r1');
    b.chat('r1', 'What is a heap? r1');
    await expect(outcome(b, 'r1')).resolves.toMatchObject({
      type: 'ack',
      eventId: firstAck?.eventId,
    });

    // One message a second refills the bucket: r4 goes through when resent later.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const from = b.frames.length;
    b.chat('r4', 'What is a trie?');
    await expect(
      b.waitFor((f) => f.type === 'ack' && f.id === 'r4', 5_000, from),
    ).resolves.toBeTruthy();
    const end = await b.waitFor((f) => f.type === 'reply.end' && f.replyTo === 'r4', 15_000, from);
    expect(String(end.text)).toContain('offline');

    const metrics = await (await fetch(`${cluster.gateway(1).url}/metrics`)).text();
    expect(metrics).toMatch(/chorus_ws_errors_total\{reason="rate_limited"[^}]*\} 1\b/);
  });
});
