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
});
