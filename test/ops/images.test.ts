import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Instruction {
  op: string;
  args: string;
}

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function instructions(file: string): Instruction[] {
  const text = readFileSync(`${ROOT}${file}`, 'utf8').replace(/\\\n\s*/g, ' ');
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [op = '', ...rest] = line.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(' ') };
    });
}

/** The ARG defaults declared before the first FROM, to resolve `FROM ${NODE_IMAGE}`. */
function resolveFrom(all: Instruction[], from: string): string {
  const args = new Map<string, string>();
  for (const i of all) {
    if (i.op === 'FROM') break;
    const [name, value] = i.args.split('=');
    if (i.op === 'ARG' && name && value) args.set(name, value);
  }
  return from.replace(/\$\{(\w+)\}/g, (_m, name: string) => args.get(name) ?? '');
}

const exec = (args: string) => JSON.parse(args) as string[];

describe.each([
  { file: 'Dockerfile.gateway', service: 'gateway', port: '8080', probe: '/readyz' },
  { file: 'Dockerfile.worker', service: 'worker', port: '9100', probe: '/health' },
])('$file', ({ file, service, port, probe }) => {
  const all = instructions(file);
  const stages = all.filter((i) => i.op === 'FROM');
  const lastFrom = all.lastIndexOf(stages.at(-1) as Instruction);
  const runtime = all.slice(lastFrom);

  it('builds in stages, on Debian bookworm Node 20 (glibc, as the uWS.js binaries need)', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const bases = stages
      .map((s) => resolveFrom(all, s.args.split(/\s+/)[0] ?? ''))
      .filter((base) => base.includes(':'));
    expect(bases.length).toBeGreaterThan(0);
    for (const base of bases) {
      expect(base).toMatch(/^node:20[.\d]*-(bookworm|bookworm-slim)$/);
      expect(base).not.toMatch(/alpine|musl/);
    }
  });

  it('ships production dependencies only', () => {
    const installs = all.filter((i) => i.op === 'RUN' && /pnpm install/.test(i.args));
    const prod = installs.find((i) => i.args.includes('--prod'));
    expect(prod?.args).toContain(`--filter "@chorus/${service}..."`);
    expect(prod?.args).toContain('--frozen-lockfile');
    // The runtime stage takes node_modules from the --prod stage, not the build stage.
    const prodStage = all
      .slice(0, all.indexOf(prod as Instruction))
      .filter((i) => i.op === 'FROM')
      .at(-1)
      ?.args.split(/\s+AS\s+/i)[1];
    const copies = runtime.filter((i) => i.op === 'COPY' && i.args.startsWith('--from='));
    expect(copies.some((c) => c.args.startsWith(`--from=${prodStage} /app /app`))).toBe(true);
    for (const copy of copies.filter((c) => c.args.startsWith('--from=build'))) {
      expect(copy.args).not.toContain('node_modules');
    }
    expect(runtime.some((i) => i.op === 'RUN' && /pnpm|npm install/.test(i.args))).toBe(false);
  });

  it('runs as a non-root user', () => {
    const users = runtime.filter((i) => i.op === 'USER').map((i) => i.args);
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);
  });

  it('checks its health with node fetch, not curl or wget', () => {
    const check = runtime.find((i) => i.op === 'HEALTHCHECK');
    expect(check?.args).toBeDefined();
    const cmd = check?.args.replace(/^(--\S+\s+)*CMD\s+/, '') ?? '';
    const argv = exec(cmd);
    expect(argv.slice(0, 2)).toEqual(['node', '-e']);
    expect(argv[2]).toContain('fetch(');
    expect(argv[2]).toContain(`||${port})+'${probe}'`);
    expect(check?.args).not.toMatch(/curl|wget/);
  });

  it('starts node in exec form under tini, never npm or pnpm as PID 1', () => {
    const entrypoint = runtime.filter((i) => i.op === 'ENTRYPOINT').at(-1);
    const cmd = runtime.filter((i) => i.op === 'CMD').at(-1);
    expect(exec(entrypoint?.args ?? '[]')).toEqual(['/usr/bin/tini', '--']);
    expect(exec(cmd?.args ?? '[]')).toEqual(['node', `services/${service}/dist/main.js`]);
    expect(runtime.some((i) => i.op === 'RUN' && /apt-get install .*\btini\b/.test(i.args))).toBe(
      true,
    );
    for (const i of all.filter((x) => x.op === 'CMD' || x.op === 'ENTRYPOINT')) {
      expect(i.args).not.toMatch(/\b(npm|pnpm|yarn)\b/);
    }
  });

  it('copies only files that exist, and everything the process reads at run time', () => {
    for (const copy of all.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))) {
      const sources = copy.args.split(/\s+/).slice(0, -1);
      for (const source of sources) expect(existsSync(`${ROOT}${source}`), source).toBe(true);
    }
    const destinations = runtime
      .filter((i) => i.op === 'COPY' && i.args.startsWith('--from=build '))
      .map((i) => i.args.split(/\s+/).at(-1) as string);
    const covered = (path: string) =>
      destinations.some((d) => path === d || path.startsWith(`${d}/`));
    for (const dir of [`services/${service}`, ...workspaceDependencies(`services/${service}`)]) {
      expect(covered(`${dir}/dist`), `${dir}/dist`).toBe(true);
      for (const asset of runtimeAssets(dir)) {
        // package.json files come with the production dependencies' stage.
        if (asset.endsWith('/package.json')) continue;
        expect(existsSync(`${ROOT}${asset}`), asset).toBe(true);
        expect(covered(asset), `${asset} (read at run time) is not in the image`).toBe(true);
      }
    }
  });
});

/** Directories of the workspace packages `dir` depends on, transitively. */
function workspaceDependencies(dir: string): string[] {
  const byName = new Map<string, string>();
  for (const parent of ['packages', 'services']) {
    for (const child of readdirSync(`${ROOT}${parent}`)) {
      const manifest = `${ROOT}${parent}/${child}/package.json`;
      if (!existsSync(manifest)) continue;
      const { name } = JSON.parse(readFileSync(manifest, 'utf8')) as { name: string };
      byName.set(name, `${parent}/${child}`);
    }
  }
  const found = new Set<string>();
  const visit = (from: string) => {
    const { dependencies = {} } = JSON.parse(
      readFileSync(`${ROOT}${from}/package.json`, 'utf8'),
    ) as {
      dependencies?: Record<string, string>;
    };
    for (const [name, range] of Object.entries(dependencies)) {
      const target = byName.get(name);
      if (!range.startsWith('workspace:') || !target || found.has(target)) continue;
      found.add(target);
      visit(target);
    }
  };
  visit(dir);
  return [...found];
}

/** Files a package's built code reads beside itself: `new URL('…', import.meta.url)`. */
function runtimeAssets(dir: string): string[] {
  const assets: string[] = [];
  const walk = (folder: string) => {
    for (const entry of readdirSync(`${ROOT}${folder}`, { withFileTypes: true })) {
      const path = `${folder}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
        const source = readFileSync(`${ROOT}${path}`, 'utf8');
        for (const match of source.matchAll(/new URL\(\s*'([^']+)',\s*import\.meta\.url\s*\)/g)) {
          // Resolved from the compiled file, which sits in dist/ where the source sits in src/.
          const compiled = posix.dirname(path).replace(`${dir}/src`, `${dir}/dist`);
          assets.push(posix.normalize(posix.join(compiled, match[1] as string)).replace(/\/$/, ''));
        }
      }
    }
  };
  walk(`${dir}/src`);
  return assets;
}

describe('.dockerignore', () => {
  const patterns = readFileSync(`${ROOT}.dockerignore`, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

  it('keeps node_modules, build output and .git out of the context', () => {
    expect(patterns).toEqual(expect.arrayContaining(['**/node_modules', '**/dist', '.git']));
  });

  it('does not exclude what the Dockerfiles copy', () => {
    for (const needed of ['package.json', 'pnpm-lock.yaml', 'pnpm-workspace.yaml', '.npmrc']) {
      expect(patterns).not.toContain(needed);
    }
    expect(patterns.some((p) => /^(packages|services)(\/|$)/.test(p))).toBe(false);
  });
});
