import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestBrowser } from './support/test-browser.js';
import { TestCluster } from './support/test-cluster.js';

/**
 * What operators and orchestrators read from a running cluster: /api, /health, /metrics, the
 * probes and the graph, on two gateway replicas and one worker.
 */

interface HttpResult {
  status: number;
  contentType: string;
  text: string;
}

async function get(url: string): Promise<HttpResult> {
  const res = await fetch(url);
  return {
    status: res.status,
    contentType: res.headers.get('content-type') ?? '',
    text: await res.text(),
  };
}

async function getJson<T = Record<string, unknown>>(
  url: string,
): Promise<{ status: number; body: T }> {
  const { status, contentType, text } = await get(url);
  expect(contentType).toMatch(/^application\/json/);
  return { status, body: JSON.parse(text) as T };
}

interface Health {
  status: string;
  service: string;
  version: string;
  gatewayId: string;
  timestamp: number;
  uptime_seconds: number;
  uptime_hours: number;
  websocket_metrics: Record<string, number>;
  cluster: {
    gateways: number;
    workers: number;
    active_connections: number;
    unique_browser_sessions: number;
    processing_sessions: number;
    queue: Record<string, number>;
  };
  knowledge_graph: { nodes: number; edges: number };
  agents: number;
  redis: { status: string; latency_ms: number; live_events: string };
  uws: { native: boolean };
}

/**
 * The value of one Prometheus series: `name{labels} value`. Every series also carries the
 * registry's default labels (service, instance), so `labels` only has to be a subset.
 */
function metricValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      found[pair[1] ?? ''] = pair[2] ?? '';
    }
    if (Object.entries(labels).every(([key, value]) => found[key] === value))
      return Number(match[3]);
  }
  return undefined;
}

/** Polls `read` until `done` holds for its value; returns the last value either way. */
async function poll<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!done(value) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    value = await read();
  }
  return value;
}

describe('health, metrics and probes', () => {
  let cluster: TestCluster;
  const browsers: TestBrowser[] = [];
  const open = async (gateway: number) => {
    const result = await TestBrowser.open(cluster.gateway(gateway).wsUrl);
    browsers.push(result.browser);
    return result;
  };
  const health = (gateway: number) => getJson<Health>(`${cluster.gateway(gateway).url}/health`);
  const metrics = async (gateway: number) =>
    (await get(`${cluster.gateway(gateway).url}/metrics`)).text;

  beforeAll(async () => {
    cluster = await TestCluster.start({ gateways: 2, workers: 1 });
  });
  afterAll(async () => {
    for (const browser of browsers) browser.terminate();
    await cluster?.stop();
  });

  it('/metrics follows connections opening, pinging and closing', async () => {
    const start = await get(`${cluster.gateway(0).url}/metrics`);
    expect(start.status).toBe(200);
    expect(start.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(start.text).toContain('service="gateway"');
    expect(metricValue(start.text, 'chorus_ws_connections', { service: 'gateway' })).toBe(0);
    expect(metricValue(start.text, 'chorus_ws_connections_opened_total')).toBe(0);

    const { browser: a } = await open(0);
    const { browser: b } = await open(0);
    const during = await metrics(0);
    expect(metricValue(during, 'chorus_ws_connections')).toBe(2);
    expect(metricValue(during, 'chorus_ws_connections_opened_total')).toBe(2);
    const { body } = await health(0);
    expect(body.websocket_metrics.active_connections).toBe(2);
    expect(body.websocket_metrics.unique_browser_sessions).toBe(2);
    expect(body.websocket_metrics.total_connections_lifetime).toBe(2);

    a.send({ type: 'ping' });
    await a.next('pong');
    expect(
      metricValue(await metrics(0), 'chorus_ws_messages_received_total', { type: 'ping' }),
    ).toBe(1);

    a.close();
    b.close();
    expect((await a.closed).code).toBe(1000);
    expect((await b.closed).code).toBe(1000);
    const after = await poll(
      () => metrics(0),
      (text) => metricValue(text, 'chorus_ws_connections') === 0,
      3_000,
    );
    expect(metricValue(after, 'chorus_ws_connections')).toBe(0);
    expect(metricValue(after, 'chorus_ws_connections_closed_total', { code: '1000' })).toBe(2);
    expect((await health(0)).body.websocket_metrics.active_connections).toBe(0);
  });

  it('GET /api names the service, its version and its endpoints', async () => {
    const { status, body } = await getJson(`${cluster.gateway(0).url}/api`);
    expect(status).toBe(200);
    expect(body).toMatchObject({
      service: 'chorus-gateway',
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      gatewayId: expect.any(String),
      endpoints: expect.arrayContaining(['/health', '/ws', '/metrics', '/api/graph']),
    });
    const other = await getJson(`${cluster.gateway(1).url}/api`);
    expect(other.body.gatewayId).not.toBe(body.gatewayId);
  });

  it('GET /health has every field of the protocol, and the cluster around it', async () => {
    const { status, body } = await health(0);
    expect(status).toBe(200);
    const api = await getJson(`${cluster.gateway(0).url}/api`);
    expect(body).toMatchObject({
      status: 'healthy',
      service: 'chorus-gateway',
      version: api.body.version,
      gatewayId: api.body.gatewayId,
      uptime_seconds: expect.any(Number),
      uptime_hours: expect.any(Number),
      websocket_metrics: {
        active_connections: expect.any(Number),
        unique_browser_sessions: expect.any(Number),
        processing_connections: 0,
        pending_swaps: 0,
        total_connections_lifetime: expect.any(Number),
        total_errors: expect.any(Number),
        total_messages: expect.any(Number),
        avg_messages_per_connection: expect.any(Number),
      },
      cluster: {
        gateways: 2,
        workers: 1,
        active_connections: expect.any(Number),
        unique_browser_sessions: expect.any(Number),
        processing_sessions: expect.any(Number),
        queue: {
          waiting: expect.any(Number),
          active: expect.any(Number),
          failed: expect.any(Number),
        },
      },
      knowledge_graph: { nodes: expect.any(Number), edges: expect.any(Number) },
      redis: { status: 'up', latency_ms: expect.any(Number), live_events: 'up' },
      uws: { native: true },
    });
    // Seconds since the epoch, not milliseconds.
    expect(Math.abs(body.timestamp - Date.now() / 1000)).toBeLessThan(5);
    expect(body.uptime_seconds).toBeGreaterThanOrEqual(0);
    expect(body.uptime_seconds).toBeLessThan(120);
    expect(body.uptime_hours).toBeLessThan(0.05);
    expect(body.knowledge_graph.nodes).toBeGreaterThanOrEqual(300);
    expect(body.knowledge_graph.edges).toBeGreaterThan(0);
    expect(body.agents).toBeGreaterThanOrEqual(1);
    expect(body.redis.latency_ms).toBeGreaterThanOrEqual(0);
    expect(body.redis.latency_ms).toBeLessThan(1000);
  });

  it('the other replica sees this replica’s connections in its cluster view', async () => {
    await open(0);
    await open(0);
    const seen = await poll(
      () => health(1),
      ({ body }) => body.cluster.active_connections === 2,
      7_000,
    );
    expect(seen.body.cluster.active_connections).toBe(2);
    expect(seen.body.cluster.unique_browser_sessions).toBe(2);
    // Its own figures stay its own.
    expect(seen.body.websocket_metrics.active_connections).toBe(0);
  });

  it('/health answers in under 100 ms', async () => {
    for (let i = 0; i < 3; i++) await health(1);
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const started = performance.now();
      const { status } = await health(1);
      times.push(performance.now() - started);
      expect(status).toBe(200);
    }
    for (const ms of times) expect(ms).toBeLessThan(100);
  });

  it('50 concurrent /health requests all get a valid answer', async () => {
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => health(i % 2)));
    for (const { status, body } of answers) {
      expect(status).toBe(200);
      expect(body.service).toBe('chorus-gateway');
      expect(body.redis.status).toBe('up');
    }
  });

  it('/api/graph is the knowledge graph, with edges between its nodes', async () => {
    const { status, body } = await getJson<{
      nodes: { id: string; label: string; type: string }[];
      edges: { source: string; target: string; label: string }[];
    }>(`${cluster.gateway(1).url}/api/graph`);
    expect(status).toBe(200);
    expect(body.nodes.length).toBeGreaterThanOrEqual(300);
    for (const node of body.nodes) {
      expect(node).toEqual({
        id: expect.any(String),
        label: expect.any(String),
        type: expect.any(String),
      });
    }
    const ids = new Set(body.nodes.map((n) => n.id));
    expect(ids.size).toBe(body.nodes.length);
    expect(body.edges.length).toBeGreaterThan(0);
    const dangling = body.edges.filter((e) => !ids.has(e.source) || !ids.has(e.target));
    expect(dangling).toEqual([]);
    const { body: h } = await health(1);
    expect(h.knowledge_graph).toEqual({ nodes: body.nodes.length, edges: body.edges.length });
  });

  it('probes answer 200, unknown paths 404 with JSON', async () => {
    const livez = await getJson(`${cluster.gateway(0).url}/livez`);
    expect(livez.status).toBe(200);
    const readyz = await getJson(`${cluster.gateway(0).url}/readyz`);
    expect(readyz.status).toBe(200);
    const missing = await getJson(`${cluster.gateway(0).url}/no/such/path`);
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ error: 'not_found' });
  });

  it('the worker exposes /metrics and /health on its METRICS_PORT', async () => {
    const worker = cluster.workers[0];
    if (!worker) throw new Error('no worker');
    const base = `http://127.0.0.1:${worker.metricsPort}`;
    const before = await get(`${base}/metrics`);
    expect(before.status).toBe(200);
    expect(before.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(metricValue(before.text, 'chorus_jobs_total', { outcome: 'completed' }) ?? 0).toBe(0);

    const { browser } = await open(1);
    browser.chat('w1', 'What is a hash table?');
    await browser.reply('w1');
    const after = await poll(
      () => get(`${base}/metrics`),
      ({ text }) => metricValue(text, 'chorus_jobs_total', { outcome: 'completed' }) === 1,
      3_000,
    );
    expect(
      metricValue(after.text, 'chorus_jobs_total', { outcome: 'completed', service: 'worker' }),
    ).toBe(1);

    const { status, body } = await getJson<{ status: string; agents: number }>(`${base}/health`);
    expect(status).toBe(200);
    expect(body.status).toBe('healthy');
    expect(body.agents).toBeGreaterThanOrEqual(1);
  });
});
