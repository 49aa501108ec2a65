import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GATEWAY_MAIN,
  ServiceProcess,
  TEST_SECRET,
  WORKER_MAIN,
} from './support/service-process.js';

/**
 * A Redis older than 7.0 has no sharded pub/sub: the services say so and exit instead of failing
 * every event later. No Redis 6 is installed here, so a server that speaks just enough RESP plays
 * one: it answers INFO with `redis_version:6.2.14` and everything else with +OK.
 */
describe('a Redis older than 7.0', () => {
  let server: Server;
  let url: string;

  beforeAll(async () => {
    server = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.on('data', (data) => {
        // One reply per command of a pipelined batch: each RESP command starts with '*'.
        for (const command of data.toString().split('*').slice(1)) {
          if (/\r\nINFO\r\n/i.test(`\r\n${command}`)) {
            const info = '# Server\r\nredis_version:6.2.14\r\nloading:0\r\n';
            socket.write(`$${info.length}\r\n${info}\r\n`);
          } else {
            socket.write('+OK\r\n');
          }
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    url = `redis://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it.each([
    ['gateway', GATEWAY_MAIN, { SESSION_SECRET: TEST_SECRET, ALLOWED_ORIGINS: '*', PORT: '0' }],
    ['worker', WORKER_MAIN, { METRICS_PORT: '0' }],
  ])(
    'the %s exits 1, naming the version it found and the one it needs',
    async (name, main, env) => {
      const service = ServiceProcess.spawn(name, main, { REDIS_URL: url, ...env });
      const exit = await Promise.race([
        service.exited,
        new Promise((resolve) => setTimeout(() => resolve('still running'), 15_000)),
      ]);
      await service.kill('SIGKILL');
      expect(exit).toEqual({ code: 1, signal: null });
      const fatal = service.logs.find((line) => line.level === 'fatal');
      expect(fatal?.msg).toBe(
        'Redis 6.2.14 is too old: Chorus needs Redis 7.0 or newer (sharded pub/sub)',
      );
    },
  );
});
