import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import {
  ChattedCluster,
  metricNamesIn,
  parseExposition,
  run,
  scrape,
  tool,
} from '../support/prometheus.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DASHBOARD = `${ROOT}deploy/grafana/dashboards/chorus.json`;
const promtool = tool('promtool', "apt-get install prometheus (Debian's package has promtool)");

interface Target {
  expr: string;
  refId: string;
  datasource?: { uid?: string };
}
interface Panel {
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: {
    list: { name: string; type: string; query?: string; current?: { value?: string } }[];
  };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const panels = dashboard.panels
  .flatMap((p) => [p, ...(p.panels ?? [])])
  .filter((p) => p.type !== 'row');
const exprs = panels.flatMap((p) =>
  (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
);

/** Synthetic series Prometheus adds itself; every other name must come from our /metrics. */
const SYNTHETIC = new Set(['up']);

describe('the Grafana dashboard', () => {
  let chatted: ChattedCluster;
  const scraped = new Set<string>();

  beforeAll(async () => {
    chatted = await ChattedCluster.start();
    for (const target of chatted.targets) {
      const { types, samples } = parseExposition(await scrape(target.url));
      for (const name of types.keys()) scraped.add(name);
      for (const sample of samples) scraped.add(sample.name);
    }
  });
  afterAll(async () => {
    await chatted?.stop();
  });

  it('is a dashboard with queries on a Prometheus data source variable', () => {
    expect(dashboard.uid).toBe('chorus-overview');
    expect(dashboard.title).toBe('Chorus');
    const variable = dashboard.templating.list.find((v) => v.name === 'datasource');
    expect(variable).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(exprs.length).toBeGreaterThan(10);
    for (const panel of panels) {
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
    }
  });

  it('queries only metrics that a real gateway and worker expose', () => {
    expect(scraped.has('chorus_ws_connections')).toBe(true);
    const unknown = exprs.flatMap(({ panel, expr }) =>
      metricNamesIn(expr)
        .filter((name) => !scraped.has(name) && !SYNTHETIC.has(name))
        .map((name) => `${panel}: ${name} in ${expr}`),
    );
    expect(unknown).toEqual([]);
  });

  it('shows every chorus_* metric of the issue', () => {
    const used = new Set(exprs.flatMap(({ expr }) => metricNamesIn(expr)));
    const families = [...used].map((n) => n.replace(/_(bucket|sum|count)$/, ''));
    for (const metric of [
      'chorus_ws_connections',
      'chorus_ws_connections_opened_total',
      'chorus_ws_connections_closed_total',
      'chorus_ws_messages_received_total',
      'chorus_ws_messages_sent_total',
      'chorus_ws_errors_total',
      'chorus_ws_backpressure_events_total',
      'chorus_sessions_processing',
      'chorus_chat_jobs_enqueued_total',
      'chorus_resume_total',
      'chorus_reply_first_delta_seconds',
      'chorus_jobs_total',
      'chorus_job_duration_seconds',
      'chorus_message_wait_seconds',
      'chorus_llm_request_duration_seconds',
      'chorus_llm_time_to_first_token_seconds',
      'chorus_llm_tokens_total',
      'chorus_queue_jobs',
    ]) {
      expect(families, metric).toContain(metric);
    }
  });

  it('has the panels the issue asks for', () => {
    const panel = (title: RegExp, metric: string) => {
      const found = panels.find(
        (p) => title.test(p.title) && (p.targets ?? []).some((t) => t.expr.includes(metric)),
      );
      expect(found, `a panel titled ${String(title)} querying ${metric}`).toBeDefined();
    };
    panel(/connections/i, 'chorus_ws_connections');
    panel(/sessions/i, 'chorus_sessions_processing');
    panel(/chat rate/i, 'chorus_chat_jobs_enqueued_total');
    panel(
      /first-delta/i,
      'histogram_quantile(0.95, sum by (le) (rate(chorus_reply_first_delta_seconds_bucket',
    );
    panel(/queue/i, 'chorus_queue_jobs');
    panel(/model latency/i, 'chorus_llm_request_duration_seconds_bucket');
    panel(/errors/i, 'chorus_ws_errors_total');
    panel(/errors/i, 'chorus_jobs_total{outcome!="completed"}');
    panel(/model errors/i, 'chorus_llm_request_duration_seconds_count{outcome!="ok"}');
  });

  it.skipIf(promtool.skip)(
    'every query is valid PromQL (promtool, as recording rules)',
    async () => {
      const rules = {
        groups: [
          {
            name: 'dashboard',
            rules: exprs.map(({ expr }, i) => ({
              record: `dashboard:query_${i}`,
              expr: expr.replaceAll('$__rate_interval', '1m'),
            })),
          },
        ],
      };
      const dir = mkdtempSync(join(tmpdir(), 'chorus-dashboard-'));
      try {
        writeFileSync(join(dir, 'dashboard.rules.yml'), stringify(rules));
        const result = await run(promtool.require(), ['check', 'rules', 'dashboard.rules.yml'], {
          cwd: dir,
        });
        expect(result.code, result.stdout + result.stderr).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('is provisioned in Grafana with the data source its variable defaults to', () => {
    const datasources = parse(
      readFileSync(`${ROOT}deploy/grafana/provisioning/datasources/prometheus.yml`, 'utf8'),
    ) as { datasources: { uid: string; type: string; url: string }[] };
    const variable = dashboard.templating.list.find((v) => v.name === 'datasource');
    expect(datasources.datasources).toContainEqual(
      expect.objectContaining({ uid: variable?.current?.value, type: 'prometheus' }),
    );
    const providers = parse(
      readFileSync(`${ROOT}deploy/grafana/provisioning/dashboards/chorus.yml`, 'utf8'),
    ) as { providers: { type: string; options: { path: string } }[] };
    const compose = parse(readFileSync(`${ROOT}docker-compose.yml`, 'utf8')) as {
      services: Record<string, { volumes?: string[] }>;
    };
    const volumes = compose.services.grafana?.volumes ?? [];
    expect(volumes).toContain('./deploy/grafana/provisioning:/etc/grafana/provisioning:ro');
    const dashboardsMount = volumes.find((v) => v.startsWith('./deploy/grafana/dashboards:'));
    expect(dashboardsMount?.split(':')[1]).toBe(providers.providers[0]?.options.path);
  });
});
