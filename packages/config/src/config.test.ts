import { describe, expect, it } from 'vitest';
import { ConfigError, loadGatewayConfig, loadWorkerConfig } from './index.js';

const gatewayEnv = { SESSION_SECRET: 'x'.repeat(32), ALLOWED_ORIGINS: '*' };

describe('gateway config', () => {
  it('applies defaults', () => {
    const config = loadGatewayConfig(gatewayEnv);
    expect(config.PORT).toBe(8080);
    expect(config.MAX_SOCKETS_PER_SESSION).toBe(8);
    expect(config.ALLOWED_ORIGINS).toEqual(['*']);
    expect(config.GATEWAY_ID).toMatch(/^gw-/);
  });

  it('names every bad variable and never echoes a secret', () => {
    let error: unknown;
    try {
      loadGatewayConfig({ PORT: 'eighty', SESSION_SECRET: 'short', ALLOWED_ORIGINS: 'ftp://x' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toContain("PORT: must be a number (got 'eighty')");
    expect(message).toContain(
      "SESSION_SECRET: must be at least 32 characters long (got '<redacted>')",
    );
    expect(message).toContain('ALLOWED_ORIGINS: must be');
    expect(message).not.toContain('short');
  });

  it('says what a missing required variable is for', () => {
    expect(() => loadGatewayConfig({ ALLOWED_ORIGINS: '*' })).toThrow(
      /SESSION_SECRET: is required/,
    );
  });

  it('wants the frame cap above the 1009 limit', () => {
    expect(() =>
      loadGatewayConfig({ ...gatewayEnv, MAX_MESSAGE_BYTES: '65536', MAX_FRAME_BYTES: '786432' }),
    ).toThrow(/MAX_FRAME_BYTES: must be more than 12 x MAX_MESSAGE_BYTES \+ 2048 \(788480\)/);
    expect(
      loadGatewayConfig({ ...gatewayEnv, MAX_MESSAGE_BYTES: '65536', MAX_FRAME_BYTES: '788481' })
        .MAX_FRAME_BYTES,
    ).toBe(788481);
  });

  it('parses an origin list', () => {
    const config = loadGatewayConfig({
      ...gatewayEnv,
      ALLOWED_ORIGINS: 'https://a.example, http://localhost:8080',
    });
    expect(config.ALLOWED_ORIGINS).toEqual(['https://a.example', 'http://localhost:8080']);
  });
});

describe('worker config', () => {
  it('runs offline without a key and validates numbers', () => {
    const config = loadWorkerConfig({});
    expect(config.OPENAI_API_KEY).toBeUndefined();
    expect(config.WORKER_CONCURRENCY).toBe(32);
    expect(() => loadWorkerConfig({ WORKER_CONCURRENCY: '0' })).toThrow(
      /WORKER_CONCURRENCY: must be at least 1/,
    );
    expect(() => loadWorkerConfig({ OPENAI_BASE_URL: 'not a url' })).toThrow(/OPENAI_BASE_URL/);
  });

  it('wants sessions to outlive two answers', () => {
    expect(() =>
      loadWorkerConfig({ SESSION_TTL_SECONDS: '300', JOB_TIMEOUT_MS: '180000' }),
    ).toThrow(/SESSION_TTL_SECONDS: must be at least twice JOB_TIMEOUT_MS \(180000 ms\)/);
    expect(loadWorkerConfig({ SESSION_TTL_SECONDS: '360' }).SESSION_TTL_SECONDS).toBe(360);
  });
});

describe('REDIS_URL', () => {
  const target = (REDIS_URL: string) => loadWorkerConfig({ REDIS_URL }).REDIS_URL;
  const problem = (REDIS_URL: string) => {
    try {
      loadWorkerConfig({ REDIS_URL });
    } catch (error) {
      return (error as Error).message;
    }
    throw new Error(`${REDIS_URL} was accepted`);
  };

  it('takes one server as the URL ioredis reads', () => {
    expect(loadWorkerConfig({}).REDIS_URL).toEqual({
      kind: 'single',
      url: 'redis://127.0.0.1:6379',
    });
    expect(target('rediss://:pw@cache.example:6380/2')).toEqual({
      kind: 'single',
      url: 'rediss://:pw@cache.example:6380/2',
    });
  });

  it('takes a Redis Cluster as a list of seed nodes', () => {
    expect(target('redis+cluster://10.0.0.1:7000, 10.0.0.2 ,[::1]:7002')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 6379 },
        { host: '::1', port: 7002 },
      ],
      tls: false,
    });
    expect(target('rediss+cluster://app:p%40ss@a:7000')).toMatchObject({
      tls: true,
      username: 'app',
      password: 'p@ss',
    });
  });

  it('takes Sentinels, the master name and a db', () => {
    expect(target('redis+sentinel://:pw@s1,s2:26380/mymaster/3?sentinelPassword=sp')).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26380 },
      ],
      masterName: 'mymaster',
      db: 3,
      sentinelPassword: 'sp',
      tls: false,
      password: 'pw',
    });
  });

  it('says what is wrong, without the password', () => {
    expect(problem('http://localhost:6379')).toContain('REDIS_URL: must be one of redis://');
    expect(problem('redis+sentinel://s1:26379')).toContain('needs the master name as its path');
    expect(problem('redis+cluster://a:7000/0')).toContain('takes no path or query');
    expect(problem('redis+cluster://a:99999')).toContain("'a:99999' is not a host or host:port");
    expect(problem('redis+sentinel://s1/m?db=2')).toContain('unknown query parameter db');
    const withSecret = problem('redis+sentinel://u:hunter2@s1:26379/m/x?sentinelPassword=s3cr3t');
    expect(withSecret).toContain('u:***@');
    expect(withSecret).not.toMatch(/hunter2|s3cr3t/);
  });
});
