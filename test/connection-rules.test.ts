import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GATEWAY_MAIN,
  ServiceProcess,
  TEST_SECRET,
  WORKER_MAIN,
} from './support/service-process.js';
import { TestBrowser, UpgradeRefused, type Frame } from './support/test-browser.js';
import { TestCluster } from './support/test-cluster.js';

/**
 * PROTOCOL.md's connecting rules and close codes, and how a gateway starts, drains and dies:
 * what a client sees on the socket and what an operator sees in /health and on stderr.
 */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with the value, or rejects after `ms` saying what did not happen. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    promise.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}

interface ClusterHealth {
  status: string;
  uws: { native: boolean };
  cluster: { gateways: number; active_connections: number };
}

async function healthOf(url: string): Promise<ClusterHealth> {
  const res = await fetch(`${url}/health`);
  return (await res.json()) as ClusterHealth;
}

async function pollHealth(
  url: string,
  done: (h: ClusterHealth) => boolean,
  timeoutMs: number,
): Promise<ClusterHealth> {
  const deadline = Date.now() + timeoutMs;
  let health = await healthOf(url);
  while (!done(health) && Date.now() < deadline) {
    await sleep(200);
    health = await healthOf(url);
  }
  return health;
}

/** Runs a process that is expected to refuse its configuration and exit. */
async function refusedStart(name: string, main: string, env: Record<string, string>) {
  const proc = ServiceProcess.spawn(name, main, env);
  try {
    const exit = await within(proc.exited, 10_000, `${name} exiting on a bad configuration`);
    return { ...exit, stderr: proc.stderr.join(''), logs: proc.logs };
  } finally {
    await proc.kill('SIGKILL');
  }
}

describe('connection rules', () => {
  // MAX_MESSAGE_BYTES and MAX_SOCKETS_PER_SESSION are small here, so the limits are reachable.
  let cluster: TestCluster;
  const browsers: TestBrowser[] = [];
  const track = (browser: TestBrowser) => {
    browsers.push(browser);
    return browser;
  };
  const open = async (gateway: number, options = {}) => {
    const result = await TestBrowser.open(cluster.gateway(gateway).wsUrl, options);
    track(result.browser);
    return result;
  };
  /** Connects and waits for the close, recording every frame that came before it. */
  const rejected = async (gateway: number, options = {}) => {
    const browser = track(await TestBrowser.connect(cluster.gateway(gateway).wsUrl, options));
    const closed = await within(browser.closed, 5_000, 'socket closed by the gateway');
    return { closed, frames: browser.frames };
  };

  beforeAll(async () => {
    cluster = await TestCluster.start({
      gateways: 2,
      workers: 1,
      gatewayEnv: { MAX_MESSAGE_BYTES: '1024', MAX_SOCKETS_PER_SESSION: '2' },
    });
  });
  afterAll(async () => {
    for (const browser of browsers) browser.terminate();
    await cluster?.stop();
  });

  describe('sessions', () => {
    it('no session param starts a new session; its token joins it on the other replica', async () => {
      const first = await open(0);
      expect(first.welcome).toMatchObject({ type: 'welcome', resumed: false });
      expect(first.welcome.sessionId).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(first.welcome.token).toEqual(expect.any(String));
      const other = await open(0);
      expect(other.welcome.sessionId).not.toBe(first.welcome.sessionId);

      const joined = await open(1, {
        session: String(first.welcome.sessionId),
        token: String(first.welcome.token),
      });
      expect(joined.welcome).toMatchObject({
        sessionId: first.welcome.sessionId,
        token: first.welcome.token,
        resumed: true,
      });
      expect(joined.welcome.gatewayId).not.toBe(first.welcome.gatewayId);
    });

    it('a wrong token is closed with 4401 before any welcome', async () => {
      const { welcome } = await open(0);
      const sessionId = String(welcome.sessionId);
      const token = String(welcome.token);
      const wrong = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`;
      for (const [gateway, options] of [
        [1, { session: sessionId, token: wrong }],
        [0, { session: sessionId, token: 'x' }],
        [1, { session: sessionId }],
      ] as const) {
        const { closed, frames } = await rejected(gateway, options);
        expect(closed.code).toBe(4401);
        expect(frames).toEqual([]);
        expect(closed.reason).not.toContain(sessionId);
      }
    });

    it('a malformed session id is closed with 4401', async () => {
      const { welcome } = await open(0);
      for (const session of [
        'not-a-session',
        '../../etc/passwd',
        `${String(welcome.sessionId)}x`,
        '',
      ]) {
        const { closed, frames } = await rejected(0, { session, token: String(welcome.token) });
        expect(closed.code, `session ${JSON.stringify(session)}`).toBe(4401);
        expect(frames).toEqual([]);
      }
    });
  });

  describe('origins', () => {
    it('a foreign Origin is refused with HTTP 403 before the upgrade', async () => {
      for (const origin of ['https://evil.example', 'http://localhost:8081', 'null']) {
        const attempt = TestBrowser.connect(cluster.gateway(0).wsUrl, { origin });
        await expect(attempt).rejects.toBeInstanceOf(UpgradeRefused);
        await expect(attempt).rejects.toMatchObject({ status: 403 });
      }
    });

    it('the allowed origin, and no Origin at all (a non-browser client), are let in', async () => {
      const allowed = await open(1, { origin: 'http://localhost:8080' });
      expect(allowed.welcome.type).toBe('welcome');

      const socket = new WebSocket(cluster.gateway(1).wsUrl);
      const frames: Frame[] = [];
      // Text frames arrive as one Buffer (ws's default binaryType).
      socket.on('message', (data: Buffer) =>
        frames.push(JSON.parse(data.toString('utf8')) as Frame),
      );
      try {
        await within(
          new Promise<void>((resolve, reject) => {
            socket.once('error', reject);
            socket.once('unexpected-response', (_req, res) =>
              reject(new Error(`HTTP ${res.statusCode}`)),
            );
            socket.on('message', () => resolve());
          }),
          5_000,
          'welcome without an Origin header',
        );
        expect(frames[0]).toMatchObject({ type: 'welcome', protocol: 1 });
      } finally {
        socket.terminate();
      }
    });
  });

  describe('frame size', () => {
    it('a chat a little over maxMessageBytes gets too_large and the socket stays open', async () => {
      const { browser, welcome } = await open(0);
      expect(welcome.limits).toEqual({ maxMessageBytes: 1024 });
      browser.chat('big', 'x'.repeat(1100));
      const error = await browser.next('error');
      expect(error).toMatchObject({
        code: 'too_large',
        replyTo: 'big',
        message: expect.any(String),
      });
      expect(browser.frames.some((f) => f.type === 'ack')).toBe(false);
      browser.send({ type: 'ping' });
      await expect(browser.next('pong')).resolves.toMatchObject({ ts: expect.any(Number) });
      // Exactly at the limit is fine.
      browser.chat('fits', 'y'.repeat(1024));
      await expect(browser.next('ack')).resolves.toMatchObject({ id: 'fits' });
    });

    it('a chat at the limit is accepted however much JSON escapes it (six bytes a character)', async () => {
      const { browser } = await open(0);
      const text = '\u0001'.repeat(1024); // a 6 KiB frame for 1 KiB of text
      browser.chat('escaped', text);
      await expect(browser.next('ack')).resolves.toMatchObject({ id: 'escaped' });
      const stored = browser.frames.find((f) => f.type === 'user.message' && f.id === 'escaped');
      expect(stored?.text).toBe(text);
    });

    it('a frame far over the limit closes the socket with 1009', async () => {
      const { browser } = await open(1);
      browser.chat('huge', 'z'.repeat(20 * 1024));
      const closed = await within(browser.closed, 5_000, 'close after a 20 KB frame');
      expect(closed.code).toBe(1009);
      expect(browser.frames.some((f) => f.type === 'ack')).toBe(false);
    });
  });

  describe('draining and startup', () => {
    it('SIGTERM drains: the socket closes with 1001 and the gateway exits 0', async () => {
      const gateway = await cluster.addGateway();
      const { browser } = await TestBrowser.open(gateway.wsUrl);
      track(browser);
      const [exit, closed] = await Promise.all([
        within(gateway.kill('SIGTERM'), 15_000, 'gateway exit after SIGTERM'),
        within(browser.closed, 15_000, 'socket close on drain'),
      ]);
      expect(closed.code).toBe(1001);
      expect(exit).toEqual({ code: 0, signal: null });
    });

    it('uWS fallback is reported: /health uws.native false, status degraded, an error log', async () => {
      const gateway = await cluster.addGateway({ UWS_USE_FALLBACK: '1' });
      const health = await pollHealth(gateway.url, (h) => h.cluster.gateways >= 3, 3_000);
      expect(health.uws).toEqual({ native: false });
      expect(health.status).toBe('degraded');
      // Same cluster, so the other replicas (native, with a worker) stay healthy.
      expect((await healthOf(cluster.gateway(0).url)).status).toBe('healthy');
      const line = gateway.logs.find((l) => l.level === 'error' && /fallback/i.test(l.msg));
      expect(line, JSON.stringify(gateway.logs.map((l) => [l.level, l.msg]))).toBeDefined();
      await gateway.kill('SIGKILL');
    });

    it('a bad configuration exits 1 and names the variable on stderr', async () => {
      const base = {
        REDIS_URL: cluster.redisUrl,
        KEY_PREFIX: cluster.prefix,
        PORT: '0',
        HOST: '127.0.0.1',
      };
      const origins = { ALLOWED_ORIGINS: 'http://localhost:8080' };
      const [noSecret, badPort, badConcurrency] = await Promise.all([
        refusedStart('gateway', GATEWAY_MAIN, { ...base, ...origins }),
        refusedStart('gateway', GATEWAY_MAIN, {
          ...base,
          ...origins,
          SESSION_SECRET: TEST_SECRET,
          PORT: 'abc',
        }),
        refusedStart('worker', WORKER_MAIN, {
          REDIS_URL: cluster.redisUrl,
          KEY_PREFIX: cluster.prefix,
          WORKER_CONCURRENCY: '0',
        }),
      ]);
      expect(noSecret.code).toBe(1);
      expect(noSecret.stderr).toMatch(/SESSION_SECRET/);
      expect(noSecret.stderr).not.toMatch(/at .*\.js:\d+/);
      expect(badPort.code).toBe(1);
      expect(badPort.stderr).toMatch(/PORT/);
      expect(badPort.stderr).not.toContain('SESSION_SECRET');
      expect(badPort.stderr).not.toContain(TEST_SECRET);
      expect(badConcurrency.code).toBe(1);
      expect(badConcurrency.stderr).toMatch(/WORKER_CONCURRENCY/);
      for (const run of [noSecret, badPort, badConcurrency]) {
        expect(
          run.logs.some((l) => l.msg === 'gateway listening' || l.msg === 'worker started'),
        ).toBe(false);
      }
    });
  });
  it('a port already in use exits 1 and says so, instead of sharing the port', async () => {
    const taken = await refusedStart('gateway', GATEWAY_MAIN, {
      REDIS_URL: cluster.redisUrl,
      KEY_PREFIX: cluster.prefix,
      HOST: '127.0.0.1',
      PORT: String(cluster.gateway(0).port),
      SESSION_SECRET: TEST_SECRET,
      ALLOWED_ORIGINS: '*',
    });
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain(
      `PORT: 127.0.0.1:${cluster.gateway(0).port} is already in use by another process`,
    );
    expect(taken.logs.some((l) => l.msg === 'gateway listening')).toBe(false);
  });
  describe('per-session socket cap', () => {
    it('above MAX_SOCKETS_PER_SESSION the oldest socket, on either replica, is closed with 4001', async () => {
      const first = await open(0);
      const session = {
        session: String(first.welcome.sessionId),
        token: String(first.welcome.token),
      };
      const second = await open(1, session);
      const third = await open(1, session);
      expect((await within(first.browser.closed, 5_000, 'oldest socket replaced')).code).toBe(4001);
      expect(second.browser.socket.readyState).toBe(WebSocket.OPEN);

      const fourth = await open(0, session);
      expect((await within(second.browser.closed, 5_000, 'next oldest socket replaced')).code).toBe(
        4001,
      );

      fourth.browser.chat('capped', 'What is a linked list?');
      const [onThird, onFourth] = await Promise.all([
        third.browser.waitFor((f) => f.type === 'reply.end' && f.replyTo === 'capped', 20_000),
        fourth.browser.waitFor((f) => f.type === 'reply.end' && f.replyTo === 'capped', 20_000),
      ]);
      expect(onThird.text).toBe(onFourth.text);
      for (const { browser } of [third, fourth])
        expect(browser.socket.readyState).toBe(WebSocket.OPEN);
      const sockets = await cluster.redis().hlen(cluster.keys.session(session.session).sockets);
      expect(sockets).toBe(2);
    });

    // PRODUCT BUG: a replica treats a peer it has not seen in its last heartbeat (every 5 s) as
    // dead and deletes that peer's sockets from the session, so right after a replica starts the
    // cap is not enforced (and the deleted socket is never counted again).
    it('the cap also holds for sockets on a replica that started moments ago', async () => {
      const first = await open(0);
      const session = {
        session: String(first.welcome.sessionId),
        token: String(first.welcome.token),
      };
      const fresh = await cluster.addGateway();
      try {
        const onFresh = track((await TestBrowser.open(fresh.wsUrl, session)).browser);
        await open(0, session);
        expect((await within(first.browser.closed, 3_000, 'oldest socket replaced')).code).toBe(
          4001,
        );
        expect(onFresh.socket.readyState).toBe(WebSocket.OPEN);
      } finally {
        await fresh.kill('SIGKILL');
      }
    });
  });
});

describe('heartbeat', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({
      gateways: 1,
      workers: 0,
      gatewayEnv: { HEARTBEAT_MS: '300' },
    });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('a silent socket is closed with 4408; one that pings stays open', async () => {
    const silent = await TestBrowser.open(cluster.gateway(0).wsUrl);
    const pinging = await TestBrowser.open(cluster.gateway(0).wsUrl);
    expect(silent.welcome.heartbeatMs).toBe(300);
    const started = Date.now();
    const timer = setInterval(() => pinging.browser.send({ type: 'ping' }), 100);
    try {
      const closed = await within(silent.browser.closed, 2_000, 'silent socket closed');
      expect(closed.code).toBe(4408);
      // Not before twice heartbeatMs.
      expect(Date.now() - started).toBeGreaterThanOrEqual(550);
      await sleep(Math.max(0, 2_000 - (Date.now() - started)));
      expect(pinging.browser.socket.readyState).toBe(WebSocket.OPEN);
      expect(pinging.browser.frames.filter((f) => f.type === 'pong').length).toBeGreaterThanOrEqual(
        10,
      );
    } finally {
      clearInterval(timer);
      silent.browser.terminate();
      pinging.browser.terminate();
    }
  });
});

describe('a gateway that dies', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ gateways: 2, workers: 0 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('leaves the cluster counts, with its sockets, after SIGKILL', async () => {
    const sockets = [
      await TestBrowser.open(cluster.gateway(1).wsUrl),
      await TestBrowser.open(cluster.gateway(1).wsUrl),
    ];
    try {
      const survivor = cluster.gateway(0).url;
      const before = await pollHealth(survivor, (h) => h.cluster.active_connections === 2, 8_000);
      expect(before.cluster).toMatchObject({ gateways: 2, active_connections: 2 });

      await cluster.gateway(1).kill('SIGKILL');
      const after = await pollHealth(
        survivor,
        (h) => h.cluster.active_connections === 0 && h.cluster.gateways === 1,
        25_000,
      );
      expect(after.cluster).toMatchObject({ gateways: 1, active_connections: 0 });
    } finally {
      for (const { browser } of sockets) browser.terminate();
    }
  }, 40_000);
});
