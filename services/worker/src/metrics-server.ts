import { createServer, type Server } from 'node:http';
import { METRICS_CONTENT_TYPE, type Registry } from '@chorus/observability';

/** The worker's HTTP side: /metrics for Prometheus, /health and /livez for orchestrators. */
export function startMetricsServer(
  port: number,
  registry: Registry,
  health: () => Promise<{ healthy: boolean; body: unknown }>,
): Promise<Server> {
  const server = createServer((req, res) => {
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' }).end(body);
    };
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') return send(405, 'text/plain', 'method not allowed');
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => send(200, METRICS_CONTENT_TYPE, text),
        () => send(500, 'text/plain', 'metrics unavailable'),
      );
      return;
    }
    if (path === '/health') {
      health().then(
        ({ healthy, body }) => send(healthy ? 200 : 503, 'application/json', JSON.stringify(body)),
        () => send(503, 'application/json', '{"status":"unhealthy"}'),
      );
      return;
    }
    if (path === '/livez') return send(200, 'application/json', '{"status":"alive"}');
    send(
      404,
      'application/json',
      '{"error":"not_found","endpoints":["/metrics","/health","/livez"]}',
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => resolve(server));
  });
}
