import { readFileSync } from 'node:fs';
import { METRICS_CONTENT_TYPE } from '@chorus/observability';
import type { Registry } from '@chorus/observability';
import type { GatewayContext } from './gateway-context.js';
import type { HealthReporter } from './health.js';
import { json, respond, type HttpAnswer } from './http-respond.js';
import type { HttpResponse, TemplatedApp } from './uws.js';

const ENDPOINTS = ['/', '/ws', '/api', '/health', '/livez', '/readyz', '/metrics', '/api/graph'];
const GRAPH_CACHE_MS = 5_000;

export interface HttpDeps {
  ctx: GatewayContext;
  health: HealthReporter;
  registry: Registry;
  /** The demo chat page. */
  indexHtml: string;
}

export function loadIndexHtml(): string {
  return readFileSync(new URL('../public/index.html', import.meta.url), 'utf8');
}

/** The gateway's HTTP endpoints (PROTOCOL.md, "HTTP endpoints of a gateway"). */
export function registerHttpRoutes(app: TemplatedApp, deps: HttpDeps): void {
  const { ctx, health, registry } = deps;
  const onError = (error: unknown) => {
    ctx.stats.error('http');
    ctx.log.error({ err: error }, 'http handler failed');
  };
  const get = (path: string, work: () => HttpAnswer | Promise<HttpAnswer>) =>
    app.get(path, (res: HttpResponse) => respond(res, work, onError));

  let graphCache: { at: number; body: string } | null = null;

  get('/', () => ({ status: 200, body: deps.indexHtml, contentType: 'text/html; charset=utf-8' }));
  get('/api', () =>
    json(200, {
      service: 'chorus-gateway',
      version: ctx.settings.version,
      gatewayId: ctx.settings.gatewayId,
      endpoints: ENDPOINTS,
    }),
  );
  get('/health', async () => {
    const { healthy, body } = await health.report();
    return json(healthy ? 200 : 503, body);
  });
  get('/livez', () => json(200, { status: 'alive' }));
  get('/readyz', async () => {
    if (ctx.draining) return json(503, { status: 'draining' });
    return (await health.redisUp())
      ? json(200, { status: 'ready' })
      : json(503, { status: 'redis_unavailable' });
  });
  get('/metrics', async () => ({
    status: 200,
    body: await registry.metrics(),
    contentType: METRICS_CONTENT_TYPE,
  }));
  get('/api/graph', async () => {
    if (!graphCache || Date.now() - graphCache.at > GRAPH_CACHE_MS) {
      const graph = await ctx.graph.load();
      const body = JSON.stringify({
        nodes: graph.nodes.map(({ id, label, type }) => ({ id, label, type })),
        edges: graph.edges,
      });
      graphCache = { at: Date.now(), body };
    }
    return { status: 200, body: graphCache.body, contentType: 'application/json' };
  });
  app.any('/*', (res) =>
    respond(res, () => json(404, { error: 'not_found', endpoints: ENDPOINTS }), onError),
  );
}
