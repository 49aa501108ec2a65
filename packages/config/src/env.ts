import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import { parseRedisUrl, redactRedisUrl } from './redis-url.js';

/** A configuration problem; the message names every offending variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';

  /** A rule between variables, broken: the message names the variable to change. */
  static about(variable: string, problem: string): ConfigError {
    return new ConfigError(`invalid configuration:\n  ${variable}: ${problem}`);
  }
}

export type Env = Record<string, string | undefined>;

/** Parses `env` with a schema whose keys are variable names; empty strings count as unset. */
export function parseEnv<T extends z.ZodRawShape>(shape: T, env: Env): z.infer<z.ZodObject<T>> {
  const cleaned: Env = {};
  for (const key of Object.keys(shape)) {
    const value = env[key]?.trim();
    if (value !== undefined && value !== '') cleaned[key] = value;
  }
  const result = z.object(shape).safeParse(cleaned);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const name = String(issue.path[0] ?? '?');
    const got = cleaned[name];
    return `  ${name}: ${issue.message}${got === undefined ? '' : ` (got '${redact(name, got)}')`}`;
  });
  throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
}

function redact(name: string, value: string): string {
  if (/SECRET|KEY|TOKEN|PASSWORD/.test(name)) return '<redacted>';
  return (name.endsWith('_URL') ? redactRedisUrl(value) : value).slice(0, 80);
}

export const int = (min: number, max: number, fallback: number) =>
  z.coerce
    .number({ error: 'must be a number' })
    .int({ error: 'must be a whole number' })
    .min(min, { error: `must be at least ${min}` })
    .max(max, { error: `must be at most ${max}` })
    .default(fallback);

export const bool = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0'], { error: 'must be true or false' })
    .transform((value) => value === 'true' || value === '1')
    .default(fallback);

/** Settings gateways and workers must agree on. */
export const sessionRetention = {
  SESSION_TTL_SECONDS: int(60, 31_536_000, 86_400),
  EVENTS_MAXLEN: int(10, 1_000_000, 2_000),
};

export const redisUrl = z
  .string()
  .default('redis://127.0.0.1:6379')
  .transform((value, ctx) => {
    const target = parseRedisUrl(value);
    if (typeof target === 'string') {
      ctx.issues.push({ code: 'custom', message: target, input: value });
      return z.NEVER;
    }
    return target;
  });

export const logLevel = z
  .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], {
    error: 'must be one of trace, debug, info, warn, error, fatal, silent',
  })
  .default('info');

export const keyPrefix = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,32}$/, { error: 'must be 1-32 characters of [A-Za-z0-9_-]' })
  .default('chorus');

/** A process name; by default `<kind>-<host>-<random>`, unique even for replicas on one host. */
export const instanceId = (kind: string) =>
  z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, { error: 'must be 1-64 characters of [A-Za-z0-9_.-]' })
    .default(() => `${kind}-${hostname().slice(0, 40)}-${randomBytes(3).toString('hex')}`);
