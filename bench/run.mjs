#!/usr/bin/env node
// `pnpm bench`: the machine's floor, then the scenarios S1–S5 against real gateway and worker
// processes (services/*/dist, so build first), each bounded in time. Prints a table per scenario
// (with ratios to the floor) and one JSON document (stdout, or the --json file).
//
//   node bench/run.mjs [--scenario S1,S2,S3,S4,S5] [--quick] [--json out.json] [--profile dir]
//
// --quick is a seconds-long smoke (tiny rates and durations), not a measurement.
// --profile writes --cpu-prof profiles of the gateways and workers into dir (bench/profile-top.mjs
// reads them).
// --rates overrides S2's rates; --worker-concurrency sets WORKER_CONCURRENCY (default: the product's).
// --redis-cluster runs the scenarios on a 3-node Redis Cluster instead of one redis-server (the
// floor stays on one server: it is the machine's).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { measureFloor } from './floor.mjs';
import { killAll, loadAverage, log, machine, ROOT, round } from './lib.mjs';
import { floorTable, scenarioTables, targetsTable } from './report.mjs';
import {
  s1IdleSockets,
  s2ChatRoundTrip,
  s3Streaming,
  s4ReconnectStorm,
  s5HealthUnderLoad,
} from './scenarios.mjs';

const ALL = ['S1', 'S2', 'S3', 'S4', 'S5'];

function parseArgs(argv) {
  const args = {
    scenarios: ALL,
    quick: false,
    json: null,
    profile: null,
    rates: null,
    workerConcurrency: null,
    redisCluster: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${arg} needs a value`);
      return next;
    };
    if (arg === '--scenario' || arg === '--scenarios') {
      args.scenarios = value()
        .split(',')
        .map((s) => s.trim().toUpperCase())
        .filter(Boolean);
      const unknown = args.scenarios.filter((s) => !ALL.includes(s));
      if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(', ')}`);
    } else if (arg === '--quick') args.quick = true;
    else if (arg === '--json') args.json = resolve(value());
    else if (arg === '--profile') args.profile = resolve(value());
    else if (arg === '--rates') args.rates = value().split(',').map(Number);
    else if (arg === '--worker-concurrency') args.workerConcurrency = value();
    else if (arg === '--redis-cluster') args.redisCluster = true;
    else if (arg === '--') continue;
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(
        'node bench/run.mjs [--scenario S1,S2,S3,S4,S5] [--quick] [--json file] [--profile dir]\n' +
          '                   [--rates 1000,3000 (S2)] [--worker-concurrency N (all scenarios)]\n' +
          '                   [--redis-cluster (a 3-node Redis Cluster for the scenarios)]\n',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}`);
  }
  return args;
}

/** Sizes of every scenario, full and --quick. The fd limit bounds S1 (the gateway holds them all). */
function settings(quick, openFilesLimit) {
  const fdRoom = Math.max(100, (Number(openFilesLimit) || 1024) - 200);
  if (quick) {
    return {
      S1: { sockets: Math.min(300, fdRoom), clientProcesses: 1, concurrency: 50, idleMs: 1000 },
      S2: {
        rates: [100],
        sessions: 20,
        deltas: 10,
        clientProcesses: 1,
        warmupMs: 300,
        durationMs: 1500,
        drainMs: 3000,
      },
      S3: {
        socketsPerSession: [1, 3],
        offeredDeltasPerSec: [3000],
        deltas: 50,
        sessions: 20,
        clientProcesses: 1,
        warmupMs: 300,
        durationMs: 1500,
        drainMs: 3000,
      },
      S4: { clientsTotal: 200, clientProcesses: 1, activeSessions: 50, chatRate: 50, quick },
      S5: {
        rate: 100,
        sessions: 20,
        deltas: 10,
        clientProcesses: 1,
        warmupMs: 300,
        durationMs: 1500,
        drainMs: 3000,
        idleMs: 500,
        healthRate: 20,
        metricsRate: 5,
      },
    };
  }
  return {
    S1: { sockets: Math.min(20_000, fdRoom), clientProcesses: 4, concurrency: 100, idleMs: 30_000 },
    S2: {
      rates: [100, 200, 1000, 3000],
      sessions: 200,
      deltas: 10,
      clientProcesses: 2,
      prewarm: { rate: 500, durationMs: 4000 },
      warmupMs: 3000,
      durationMs: 10_000,
      drainMs: 10_000,
    },
    S3: {
      socketsPerSession: [1, 3],
      offeredDeltasPerSec: [10_000, 150_000],
      deltas: 100,
      sessions: 120,
      clientProcesses: 2,
      warmupMs: 2000,
      durationMs: 8000,
      drainMs: 5000,
    },
    S4: { clientsTotal: 10_000, clientProcesses: 4, activeSessions: 1000, chatRate: 200, quick },
    S5: {
      rate: 1000,
      sessions: 200,
      deltas: 10,
      clientProcesses: 1,
      warmupMs: 3000,
      durationMs: 10_000,
      drainMs: 10_000,
      idleMs: 3000,
      healthRate: 20,
      metricsRate: 5,
    },
  };
}

/** The commit measured, and whether the work tree had changes on top of it. */
function revision() {
  const git = (...args) => spawnSync('git', args, { cwd: ROOT }).stdout?.toString().trim() ?? '';
  const commit = git('rev-parse', '--short', 'HEAD');
  return commit ? { commit, dirty: git('status', '--porcelain').length > 0 } : null;
}

const RUNNERS = {
  S1: s1IdleSockets,
  S2: s2ChatRoundTrip,
  S3: s3Streaming,
  S4: s4ReconnectStorm,
  S5: s5HealthUnderLoad,
};

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const host = machine();
  const config = settings(args.quick, host.openFilesLimit);
  if (args.rates) config.S2.rates = args.rates;
  if (args.workerConcurrency) {
    for (const name of ALL) config[name].workerConcurrency = args.workerConcurrency;
  }
  for (const name of ALL) config[name].redisCluster = args.redisCluster;
  if (args.profile) {
    mkdirSync(args.profile, { recursive: true });
    for (const name of ALL) config[name].profileDir = args.profile;
  }
  const report = {
    bench: 'chorus',
    startedAt: new Date(started).toISOString(),
    command: `node bench/run.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    quick: args.quick,
    redis: args.redisCluster ? '3-node Redis Cluster' : 'one redis-server',
    machine: host,
    revision: revision(),
    settings: Object.fromEntries(args.scenarios.map((s) => [s, config[s]])),
    floor: null,
    scenarios: {},
    targets: [],
  };
  log(`machine: ${host.cpus} × ${host.model}, ${host.memoryGiB} GiB, Node ${host.node}`);
  log(`open files limit ${host.openFilesLimit}; load average ${host.loadAverageAtStart.join(' ')}`);
  log(`scenarios on ${report.redis}`);
  report.floor = await measureFloor({ quick: args.quick });
  process.stdout.write(floorTable(report.floor));
  for (const name of args.scenarios) {
    const t = Date.now();
    const result = await RUNNERS[name](config[name]);
    report.scenarios[name] = {
      ...result,
      elapsedSec: round((Date.now() - t) / 1000, 1),
      loadAverageAfter: loadAverage(),
    };
    process.stdout.write(scenarioTables(name, report.scenarios[name], report.floor));
  }
  report.elapsedSec = round((Date.now() - started) / 1000, 1);
  report.targets = targetsTable.evaluate(report);
  process.stdout.write(targetsTable.render(report.targets, report));
  const json = `${JSON.stringify(report, null, 2)}\n`;
  if (args.json) {
    writeFileSync(args.json, json);
    log(`JSON written to ${args.json}`);
  } else process.stdout.write(json);
  log(`done in ${report.elapsedSec} s`);
}

main().then(
  () => {
    killAll();
    process.exit(0);
  },
  (error) => {
    log(`failed: ${error?.stack ?? error}`);
    killAll();
    process.exit(1);
  },
);
