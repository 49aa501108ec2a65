import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * A seconds-long smoke of `pnpm bench` (bench/run.mjs --quick): the load generator, the floor and
 * two scenarios run end to end against real processes and write the JSON report. It asserts the
 * shape of the report, never a performance figure: benchmarks are not tests.
 */

const ROOT = fileURLToPath(new URL('../', import.meta.url));

interface Summary {
  count: number;
  p50: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
}

interface ChatRun {
  offeredPerSec: number;
  achievedPerSec: number | null;
  roundTrip: Summary;
  errors: number;
  cpuMsPerChat: number | null;
}

interface BenchReport {
  quick: boolean;
  machine: { cpus: number; node: string; openFilesLimit: number | string };
  floor: { redisRtt: Summary; uwsEcho: Summary; bullmqAddToActive: Summary };
  scenarios: {
    S2?: { runs: ChatRun[] };
    S5?: { idle: { health: Summary }; underLoad: { health: Summary; metrics: Summary } };
  };
  targets: { scenario: string; met: boolean }[];
}

function runBench(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bench/run.mjs', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const collect = (chunk: Buffer) => (output += chunk.toString());
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => child.kill('SIGINT'), 55_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('pnpm bench --quick (smoke)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'chorus-bench-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the floor, S2 and S5 and writes the JSON report', { timeout: 60_000 }, async () => {
    const file = join(dir, 'bench.json');
    const { code, output } = await runBench(['--quick', '--scenario', 'S2,S5', '--json', file]);
    expect(code, output.slice(-3000)).toBe(0);
    expect(output).toContain('S2 chat round trip');
    expect(output).toContain('S5 /health and /metrics latency');

    const report = JSON.parse(readFileSync(file, 'utf8')) as BenchReport;
    expect(report.quick).toBe(true);
    expect(report.machine.cpus).toBeGreaterThan(0);
    for (const floor of [report.floor.redisRtt, report.floor.uwsEcho]) {
      expect(floor.count).toBeGreaterThan(0);
      expect(floor.p99).toEqual(expect.any(Number));
    }
    expect(report.floor.bullmqAddToActive.count).toBeGreaterThan(0);

    const s2 = report.scenarios.S2;
    expect(s2?.runs.length).toBeGreaterThan(0);
    for (const run of s2?.runs ?? []) {
      expect(run.roundTrip.count).toBeGreaterThan(0);
      expect(Object.keys(run)).toEqual(
        expect.arrayContaining(['offeredPerSec', 'achievedPerSec', 'errors', 'cpuMsPerChat']),
      );
    }
    const s5 = report.scenarios.S5;
    expect(s5?.idle.health.count).toBeGreaterThan(0);
    expect(s5?.underLoad.health.p99).toEqual(expect.any(Number));
    expect(s5?.underLoad.metrics.count).toBeGreaterThan(0);
    expect(report.targets.map((t) => t.scenario)).toEqual(expect.arrayContaining(['S2', 'S5']));
  });
});
