import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import {
  ChattedCluster,
  familyOf,
  parseExposition,
  PrometheusServer,
  run,
  scrape,
  tool,
  type Exposition,
} from '../support/prometheus.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const promtool = tool('promtool', "apt-get install prometheus (Debian's package has promtool)");
const prometheus = tool('prometheus', "apt-get install prometheus (Debian's package)");

/** The metrics the issue asks for, where they live, their type and their labels. */
const REQUIRED: { name: string; job: 'gateway' | 'worker'; type: string; labels: string[] }[] = [
  { name: 'chorus_ws_connections', job: 'gateway', type: 'gauge', labels: [] },
  { name: 'chorus_ws_connections_opened_total', job: 'gateway', type: 'counter', labels: [] },
  { name: 'chorus_ws_connections_closed_total', job: 'gateway', type: 'counter', labels: ['code'] },
  { name: 'chorus_ws_messages_received_total', job: 'gateway', type: 'counter', labels: ['type'] },
  { name: 'chorus_ws_messages_sent_total', job: 'gateway', type: 'counter', labels: [] },
  { name: 'chorus_ws_errors_total', job: 'gateway', type: 'counter', labels: ['reason'] },
  { name: 'chorus_ws_backpressure_events_total', job: 'gateway', type: 'counter', labels: [] },
  { name: 'chorus_sessions_processing', job: 'gateway', type: 'gauge', labels: [] },
  { name: 'chorus_chat_jobs_enqueued_total', job: 'gateway', type: 'counter', labels: [] },
  { name: 'chorus_resume_total', job: 'gateway', type: 'counter', labels: ['outcome'] },
  { name: 'chorus_reply_first_delta_seconds', job: 'gateway', type: 'histogram', labels: [] },
  { name: 'chorus_jobs_total', job: 'worker', type: 'counter', labels: ['outcome'] },
  { name: 'chorus_job_duration_seconds', job: 'worker', type: 'histogram', labels: ['outcome'] },
  { name: 'chorus_message_wait_seconds', job: 'worker', type: 'histogram', labels: [] },
  {
    name: 'chorus_llm_request_duration_seconds',
    job: 'worker',
    type: 'histogram',
    labels: ['agent', 'model', 'outcome'],
  },
  {
    name: 'chorus_llm_time_to_first_token_seconds',
    job: 'worker',
    type: 'histogram',
    labels: ['agent', 'model'],
  },
  {
    name: 'chorus_llm_tokens_total',
    job: 'worker',
    type: 'counter',
    labels: ['agent', 'model', 'direction'],
  },
  { name: 'chorus_queue_jobs', job: 'worker', type: 'gauge', labels: ['state'] },
];

/** A few of prom-client's default metrics, on every process. */
const DEFAULTS = [
  'process_cpu_seconds_total',
  'process_resident_memory_bytes',
  'process_start_time_seconds',
  'nodejs_eventloop_lag_seconds',
  'nodejs_heap_size_used_bytes',
  'nodejs_version_info',
];

/** What a session id looks like on the wire (22 base64url characters). */
const SESSION_ID = /^[A-Za-z0-9_-]{22}$/;

describe('deploy/prometheus.yml and deploy/alerts.yml', () => {
  it.skipIf(promtool.skip)('promtool check rules and check config pass', async () => {
    const rules = await run(promtool.require(), ['check', 'rules', 'deploy/alerts.yml'], {
      cwd: ROOT,
    });
    expect(rules.code, rules.stdout + rules.stderr).toBe(0);
    expect(rules.stdout).toMatch(/SUCCESS: \d+ rules found/);
    const config = await run(promtool.require(), ['check', 'config', 'deploy/prometheus.yml'], {
      cwd: ROOT,
    });
    expect(config.code, config.stdout + config.stderr).toBe(0);
    expect(config.stdout).toContain('SUCCESS: 1 rule files found');
  });

  it('has the alerts the issue asks for, each with a runbook entry in docs/operations.md', () => {
    const alerts = parse(readFileSync(`${ROOT}deploy/alerts.yml`, 'utf8')) as {
      groups: { rules: { alert: string; annotations: { runbook: string } }[] }[];
    };
    const rules = alerts.groups.flatMap((g) => g.rules);
    const names = rules.map((r) => r.alert);
    expect(names).toEqual(
      expect.arrayContaining([
        'ChorusNoWorkerAlive',
        'ChorusQueueBacklogGrowing',
        'ChorusReplyErrorRatioHigh',
        'ChorusRedisDown',
        'ChorusGatewayDrainingTooLong',
      ]),
    );
    const operations = readFileSync(`${ROOT}docs/operations.md`, 'utf8');
    for (const rule of rules) {
      expect(rule.annotations.runbook).toBe(`docs/operations.md#${rule.alert.toLowerCase()}`);
      expect(operations, `runbook heading for ${rule.alert}`).toMatch(
        new RegExp(`^#+ ${rule.alert}$`, 'm'),
      );
    }
  });

  // promtool's unit tests: each alert fires on the series it is about, and only then.
  it.skipIf(promtool.skip)('the alerts fire when they should (promtool test rules)', async () => {
    const gw = (extra = '') => `{job="gateway", instance="gw:8080"${extra}}`;
    const wk = (extra = '') => `{job="worker", instance="wk:9100"${extra}}`;
    // The expressions as deployed, without annotations (promtool would compare them too).
    const alerts = parse(readFileSync(`${ROOT}deploy/alerts.yml`, 'utf8')) as {
      groups: { rules: { annotations?: unknown }[] }[];
    };
    for (const rule of alerts.groups.flatMap((g) => g.rules)) delete rule.annotations;
    const tests = {
      rule_files: ['alerts.yml'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            { series: `up${wk()}`, values: '1x4 0x10' },
            { series: `up${gw()}`, values: '1x15' },
            { series: `redis_up{job="redis"}`, values: '1x4 0x10' },
            { series: `chorus_queue_jobs${wk(', state="wait"')}`, values: '0+5x30' },
            { series: `chorus_jobs_total${wk(', outcome="completed"')}`, values: '0+10x30' },
            { series: `chorus_jobs_total${wk(', outcome="llm_unavailable"')}`, values: '0+5x30' },
            { series: `chorus_gateway_draining${gw()}`, values: '0x4 1x10' },
            {
              series: `chorus_ws_messages_received_total${gw(', type="chat"')}`,
              values: '0+60x30',
            },
            {
              series: `chorus_ws_errors_total${gw(', reason="bad_token"')}`,
              values: '0+60x30',
            },
          ],
          alert_rule_test: [
            { eval_time: '3m', alertname: 'ChorusNoWorkerAlive', exp_alerts: [] },
            {
              eval_time: '7m',
              alertname: 'ChorusNoWorkerAlive',
              exp_alerts: [{ exp_labels: { severity: 'critical' } }],
            },
            {
              eval_time: '7m',
              alertname: 'ChorusRedisDown',
              exp_alerts: [{ exp_labels: { severity: 'critical' } }],
            },
            {
              eval_time: '7m',
              alertname: 'ChorusGatewayDrainingTooLong',
              exp_alerts: [{ exp_labels: { severity: 'warning', instance: 'gw:8080' } }],
            },
            {
              eval_time: '25m',
              alertname: 'ChorusQueueBacklogGrowing',
              exp_alerts: [{ exp_labels: { severity: 'warning', job: 'worker' } }],
            },
            {
              eval_time: '15m',
              alertname: 'ChorusReplyErrorRatioHigh',
              exp_alerts: [{ exp_labels: { severity: 'critical' } }],
            },
            // Clients' own mistakes (bad tokens) are not a gateway error ratio alert.
            { eval_time: '15m', alertname: 'ChorusGatewayErrorRatioHigh', exp_alerts: [] },
            { eval_time: '8m', alertname: 'ChorusTargetDown', exp_alerts: [] },
            {
              eval_time: '15m',
              alertname: 'ChorusTargetDown',
              exp_alerts: [
                { exp_labels: { severity: 'warning', job: 'worker', instance: 'wk:9100' } },
              ],
            },
          ],
        },
      ],
    };
    const dir = mkdtempSync(join(tmpdir(), 'chorus-alerts-'));
    try {
      writeFileSync(join(dir, 'alerts.yml'), stringify(alerts));
      writeFileSync(join(dir, 'alerts.test.yml'), stringify(tests));
      const result = await run(promtool.require(), ['test', 'rules', 'alerts.test.yml'], {
        cwd: dir,
      });
      expect(result.code, result.stdout + result.stderr).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('metrics of real gateways and a worker', () => {
  let chatted: ChattedCluster;
  const scrapes = new Map<
    string,
    { job: 'gateway' | 'worker'; text: string; parsed: Exposition }
  >();

  beforeAll(async () => {
    chatted = await ChattedCluster.start();
    // The worker's queue gauge and the gateways' processing gauge are sampled every 5 s; by now
    // every counter and histogram has what one chat, one resume and one bad frame leave.
    for (const target of chatted.targets) {
      const text = await scrape(target.url);
      scrapes.set(target.name, { job: target.job, text, parsed: parseExposition(text) });
    }
  });
  afterAll(async () => {
    await chatted?.stop();
  });

  const of = (name: string) => {
    const found = scrapes.get(name);
    if (!found) throw new Error(`no scrape of ${name}`);
    return found.parsed;
  };
  const value = (name: string, sample: string, labels: Record<string, string> = {}) =>
    of(name)
      .samples.filter(
        (s) => s.name === sample && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
      )
      .reduce((sum, s) => sum + s.value, 0);

  it.skipIf(promtool.skip)(
    'promtool check metrics finds nothing to say about chorus_*',
    async () => {
      for (const [name, { text }] of scrapes) {
        const result = await run(promtool.require(), ['check', 'metrics'], { input: text });
        const complaints = (result.stdout + result.stderr)
          .split('\n')
          .filter((line) => line.includes('chorus_'));
        expect(complaints, `${name}: ${result.stdout}${result.stderr}`).toEqual([]);
      }
    },
  );

  it('every metric of the issue is there, with its type, unit suffix and labels', () => {
    for (const metric of REQUIRED) {
      for (const [name, { job, parsed }] of scrapes) {
        if (job !== metric.job) continue;
        expect(parsed.types.get(metric.name), `${metric.name} on ${name}`).toBe(metric.type);
        const labelNames = new Set(
          parsed.samples
            .filter((s) => familyOf(s.name, parsed.types) === metric.name)
            .flatMap((s) => Object.keys(s.labels))
            .filter((l) => !['service', 'instance', 'le'].includes(l)),
        );
        if (labelNames.size > 0) {
          expect([...labelNames].sort(), metric.name).toEqual([...metric.labels].sort());
        }
      }
    }
    for (const [name, { parsed }] of scrapes) {
      for (const metric of DEFAULTS)
        expect(parsed.types.has(metric), `${metric} on ${name}`).toBe(true);
      for (const [family, type] of parsed.types) {
        if (!family.startsWith('chorus_')) continue;
        if (type === 'counter') expect(family).toMatch(/_total$/);
        if (type === 'histogram') expect(family).toMatch(/_(seconds|bytes)$/);
      }
    }
  });

  it('counts what happened: the chat, its reply, the resume, the bad frame', () => {
    expect(value('gateway 0', 'chorus_ws_connections')).toBe(1);
    expect(value('gateway 1', 'chorus_ws_connections')).toBe(0);
    expect(value('gateway 1', 'chorus_ws_connections_opened_total')).toBe(1);
    expect(value('gateway 1', 'chorus_ws_connections_closed_total', { code: '1000' })).toBe(1);
    expect(value('gateway 0', 'chorus_ws_messages_received_total', { type: 'chat' })).toBe(1);
    expect(value('gateway 0', 'chorus_ws_messages_received_total', { type: 'invalid' })).toBe(1);
    expect(value('gateway 0', 'chorus_ws_errors_total')).toBeGreaterThanOrEqual(1);
    expect(value('gateway 0', 'chorus_ws_messages_sent_total')).toBeGreaterThan(3);
    expect(value('gateway 0', 'chorus_chat_jobs_enqueued_total')).toBe(1);
    expect(value('gateway 0', 'chorus_reply_first_delta_seconds_count')).toBe(1);
    expect(value('gateway 1', 'chorus_resume_total', { outcome: 'replayed' })).toBe(1);
    expect(value('worker 0', 'chorus_jobs_total', { outcome: 'completed' })).toBe(1);
    expect(value('worker 0', 'chorus_job_duration_seconds_count')).toBe(1);
    expect(value('worker 0', 'chorus_message_wait_seconds_count')).toBe(1);
    // One chat on an idle cluster starts within a second of its ack (same clock here).
    expect(value('worker 0', 'chorus_message_wait_seconds_bucket', { le: '1' })).toBe(1);
    const model = { model: 'fake-model' };
    expect(
      value('worker 0', 'chorus_llm_request_duration_seconds_count', { ...model, outcome: 'ok' }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      value('worker 0', 'chorus_llm_time_to_first_token_seconds_count', model),
    ).toBeGreaterThanOrEqual(1);
    expect(
      value('worker 0', 'chorus_llm_tokens_total', { ...model, direction: 'input' }),
    ).toBeGreaterThanOrEqual(10);
    expect(of('worker 0').samples.some((s) => s.name === 'chorus_queue_jobs')).toBe(true);
  });

  it('every chorus_* metric the alerts use is exposed', () => {
    const alerts = readFileSync(`${ROOT}deploy/alerts.yml`, 'utf8');
    const used = new Set([...alerts.matchAll(/\b(chorus_[a-z0-9_]+)/g)].map((m) => m[1] as string));
    const exposed = new Set(
      [...scrapes.values()].flatMap(({ parsed }) => [
        ...parsed.types.keys(),
        ...parsed.samples.map((s) => s.name),
      ]),
    );
    expect([...used].filter((name) => !exposed.has(name))).toEqual([]);
  });

  it('no label carries a session id, and every label set is bounded', () => {
    for (const [name, { parsed }] of scrapes) {
      for (const sample of parsed.samples) {
        for (const [label, labelValue] of Object.entries(sample.labels)) {
          const where = `${name}: ${sample.name}{${label}="${labelValue}"}`;
          expect(label, where).not.toMatch(/session/i);
          expect(labelValue, where).not.toBe(chatted.sessionId);
          expect(labelValue, where).not.toContain(chatted.sessionId);
          if (label !== 'instance' && label !== 'version')
            expect(labelValue, where).not.toMatch(SESSION_ID);
        }
      }
    }
  });

  it.skipIf(prometheus.skip)(
    'a real Prometheus scrapes the three processes with deploy/prometheus.yml and reads the series back',
    async () => {
      const deployed = parse(readFileSync(`${ROOT}deploy/prometheus.yml`, 'utf8')) as {
        global: Record<string, unknown>;
        rule_files: string[];
        scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
      };
      // The deployed jobs and relabelling, with the test's targets and a 1 s pace.
      const targets = chatted.targets;
      const config = {
        ...deployed,
        global: {
          ...deployed.global,
          scrape_interval: '1s',
          scrape_timeout: '1s',
          evaluation_interval: '1s',
        },
        scrape_configs: deployed.scrape_configs
          .filter((job) => job.job_name === 'gateway' || job.job_name === 'worker')
          .map((job) => ({
            ...job,
            static_configs: [
              { targets: targets.filter((t) => t.job === job.job_name).map((t) => t.address) },
            ],
          })),
      };
      expect(config.scrape_configs).toHaveLength(2);
      const server = await PrometheusServer.start(prometheus.require(), stringify(config), {
        'alerts.yml': readFileSync(`${ROOT}deploy/alerts.yml`, 'utf8'),
      });
      try {
        const up = await server.waitFor(
          'up',
          (result) => result.length === 3 && result.every((r) => r.value[1] === '1'),
        );
        expect(up.map((r) => `${r.metric.job} ${r.metric.instance}`).sort()).toEqual(
          targets.map((t) => `${t.job} ${t.address}`).sort(),
        );

        const [gateway0, gateway1] = chatted.cluster.gateways;
        const [worker] = chatted.cluster.workers;
        if (!gateway0 || !gateway1 || !worker) throw new Error('cluster incomplete');
        const connections = await server.query('chorus_ws_connections');
        const byInstance = Object.fromEntries(
          connections.map((r) => [r.metric.instance, r.value[1]]),
        );
        expect(byInstance).toEqual({
          [`127.0.0.1:${gateway0.port}`]: '1',
          [`127.0.0.1:${gateway1.port}`]: '0',
        });
        for (const series of connections) {
          expect(series.metric).toMatchObject({ job: 'gateway', service: 'gateway' });
          // The process's own name moves from exported_instance to replica.
          expect(series.metric.exported_instance).toBeUndefined();
        }
        expect(connections.map((r) => r.metric.replica).sort()).toEqual(
          [ChattedCluster.instanceOf(gateway0), ChattedCluster.instanceOf(gateway1)].sort(),
        );

        const jobs = await server.query('chorus_jobs_total');
        expect(jobs).toHaveLength(1);
        expect(jobs[0]?.metric).toMatchObject({
          __name__: 'chorus_jobs_total',
          job: 'worker',
          service: 'worker',
          outcome: 'completed',
          instance: `127.0.0.1:${worker.metricsPort}`,
          replica: ChattedCluster.instanceOf(worker),
        });
        expect(jobs[0]?.value[1]).toBe('1');

        // Histograms work through PromQL as the dashboard uses them.
        const firstDelta = await server.query('sum(chorus_reply_first_delta_seconds_count)');
        expect(firstDelta[0]?.value[1]).toBe('1');

        // The alert rules load and evaluate against real series without errors.
        type Rule = { name: string; health: string; lastError?: string };
        const rules = async () =>
          (await server.api<{ groups: { rules: Rule[] }[] }>('rules')).groups.flatMap(
            (g) => g.rules,
          );
        const deadline = Date.now() + 10_000;
        let loaded = await rules();
        while (loaded.some((r) => r.health === 'unknown') && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 250));
          loaded = await rules();
        }
        expect(loaded.length).toBeGreaterThanOrEqual(5);
        for (const rule of loaded) {
          expect(rule.health, `${rule.name}: ${rule.lastError ?? ''}`).toBe('ok');
        }

        // With its worker gone, ChorusNoWorkerAlive goes pending at the next evaluation.
        await worker.kill('SIGKILL');
        await server.waitFor(
          'ALERTS{alertname="ChorusNoWorkerAlive"}',
          (result) => result.length === 1,
          10_000,
        );
      } finally {
        await server.stop();
      }
    },
  );
});
