// Shared helpers of the benchmark: histograms, /proc sampling, and the processes a scenario runs
// (redis-server, gateways, the worker, the bare uWS echo server), all on 127.0.0.1 and all
// stopped at the end, on Ctrl-C and on errors.
/* global performance */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request, Agent } from 'node:http';
import {
  clusterNodeArgs,
  freeClusterPort,
  freePort,
  joinRedisCluster,
  redisAnswers,
} from '../scripts/local-net.mjs';
import { fileURLToPath } from 'node:url';
import hdr from 'hdr-histogram-js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const GATEWAY_MAIN = `${ROOT}services/gateway/dist/main.js`;
export const WORKER_MAIN = `${ROOT}services/worker/dist/main.js`;
const SECRET = 'bench-secret-that-is-at-least-32-characters-long';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const log = (text) => process.stderr.write(`[bench] ${text}\n`);
export const round = (value, digits = 3) =>
  Number.isFinite(value) ? Number(value.toFixed(digits)) : null;

// ---------------------------------------------------------------------------------------------
// Histograms: values in microseconds, summaries in milliseconds.

/** @returns {import('hdr-histogram-js').Histogram} */
export function newHistogram() {
  return hdr.build({
    bitBucketSize: 64,
    autoResize: true,
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

/** Records a latency given in milliseconds (fractional) as whole microseconds. */
export function recordMs(histogram, ms) {
  histogram.recordValue(Math.max(0, Math.round(ms * 1000)));
}

export const encodeHistogram = (histogram) => hdr.encodeIntoCompressedBase64(histogram);

/** Merges encoded histograms (from client processes) into a new one. */
export function mergeHistograms(encoded) {
  const merged = newHistogram();
  for (const text of encoded) {
    if (!text) continue;
    const part = hdr.decodeFromCompressedBase64(text, 64);
    merged.add(part);
  }
  return merged;
}

/** count, mean, p50, p90, p99, p99.9 and max in milliseconds. */
export function summarize(histogram) {
  const count = histogram.totalCount;
  if (count === 0)
    return { count: 0, mean: null, p50: null, p90: null, p99: null, p999: null, max: null };
  const at = (p) => round(histogram.getValueAtPercentile(p) / 1000);
  return {
    count,
    mean: round(histogram.mean / 1000),
    p50: at(50),
    p90: at(90),
    p99: at(99),
    p999: at(99.9),
    max: round(histogram.maxValue / 1000),
  };
}

// ---------------------------------------------------------------------------------------------
// /proc sampling.

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;

/** CPU time (user + system) of a process in milliseconds, or null when it is gone. */
export function cpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
  } catch {
    return null;
  }
}

/** Resident set size of a process in bytes, or null when it is gone. */
export function rssBytes(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** CPU milliseconds of each named process, for a before/after difference. */
export function cpuSnapshot(processes) {
  const snapshot = {};
  for (const proc of processes) snapshot[proc.name] = cpuMs(proc.pid);
  return snapshot;
}

export function cpuDelta(before, after) {
  const delta = {};
  for (const [name, value] of Object.entries(after)) {
    const start = before[name];
    delta[name] = value !== null && start !== null && start !== undefined ? value - start : null;
  }
  return delta;
}

export function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  const ulimit = spawnSync('sh', ['-c', 'ulimit -n']).stdout?.toString().trim();
  const redis = spawnSync('redis-server', ['--version']).stdout?.toString().trim();
  return {
    cpus: (cpuinfo.match(/^processor\s*:/gm) ?? []).length,
    model: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    memoryGiB: round(Number(/MemTotal:\s+(\d+)/.exec(meminfo)?.[1] ?? 0) / 1024 / 1024, 1),
    node: process.version,
    redis: /v=(\S+)/.exec(redis ?? '')?.[1] ?? 'unknown',
    openFilesLimit: Number(ulimit) || ulimit,
    loadAverageAtStart: load,
  };
}

export function loadAverage() {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
}

// ---------------------------------------------------------------------------------------------
// Processes. Every child is registered so that an exit, an error or Ctrl-C stops it.

const children = new Set();

export function killAll() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
}

process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    log(`${signal}: stopping every process of the bench`);
    killAll();
    process.exit(130);
  });
}

export function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** A started child process: name, pid, a tail of its output, stop(). */
class Service {
  constructor(name, child) {
    this.name = name;
    this.child = child;
    this.pid = child.pid;
    this.output = [];
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    for (const stream of [child.stdout, child.stderr]) {
      stream?.on('data', (chunk) => {
        this.output.push(String(chunk));
        if (this.output.length > 40) this.output.shift();
      });
    }
  }

  get alive() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  tail() {
    return this.output.join('').split('\n').slice(-15).join('\n');
  }

  /** SIGTERM (graceful, writes --cpu-prof profiles) or SIGKILL; SIGKILL after graceMs. */
  async stop(signal = 'SIGKILL', graceMs = 10_000) {
    if (!this.alive) return this.exited;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }
}

/** Polls until `ready()` is true; fails when the process exits or after timeoutMs. */
async function waitReady(service, ready, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!service.alive) throw new Error(`${service.name} exited during start:\n${service.tail()}`);
    if (await ready()) return;
    await sleep(50);
  }
  throw new Error(`${service.name} not ready in ${timeoutMs} ms:\n${service.tail()}`);
}

export async function startRedis() {
  return spawnRedis('redis', await freePort());
}

/** redis-server on `port`, in memory only; ready when it answers PING. */
async function spawnRedis(name, port, args = []) {
  const child = track(
    spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  );
  const service = new Service(name, child);
  const failed = new Promise((_, reject) =>
    child.once('error', (error) =>
      reject(new Error(`cannot start redis-server: ${error.message}`)),
    ),
  );
  await Promise.race([waitReady(service, () => redisAnswers(`redis://127.0.0.1:${port}`)), failed]);
  service.port = port;
  service.url = `redis://127.0.0.1:${port}`;
  return service;
}

/**
 * A Redis Cluster of `masters` nodes (redis1…), in memory only, joined by `redis-cli --cluster
 * create`; `url` is the product's `redis+cluster://` form.
 */
export async function startRedisCluster(masters = 3) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-cluster-'));
  const nodes = [];
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.stop('SIGKILL')));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    while (nodes.length < masters) {
      const port = await freeClusterPort();
      nodes.push(await spawnRedis(`redis${nodes.length + 1}`, port, clusterNodeArgs(dir, port)));
    }
    await joinRedisCluster(nodes.map((node) => node.port));
    const addresses = nodes.map((node) => `127.0.0.1:${node.port}`);
    return { nodes, url: `redis+cluster://${addresses.join(',')}`, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

const nodeArgs = (profileDir) => (profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []);

function httpOk(port, path) {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once('error', () => resolve(false));
    req.once('timeout', () => req.destroy());
    req.end();
  });
}

/**
 * A gateway from services/gateway/dist/main.js on a free port (LOG_LEVEL=warn, so its port is
 * chosen here rather than read from the 'gateway listening' info line); ready when /livez is 200.
 */
export async function startGateway({ name, redisUrl, prefix, env = {}, profileDir }) {
  const port = await freePort();
  const child = track(
    spawn(process.execPath, [...nodeArgs(profileDir), GATEWAY_MAIN], {
      env: {
        PATH: process.env.PATH ?? '',
        REDIS_URL: redisUrl,
        KEY_PREFIX: prefix,
        PORT: String(port),
        HOST: '127.0.0.1',
        GATEWAY_ID: name,
        SESSION_SECRET: SECRET,
        ALLOWED_ORIGINS: '*',
        LOG_LEVEL: 'warn',
        // Every client of the bench comes from 127.0.0.1: the per-address connection limits stay
        // on (their Redis bookkeeping is part of a connect's cost) but far above the bench's load,
        // and the per-session chat limit (which would refuse open-loop messages) is off.
        CONNECTIONS_PER_IP: '1000000',
        CONNECT_BURST_PER_IP: '1000000',
        CONNECT_RATE_PER_IP_PER_MINUTE: '6000000',
        CHAT_BURST: '0',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const service = new Service(name, child);
  await waitReady(service, () => httpOk(port, '/livez'));
  service.port = port;
  service.url = `http://127.0.0.1:${port}`;
  service.wsUrl = `ws://127.0.0.1:${port}/ws`;
  return service;
}

/** The worker with the echo model (a fixed-cost stand-in); ready when its /livez is 200. */
export async function startWorker({ name, redisUrl, prefix, env = {}, profileDir }) {
  const port = await freePort();
  const child = track(
    spawn(process.execPath, [...nodeArgs(profileDir), WORKER_MAIN], {
      env: {
        PATH: process.env.PATH ?? '',
        REDIS_URL: redisUrl,
        KEY_PREFIX: prefix,
        WORKER_ID: name,
        METRICS_PORT: String(port),
        MODEL_PROVIDER: 'echo',
        ECHO_DELTAS: '10',
        LOG_LEVEL: 'warn',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const service = new Service(name, child);
  await waitReady(service, () => httpOk(port, '/livez'));
  service.port = port;
  service.url = `http://127.0.0.1:${port}`;
  return service;
}

/** The bare uWS echo server of the floor (bench/uws-echo-server.mjs); resolves with its port. */
export async function startUwsEcho() {
  const child = track(
    spawn(process.execPath, [`${ROOT}bench/uws-echo-server.mjs`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const service = new Service('uws-echo', child);
  const port = await new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (chunk) => {
      text += String(chunk);
      const match = /listening (\d+)/.exec(text);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', () => reject(new Error(`uws echo server exited:\n${service.tail()}`)));
  });
  service.port = port;
  service.wsUrl = `ws://127.0.0.1:${port}/ws`;
  return service;
}

/**
 * Redis (one server, or with `redisCluster` a 3-node Redis Cluster), gateways and a worker under
 * a key prefix of their own; `stop()` ends them all (SIGTERM when profiling, so that --cpu-prof
 * writes its files). `redisNodes` are the Redis processes, `redisUrl` the services' REDIS_URL.
 */
export async function startCluster({
  gateways = 2,
  worker = true,
  gatewayEnv,
  workerEnv,
  profileDir,
  redisCluster = false,
}) {
  const redis = redisCluster ? await startRedisCluster() : await startRedis();
  const redisNodes = redis.nodes ?? [redis];
  const prefix = `bench${randomBytes(3).toString('hex')}`;
  const cluster = { redisNodes, redisUrl: redis.url, prefix, gateways: [], worker: null };
  cluster.services = () => [
    ...redisNodes,
    ...cluster.gateways,
    ...(cluster.worker ? [cluster.worker] : []),
  ];
  cluster.stop = async () => {
    const signal = profileDir ? 'SIGTERM' : 'SIGKILL';
    await Promise.all(
      [...cluster.gateways, cluster.worker].filter(Boolean).map((s) => s.stop(signal, 30_000)),
    );
    await redis.stop('SIGKILL');
  };
  try {
    const started = await Promise.all([
      ...Array.from({ length: gateways }, (_, i) =>
        startGateway({
          name: `gw${i + 1}`,
          redisUrl: redis.url,
          prefix,
          env: gatewayEnv,
          profileDir,
        }),
      ),
      worker
        ? startWorker({ name: 'wk1', redisUrl: redis.url, prefix, env: workerEnv, profileDir })
        : null,
    ]);
    cluster.worker = started.pop() ?? null;
    cluster.gateways = started;
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

// ---------------------------------------------------------------------------------------------
// HTTP probes (S5): open loop, keep-alive, latency from the intended send time.

const agent = new Agent({ keepAlive: true, maxSockets: 32 });

function timedGet(port, path) {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent, timeout: 10_000 }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', () => resolve(0));
    req.once('timeout', () => req.destroy());
    req.end();
  });
}

/**
 * Sends GET `path` at `rate` per second from `startAt` (epoch ms) for `durationMs`, never waiting
 * for an answer before the next; resolves once every answer came (or 10 s after the last send).
 */
export async function probeHttp({ port, path, rate, startAt, durationMs }) {
  const histogram = newHistogram();
  const statuses = {};
  const total = Math.max(1, Math.floor((rate * durationMs) / 1000));
  const t0 = performance.now() + (startAt - Date.now());
  const inflight = [];
  let next = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (next < total && t0 + (next * 1000) / rate <= now) {
        const intended = t0 + (next * 1000) / rate;
        next++;
        inflight.push(
          timedGet(port, path).then((status) => {
            recordMs(histogram, performance.now() - intended);
            statuses[status] = (statuses[status] ?? 0) + 1;
          }),
        );
      }
      if (next >= total) resolve();
      else setTimeout(tick, 1);
    };
    setTimeout(tick, Math.max(0, t0 - performance.now()));
  });
  await Promise.race([Promise.all(inflight), sleep(10_000)]);
  return { path, rate, ...summarize(histogram), statuses };
}

/** GET a URL's text (for /metrics scraping); '' on failure. */
export function getText(port, path) {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve(body));
    });
    req.once('error', () => resolve(''));
    req.once('timeout', () => req.destroy());
    req.end();
  });
}

/** The value of an unlabelled Prometheus sample, or null. */
export function metricValue(text, name) {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+(\\S+)`, 'm').exec(text);
  return match ? Number(match[1]) : null;
}
