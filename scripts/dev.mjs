#!/usr/bin/env node
// The local cluster: Redis, two gateways (8080, 8081), one worker. Run through `pnpm dev`,
// which builds first. Ctrl-C stops everything.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { freePort, redisAnswers } from './local-net.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const gatewayPorts = (process.env.DEV_GATEWAY_PORTS ?? '8080,8081').split(',').map(Number);
const children = [];
let stopping = false;

function log(name, text) {
  const colors = { redis: 31, 'gateway-1': 36, 'gateway-2': 35, worker: 33, dev: 32 };
  process.stdout.write(`\x1b[${colors[name] ?? 37}m${name.padEnd(9)}\x1b[0m ${text}\n`);
}

/** Shows a JSON log line as `level msg key=value…`. */
function pretty(line) {
  try {
    const { level, msg, ...rest } = JSON.parse(line);
    for (const shown of ['time', 'service', 'instance']) delete rest[shown];
    const fields = Object.entries(rest)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    return `${level.padEnd(5)} ${msg}${fields ? `  ${fields}` : ''}`;
  } catch {
    return line;
  }
}

function start(name, command, args, env) {
  const child = spawn(command, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream.on('data', (chunk) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop();
      for (const line of lines) if (line.trim()) log(name, pretty(line));
    });
  }
  child.on('exit', (code, signal) => {
    if (stopping) return;
    log('dev', `${name} exited (${signal ?? code}); stopping the cluster`);
    void stop(1);
  });
  children.push(child);
  return child;
}

async function redisUrl() {
  const candidate = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  // A bare PING can probe only a plain redis:// URL without credentials; any other form
  // (TLS, password, +cluster, +sentinel) is used as given, and the services report on it.
  if (!/^redis:\/\/[^@]*$/.test(candidate)) {
    log('dev', 'using REDIS_URL as given');
    return candidate;
  }
  if (await redisAnswers(candidate)) {
    log('dev', `using Redis at ${candidate}`);
    return candidate;
  }
  if (spawnSync('redis-server', ['--version']).error) {
    log('dev', `no Redis at ${candidate} and no redis-server on PATH.`);
    log(
      'dev',
      'Install Redis (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)',
    );
    log('dev', 'or point REDIS_URL at a running one, then run this again.');
    process.exit(1);
  }
  const port = await freePort();
  start('redis', 'redis-server', [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
  ]);
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 100 && !(await redisAnswers(url)); i++)
    await new Promise((r) => setTimeout(r, 100));
  log('dev', `started redis-server on port ${port}`);
  return url;
}

async function stop(code) {
  if (stopping) return;
  stopping = true;
  log('dev', 'stopping…');
  await Promise.all(
    children.map(
      (child) =>
        new Promise((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', resolve);
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
        }),
    ),
  );
  process.exit(code);
}

process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

const REDIS_URL = await redisUrl();
const origins = gatewayPorts
  .flatMap((p) => [`http://localhost:${p}`, `http://127.0.0.1:${p}`])
  .join(',');
const shared = {
  REDIS_URL,
  SESSION_SECRET: process.env.SESSION_SECRET ?? randomBytes(32).toString('base64url'),
  ALLOWED_ORIGINS: process.env.ALLOWED_ORIGINS ?? origins,
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
};
start('worker', process.execPath, [`${root}services/worker/dist/main.js`], {
  ...shared,
  WORKER_ID: 'worker-1',
  METRICS_PORT: process.env.METRICS_PORT ?? '9100',
});
gatewayPorts.forEach((port, i) =>
  start(`gateway-${i + 1}`, process.execPath, [`${root}services/gateway/dist/main.js`], {
    ...shared,
    PORT: String(port),
    GATEWAY_ID: `gateway-${i + 1}`,
  }),
);
log(
  'dev',
  `chat at ${gatewayPorts.map((p) => `http://localhost:${p}/`).join(' and ')}; Ctrl-C stops`,
);
