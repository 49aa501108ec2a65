import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { tmpdir } from 'node:os';
import { FakeOpenAI } from './fake-openai.js';
import { freePort } from '../../scripts/local-net.mjs';
import type { ServiceProcess } from './service-process.js';
import { TestBrowser } from './test-browser.js';
import { TestCluster } from './test-cluster.js';

/**
 * A binary the ops tests need (promtool, prometheus, docker-compose). Missing, its tests are
 * skipped on a developer's machine with the reason printed, and fail under CI (`CI` set), where
 * .ci/run installs them.
 */
export interface Tool {
  name: string;
  path: string | undefined;
  /** For it.skipIf: missing and not under CI. */
  skip: boolean;
  /** The path; throws (failing the test) when missing. */
  require(): string;
}

export function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

export function tool(name: string, install: string): Tool {
  const path = which(name);
  const skip = path === undefined && !process.env.CI;
  if (skip) {
    console.warn(`[ops tests] skipping the tests that need ${name}: not on PATH (${install})`);
  }
  return {
    name,
    path,
    skip,
    require: () => {
      if (path === undefined) throw new Error(`${name} is not on PATH: ${install}`);
      return path;
    },
  };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end, with optional stdin; never rejects on a non-zero exit. */
export function run(
  command: string,
  args: string[],
  options: { input?: string; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  /** Metric family name → type, from the # TYPE lines. */
  types: Map<string, string>;
  samples: Sample[];
}

/** Parses the Prometheus text format (what prom-client writes). */
export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      if (name && type) types.set(name, type);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] as string] = (pair[2] as string).replace(/\\(.)/g, (_m, c: string) =>
        c === 'n' ? '\n' : c,
      );
    }
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return { types, samples };
}

/** The family a sample belongs to (histogram and summary series carry suffixes). */
export function familyOf(sampleName: string, types: Map<string, string>): string {
  if (types.has(sampleName)) return sampleName;
  const base = sampleName.replace(/_(bucket|sum|count|created)$/, '');
  return types.has(base) ? base : sampleName;
}

export async function scrape(url: string): Promise<string> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return response.text();
}

interface QueryResult {
  metric: Record<string, string>;
  value: [number, string];
}

/** A Prometheus server of the test's own: temp storage, a free port on 127.0.0.1. */
export class PrometheusServer {
  private constructor(
    readonly url: string,
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly output: string[],
  ) {}

  /** `files` are written next to prometheus.yml (e.g. the rule files it names). */
  static async start(
    binary: string,
    config: string,
    files: Record<string, string> = {},
  ): Promise<PrometheusServer> {
    const dir = mkdtempSync(join(tmpdir(), 'chorus-prometheus-'));
    writeFileSync(join(dir, 'prometheus.yml'), config);
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    const port = await freePort();
    const child = spawn(
      binary,
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const output: string[] = [];
    child.stdout?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    const server = new PrometheusServer(`http://127.0.0.1:${port}`, child, dir, output);
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) {
        server.cleanUp();
        throw new Error(`prometheus exited (${child.exitCode}): ${output.join('')}`);
      }
      const ready = await fetch(`${server.url}/-/ready`).then(
        (r) => r.ok,
        () => false,
      );
      if (ready) return server;
      if (Date.now() > deadline) {
        await server.stop();
        throw new Error(`prometheus not ready in 15 s: ${output.join('')}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** GET /api/v1/<path>; throws unless the API answers `success`. */
  async api<T>(path: string, params: Record<string, string> = {}): Promise<T> {
    const query = new URLSearchParams(params).toString();
    const response = await fetch(`${this.url}/api/v1/${path}${query ? `?${query}` : ''}`);
    const body = (await response.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`${path} ${query}: ${body.error ?? 'failed'}`);
    return body.data;
  }

  /** An instant query's vector. */
  async query(promql: string): Promise<QueryResult[]> {
    const data = await this.api<{ resultType: string; result: QueryResult[] }>('query', {
      query: promql,
    });
    return data.result;
  }

  /** Polls `promql` until `done` holds for its result. */
  async waitFor(
    promql: string,
    done: (result: QueryResult[]) => boolean,
    timeoutMs = 20_000,
  ): Promise<QueryResult[]> {
    const deadline = Date.now() + timeoutMs;
    let last: QueryResult[] = [];
    while (Date.now() < deadline) {
      last = await this.query(promql);
      if (done(last)) return last;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(
      `${promql}: condition not met in ${timeoutMs} ms; last: ${JSON.stringify(last)}`,
    );
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGKILL');
      await exited;
    }
    this.cleanUp();
  }

  private cleanUp(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Metric names used in a PromQL expression: identifiers that are neither functions, keywords,
 * label names (inside braces or by/without/on/ignoring lists) nor string or duration literals.
 */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?[A-Za-z_][A-Za-z0-9_]*\}?/g, ' ');
  const keywords = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);
  const names = new Set<string>();
  for (const match of stripped.matchAll(/(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const name = match[1] as string;
    if (match[2] !== undefined || keywords.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names];
}

/**
 * Two gateways and a worker answering through the real `openai` SDK (against our fake model),
 * after one chat, a resume on the other gateway and one invalid frame: every chorus_* family
 * then has samples. Browser `a` stays connected to gateway 0; gateway 1 has no socket left.
 */
export class ChattedCluster {
  private constructor(
    readonly cluster: TestCluster,
    readonly fake: FakeOpenAI,
    readonly browser: TestBrowser,
    readonly sessionId: string,
  ) {}

  static async start(): Promise<ChattedCluster> {
    const fake = await FakeOpenAI.start();
    let cluster: TestCluster | undefined;
    try {
      cluster = await TestCluster.start({
        gateways: 2,
        workers: 1,
        workerEnv: {
          OPENAI_API_KEY: 'test-key',
          OPENAI_BASE_URL: fake.baseURL,
          OPENAI_MODEL: 'fake-model',
        },
      });
      const { browser, welcome } = await TestBrowser.open(cluster.gateway(0).wsUrl);
      browser.chat('ops-1', 'What is a hash table?');
      await browser.reply('ops-1');
      browser.send('this is not json');
      await browser.next('error');
      const firstEvent = browser.events()[0]?.eventId;
      const other = await TestBrowser.open(cluster.gateway(1).wsUrl, {
        session: String(welcome.sessionId),
        token: String(welcome.token),
        ...(firstEvent ? { lastEventId: firstEvent } : {}),
      });
      other.browser.close();
      await other.browser.closed;
      const chatted = new ChattedCluster(cluster, fake, browser, String(welcome.sessionId));
      await chatted.settled();
      return chatted;
    } catch (error) {
      await cluster?.stop();
      await fake.stop();
      throw error;
    }
  }

  /**
   * A client sees reply.end before the worker counts the job, and its close before the gateway
   * counts it: waits until the metrics have caught up.
   */
  private async settled(): Promise<void> {
    const sum = (text: string, name: string, labels: Record<string, string> = {}) =>
      parseExposition(text)
        .samples.filter(
          (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
        )
        .reduce((total, s) => total + s.value, 0);
    const [, gateway1, worker] = this.targets;
    if (!gateway1 || !worker) throw new Error('cluster incomplete');
    const deadline = Date.now() + 10_000;
    for (;;) {
      const [gatewayText, workerText] = await Promise.all([
        scrape(gateway1.url),
        scrape(worker.url),
      ]);
      if (
        sum(gatewayText, 'chorus_ws_connections') === 0 &&
        sum(workerText, 'chorus_jobs_total', { outcome: 'completed' }) >= 1
      ) {
        return;
      }
      if (Date.now() > deadline) throw new Error('metrics did not settle in 10 s');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** name → /metrics URL, for the two gateways and the worker. */
  get targets(): { name: string; job: 'gateway' | 'worker'; url: string; address: string }[] {
    const gateways = this.cluster.gateways.map((g, i) => ({
      name: `gateway ${i}`,
      job: 'gateway' as const,
      url: `${g.url}/metrics`,
      address: `127.0.0.1:${g.port}`,
    }));
    const workers = this.cluster.workers.map((w, i) => ({
      name: `worker ${i}`,
      job: 'worker' as const,
      url: `http://127.0.0.1:${w.metricsPort}/metrics`,
      address: `127.0.0.1:${w.metricsPort}`,
    }));
    return [...gateways, ...workers];
  }

  /** The `instance` label a process gives its own series: its GATEWAY_ID or WORKER_ID. */
  static instanceOf(process: ServiceProcess): string {
    const line = process.logs.find((l) => typeof l.instance === 'string');
    if (!line) throw new Error(`${process.name} logged no instance`);
    return String(line.instance);
  }

  async stop(): Promise<void> {
    this.browser.terminate();
    await this.cluster.stop();
    await this.fake.stop();
  }
}
