import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { METRICS_CONTENT_TYPE } from '@chorus/observability';
import type { Registry } from '@chorus/observability';
import type { GatewayContext } from './gateway-context.js';
import type { HealthReporter } from './health.js';
import { json, respond, type HttpAnswer } from './http-respond.js';
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws.js';

const ENDPOINTS = ['/', '/ws', '/api', '/health', '/livez', '/readyz', '/metrics', '/api/graph'];
const GRAPH_CACHE_MS = 5_000;

export interface HttpDeps {
  ctx: GatewayContext;
  health: HealthReporter;
  registry: Registry;
  /** The page served when services/web has not been built: it says so. */
  indexHtml: string;
  /** The built web page (services/web/dist); null to serve the fallback. */
  webPage?: WebPage | null;
}

export function loadIndexHtml(): string {
  return readFileSync(new URL('../public/index.html', import.meta.url), 'utf8');
}

/** The demo chat page as `vite build` left it: index.html and its hashed assets, in memory. */
export interface WebPage {
  indexHtml: string;
  /** By URL path (`/assets/index-3f2a.js`). */
  assets: Map<string, { body: Buffer; contentType: string }>;
}

const WEB_DIST = fileURLToPath(new URL('../../web/dist/', import.meta.url));
const ASSET_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * Reads the built page once, at start. Only files found here are ever served, by exact path,
 * so no request path can reach outside the assets folder.
 */
export function loadWebPage(dist: string = WEB_DIST): WebPage | null {
  const indexPath = join(dist, 'index.html');
  if (!existsSync(indexPath)) return null;
  const assets = new Map<string, { body: Buffer; contentType: string }>();
  const walk = (dir: string, urlPath: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = join(dir, entry.name);
      if (entry.isDirectory()) walk(file, `${urlPath}${entry.name}/`);
      else if (entry.isFile()) {
        assets.set(`${urlPath}${entry.name}`, {
          body: readFileSync(file),
          contentType: ASSET_TYPES[extname(entry.name)] ?? 'application/octet-stream',
        });
      }
    }
  };
  const assetsDir = join(dist, 'assets');
  if (existsSync(assetsDir)) walk(assetsDir, '/assets/');
  return { indexHtml: readFileSync(indexPath, 'utf8'), assets };
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

  const webPage = deps.webPage === undefined ? loadWebPage() : deps.webPage;
  if (!webPage) {
    ctx.log.warn(
      { dist: WEB_DIST },
      'the web page is not built (pnpm build builds it): serving a page that says so',
    );
  }
  const indexHtml = webPage?.indexHtml ?? deps.indexHtml;
  get('/', () => ({ status: 200, body: indexHtml, contentType: 'text/html; charset=utf-8' }));
  // Hashed file names: a changed file gets a new name, so browsers may keep these forever.
  app.get('/assets/*', (res: HttpResponse, req: HttpRequest) => {
    const asset = webPage?.assets.get(req.getUrl());
    if (!asset) {
      respond(res, () => json(404, { error: 'not_found' }), onError);
      return;
    }
    res.cork(() => {
      res.writeStatus('200 OK');
      res.writeHeader('Content-Type', asset.contentType);
      res.writeHeader('Cache-Control', 'public, max-age=31536000, immutable');
      res.writeHeader('X-Content-Type-Options', 'nosniff');
      res.end(asset.body);
    });
  });
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
