// Loopback helpers shared by the local cluster (scripts/dev.mjs), the benchmarks (bench/) and
// the tests (test/support/); scripts/local-net.d.mts types them for the tests.
import { execFile } from 'node:child_process';
import { createServer, Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A TCP port free on 127.0.0.1 right now: any (0), or `port` if free (else rejects). */
export function freePort(port = 0) {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** True when a Redis at `url` answers PING within 500 ms. */
export function redisAnswers(url) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(Number(port || 6379), hostname, () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(String(data).startsWith('+PONG')));
  });
}

/**
 * A port for a Redis Cluster node: free, and so is its cluster bus port (port + 10000), which
 * redis-server needs too (it exits at start when that one is taken). Another process may take
 * either between this check and the start.
 */
export async function freeClusterPort() {
  for (;;) {
    const port = await freePort();
    const busFree = port + 10_000 <= 65_535 && (await freePort(port + 10_000).catch(() => 0)) > 0;
    if (busFree) return port;
  }
}

/** redis-server arguments of a cluster node on `port`, its state kept in `dir`. */
export const clusterNodeArgs = (dir, port) => [
  '--cluster-enabled',
  'yes',
  '--cluster-node-timeout',
  '2000',
  '--cluster-config-file',
  join(dir, `nodes-${port}.conf`),
  '--dir',
  dir,
];

/**
 * Joins running cluster nodes of 127.0.0.1 into one Redis Cluster of masters (`redis-cli
 * --cluster create`), and resolves once every node says the cluster is whole: a client may
 * rely on its slot map from then on. Rejects after `timeoutMs` in all.
 */
export async function joinRedisCluster(ports, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  await run(
    'redis-cli',
    [
      '--cluster',
      'create',
      ...ports.map((port) => `127.0.0.1:${port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ],
    { timeout: timeoutMs },
  );
  for (const port of ports) {
    const info = () =>
      run('redis-cli', ['-p', String(port), 'cluster', 'info'], { timeout: 2_000 });
    while (!(await info()).stdout.includes('cluster_state:ok')) {
      if (Date.now() > deadline) throw new Error(`cluster node ${port} never reached state ok`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
