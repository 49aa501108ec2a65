import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
// @chorus/config is a workspace package, not a dependency of the root: its build output.
import {
  GATEWAY_VARIABLES,
  loadGatewayConfig,
  loadWorkerConfig,
  WORKER_VARIABLES,
} from '../../packages/config/dist/index.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Row {
  variable: string;
  cells: string[];
}

/**
 * The configuration tables of a Markdown file: tables whose rows start with a `VARIABLE`,
 * grouped by the heading above them (Gateway or Worker).
 */
function configurationTables(file: string): { gateway: Row[]; worker: Row[] } {
  const tables = { gateway: [] as Row[], worker: [] as Row[] };
  let heading = '';
  for (const line of readFileSync(`${ROOT}${file}`, 'utf8').split('\n')) {
    if (/^#{1,6} /.test(line)) heading = line;
    const match = /^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|/.exec(line);
    if (!match) continue;
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((cell) => cell.trim().replace(/\[([^\]]+)\]\([^)]+\)/g, '$1'));
    const row = { variable: match[1] as string, cells };
    if (/gateway/i.test(heading)) tables.gateway.push(row);
    else if (/worker/i.test(heading)) tables.worker.push(row);
    else
      throw new Error(`${file}: a variable row under "${heading}", not a Gateway or Worker table`);
  }
  return tables;
}

const readme = configurationTables('README.md');
const operations = configurationTables('docs/operations.md');

/** A setting as the table writes it: REDIS_URL parses to a target that keeps its URL. */
const valueOf = (config: object, key: string): unknown => {
  const value = (config as Record<string, unknown>)[key];
  return typeof value === 'object' && value !== null && 'url' in value ? value.url : value;
};

/** A few defaults that are not literal values. */
const NOT_LITERAL = /<|required|unset|default|shipped/;

describe.each([
  {
    service: 'gateway' as const,
    variables: GATEWAY_VARIABLES,
    defaults: loadGatewayConfig({
      SESSION_SECRET: 'x'.repeat(32),
      ALLOWED_ORIGINS: '*',
    }),
  },
  {
    service: 'worker' as const,
    variables: WORKER_VARIABLES,
    defaults: loadWorkerConfig({}),
  },
])('the $service configuration table', ({ service, variables, defaults }) => {
  it.each([
    ['README.md', readme],
    ['docs/operations.md', operations],
  ])('%s documents every variable the service reads, and no other', (_file, tables) => {
    const documented = tables[service].map((r) => r.variable);
    expect(new Set(documented).size, 'a variable listed twice').toBe(documented.length);
    expect([...documented].sort()).toEqual([...variables].sort());
  });

  it('is the same in docs/operations.md as in the README', () => {
    const byVariable = new Map(readme[service].map((r) => [r.variable, r.cells]));
    for (const row of operations[service]) {
      expect(row.cells, row.variable).toEqual(byVariable.get(row.variable));
    }
  });

  it('states the defaults the service really uses', () => {
    let compared = 0;
    for (const row of readme[service]) {
      const literal = /^`([^`]+)`$/.exec(row.cells[1] ?? '')?.[1];
      if (literal === undefined || NOT_LITERAL.test(row.cells[1] ?? '')) continue;
      expect(String(valueOf(defaults, row.variable)), row.variable).toBe(literal);
      compared++;
    }
    expect(compared).toBeGreaterThan(8);
  });
});

describe('docs/operations.md', () => {
  const text = readFileSync(`${ROOT}docs/operations.md`, 'utf8');

  it('covers scaling, Azure (min replicas, keep-alive), docker-compose and the runbook', () => {
    for (const heading of [
      '## Configuration',
      '## Scaling out',
      '## Azure Container Apps',
      '## Running with docker-compose',
      '## Runbook',
    ]) {
      expect(text).toContain(`\n${heading}\n`);
    }
    expect(text).toMatch(/Minimum replicas ≥ 1 is the real fix/);
    expect(text).toContain('keep-alive.yml');
    expect(text).toContain('{chorus:bull}:chat:wait');
  });
});

describe('docs/metrics.md', () => {
  const text = readFileSync(`${ROOT}docs/metrics.md`, 'utf8');
  const documented = new Set(
    [...text.matchAll(/^\|\s*`(chorus_[a-z0-9_]+)`\s*\|/gm)].map((m) => m[1] as string),
  );

  it('documents every chorus_* metric the observability package defines', () => {
    const defined = ['gateway-metrics.ts', 'worker-metrics.ts'].flatMap((file) => [
      ...readFileSync(`${ROOT}packages/observability/src/${file}`, 'utf8').matchAll(
        /name: '(chorus_[a-z0-9_]+)'/g,
      ),
    ]);
    expect(defined.length).toBeGreaterThan(15);
    for (const [, name] of defined) expect(documented, name).toContain(name);
  });
});
