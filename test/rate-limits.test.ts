import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestBrowser, type Frame } from './support/test-browser.js';
import { FakeOpenAI } from './support/fake-openai.js';
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
    // The wait in ms too, for clients that resend by themselves (as @chorus/client does).
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(60_000);
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

/** Per-address connection limits, behind a trusted proxy that names the client address. */
describe('connection limits per address', () => {
  let cluster: TestCluster;
  const browsers: TestBrowser[] = [];

  beforeAll(async () => {
    cluster = await TestCluster.start({
      gateways: 2,
      workers: 0,
      gatewayEnv: {
        TRUST_PROXY: 'true',
        CONNECTIONS_PER_IP: '3',
        CONNECT_BURST_PER_IP: '5',
        CONNECT_RATE_PER_IP_PER_MINUTE: '60',
      },
    });
    // Replicas learn each other's instances on their 5 s heartbeat; count in the steady state.
    await new Promise((resolve) => setTimeout(resolve, 5_500));
  });
  afterAll(async () => {
    for (const browser of browsers) browser.terminate();
    await cluster?.stop();
  });

  const connect = async (gateway: number, address: string) => {
    const browser = await TestBrowser.connect(cluster.gateway(gateway).wsUrl, {
      // The client may write any X-Forwarded-For; only the entry the proxy appended counts.
      headers: { 'X-Forwarded-For': `203.0.113.50, ${address}` },
    });
    browsers.push(browser);
    const first = await Promise.race([
      browser.next('welcome').then(() => 'welcome' as const),
      browser.closed.then((closed) => closed),
    ]);
    return { browser, first };
  };

  it('holds an address to CONNECTIONS_PER_IP open sockets across replicas', async () => {
    const address = '198.51.100.7';
    const open = [await connect(0, address), await connect(0, address), await connect(1, address)];
    for (const { first } of open) expect(first).toBe('welcome');
    const refused = await connect(1, address);
    expect(refused.first).toEqual({ code: 4429, reason: 'too many connections from this address' });
    // Another address is not affected.
    expect((await connect(1, '198.51.100.8')).first).toBe('welcome');
    // Closing one makes room again.
    open[0]?.browser.close();
    await open[0]?.browser.closed;
    await expect
      .poll(async () => (await connect(0, address)).first, { timeout: 5_000, interval: 300 })
      .toBe('welcome');
  });

  it('refuses an address that connects faster than its allowance, then lets it back', async () => {
    const address = '198.51.100.9';
    for (let i = 0; i < 5; i++) {
      const { browser, first } = await connect(i % 2, address);
      expect(first).toBe('welcome');
      browser.close();
      await browser.closed;
    }
    const refused = await connect(0, address);
    expect(refused.first).toMatchObject({
      code: 4429,
      reason: expect.stringMatching(/connecting too often; retry in \d+ s/),
    });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await connect(1, address)).first).toBe('welcome');

    const metrics = await (await fetch(`${cluster.gateway(0).url}/metrics`)).text();
    expect(metrics).toMatch(/chorus_ws_errors_total\{reason="connect_rate_limited"[^}]*\} 1\b/);
  });
});

/** Model tokens per session per hour: a spent session gets `rate_limited`, others go on. */
describe('model token budget', () => {
  let cluster: TestCluster;
  let fake: FakeOpenAI;
  const browsers: TestBrowser[] = [];

  beforeAll(async () => {
    fake = await FakeOpenAI.start();
    cluster = await TestCluster.start({
      gateways: 1,
      workers: 1,
      workerEnv: {
        OPENAI_API_KEY: 'test-key',
        OPENAI_BASE_URL: fake.baseURL,
        OPENAI_MODEL: 'fake-model',
        MODEL_TOKENS_PER_SESSION_PER_HOUR: '20',
      },
    });
  });
  afterAll(async () => {
    for (const browser of browsers) browser.terminate();
    await cluster?.stop();
    await fake?.stop();
  });

  const open = async () => {
    const result = await TestBrowser.open(cluster.gateway(0).wsUrl);
    browsers.push(result.browser);
    return result.browser;
  };

  it('answers until the session spent its hourly tokens, then refuses with rate_limited', async () => {
    const spender = await open();
    spender.chat('b1', 'What is a queue?');
    const first = await spender.reply('b1');
    expect(first.end.usage).toMatchObject({ inputTokens: 20 });

    const requestsBefore = fake.requests.length;
    spender.chat('b2', 'And a stack?');
    const refused = await spender.waitFor((f) => f.type === 'error' && f.replyTo === 'b2');
    expect(refused).toMatchObject({ code: 'rate_limited', eventId: expect.any(String) });
    expect(String(refused.message)).toMatch(/tokens for this hour/);
    await spender.waitFor(
      (f) => f.type === 'status' && f.state === 'idle' && f.eventId! > refused.eventId!,
    );
    expect(fake.requests.length).toBe(requestsBefore); // no model call was made for it

    const other = await open();
    other.chat('c1', 'What is a tree?');
    await expect(other.reply('c1')).resolves.toMatchObject({ end: { type: 'reply.end' } });

    const metrics = await (
      await fetch(`http://127.0.0.1:${cluster.workers[0]?.metricsPort}/metrics`)
    ).text();
    expect(metrics).toMatch(/chorus_jobs_total\{outcome="rate_limited"[^}]*\} 1\b/);
  });
});
