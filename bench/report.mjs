// Readable tables of the bench results, ratios to the floor, and the targets.
import { round } from './lib.mjs';

const show = (value) => {
  if (value === null || value === undefined) return '–';
  if (typeof value === 'number') return value.toLocaleString('en-US', { maximumFractionDigits: 3 });
  if (typeof value === 'object') {
    const entries = Object.entries(value);
    return entries.length === 0 ? '0' : entries.map(([k, v]) => `${k}:${v}`).join(' ');
  }
  return String(value);
};

export function table(title, headers, rows) {
  const cells = [headers, ...rows.map((row) => row.map(show))];
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => String(row[i]).length)));
  // Text columns (the first one, and any whose cells are not numbers) align left.
  const numeric = headers.map(
    (_, i) =>
      i > 0 &&
      rows.every(
        (row) =>
          row[i] === null ||
          row[i] === undefined ||
          typeof row[i] === 'number' ||
          /^[\d.,]+×$/.test(String(row[i])) ||
          row[i] === '–',
      ),
  );
  const line = (row) =>
    row
      .map((cell, i) =>
        numeric[i] ? String(cell).padStart(widths[i]) : String(cell).padEnd(widths[i]),
      )
      .join('  ');
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return `\n${title}\n${line(headers)}\n${rule}\n${cells.slice(1).map(line).join('\n')}\n`;
}

const ratio = (value, floor) =>
  value !== null && value !== undefined && floor ? `${round(value / floor, 1)}×` : '–';

/** The least a chat round trip can cost here: a ws round trip, a queue hop, a Redis round trip. */
export function chatFloor(floor, key) {
  return round(floor.uwsEcho[key] + floor.bullmqAddToActive[key] + floor.redisRtt[key]);
}

/** The least a delta can cost: Redis (append + publish) and one WebSocket hop. */
const deltaFloor = (floor, key) => round(floor.redisRtt[key] + floor.uwsEcho[key]);

export function floorTable(floor) {
  const rows = [
    ['Redis PING round trip', floor.redisRtt],
    ['uWS echo round trip', floor.uwsEcho],
    [`BullMQ add → active (${floor.bullmqAddToActive.rate}/s)`, floor.bullmqAddToActive],
  ].map(([name, s]) => [name, s.count, s.p50, s.p99, s.p999, s.max]);
  const idle = floor.uwsIdle;
  return (
    table('Floor (ms)', ['measure', 'n', 'p50', 'p99', 'p99.9', 'max'], rows) +
    table(
      'Floor: idle sockets on a bare uWS server',
      ['sockets', 'failed', 'RSS B/socket', 'connects/s'],
      [[idle.sockets, idle.failed, idle.rssPerSocketBytes, idle.connectRatePerSec]],
    ) +
    `chat floor (uWS echo + BullMQ hop + Redis RTT): p50 ${chatFloor(floor, 'p50')} ms, p99 ${chatFloor(floor, 'p99')} ms\n`
  );
}

function s1Table(r, floor) {
  return table(
    'S1 idle sockets on one gateway',
    [
      'held',
      'failed',
      'connects/s',
      '× floor',
      'RSS B/socket',
      '× floor',
      'heap B/socket',
      'as found: RSS',
      'Redis B/socket',
      'connect p99 ms',
    ],
    [
      [
        r.socketsHeld,
        r.failed,
        r.connectRatePerSec,
        ratio(r.connectRatePerSec, floor.uwsIdle.connectRatePerSec),
        r.rssPerSocketBytes,
        ratio(r.rssPerSocketBytes, floor.uwsIdle.rssPerSocketBytes),
        r.heapPerSocketBytes,
        r.rssPerSocketAsFoundBytes,
        r.redisRssPerSocketBytes,
        r.connectTime.p99,
      ],
    ],
  );
}

function chatRows(runs, floor) {
  return runs.map((r) => [
    r.offeredPerSec,
    r.sentPerSec,
    r.achievedPerSec,
    r.roundTrip.p50,
    r.roundTrip.p99,
    r.roundTrip.p999,
    r.roundTrip.max,
    ratio(r.roundTrip.p99, chatFloor(floor, 'p99')),
    r.ack.p99,
    r.errors,
    r.incomplete,
    r.cpuMsPerChat,
    r.loadGeneratorCores,
  ]);
}

const chatHeaders = [
  'offered/s',
  'sent/s',
  'achieved/s',
  'p50 ms',
  'p99 ms',
  'p99.9 ms',
  'max ms',
  'p99 × floor',
  'ack p99',
  'errors',
  'incomplete',
  'CPU ms/chat',
  'loadgen cores',
];

function s2Table(r, floor) {
  return table(
    `S2 chat round trip (send → reply.end, from the intended send time), ${r.sessions} sessions, ${r.deltasPerReplyConfigured} deltas/reply`,
    chatHeaders,
    chatRows(r.runs, floor),
  );
}

function s3Table(r, floor) {
  return table(
    `S3 token streaming (${r.deltasPerReplyConfigured} deltas/reply; delta latency = Redis append → client)`,
    [
      'sockets/session',
      'offered deltas/s',
      'delivered/s',
      'delta p50',
      'delta p99',
      'max',
      'p99 × floor',
      'chats/s',
      'errors',
      'incomplete',
    ],
    r.runs.map((run) => [
      run.socketsPerSession,
      run.offeredDeltasPerSec,
      run.deltasDeliveredPerSec,
      run.deltaLatency.p50,
      run.deltaLatency.p99,
      run.deltaLatency.max,
      ratio(run.deltaLatency.p99, deltaFloor(floor, 'p99')),
      run.achievedPerSec,
      run.errors,
      run.incomplete,
    ]),
  );
}

function s4Table(r, floor) {
  const ideal = floor.uwsIdle.connectRatePerSec
    ? (r.clients / floor.uwsIdle.connectRatePerSec) * 1000
    : null;
  return table(
    `S4 reconnect storm (SIGKILL ${r.killed}; clients resume on the other gateway)`,
    [
      'clients',
      'back',
      'ms to 99%',
      'ms to 100%',
      '× floor',
      'retries',
      'lost',
      'duplicated',
      'unanswered',
      'dup replies',
      'chats',
    ],
    [
      [
        r.clients,
        r.back,
        r.msTo99Percent,
        r.msTo100Percent,
        ratio(r.msTo100Percent, ideal),
        r.retries,
        r.events.lost,
        r.events.duplicated,
        r.chats.unanswered + r.chats.unacked,
        r.chats.duplicateReplies,
        r.chats.sent,
      ],
    ],
  );
}

function s5Table(r, floor) {
  const row = (phase, name, s) => [
    phase,
    name,
    s.count,
    s.p50,
    s.p99,
    s.p999,
    s.max,
    ratio(s.p99, floor.redisRtt.p99),
    show(s.statuses),
  ];
  return (
    table(
      'S5 /health and /metrics latency (ms, from the intended send time)',
      ['phase', 'path', 'n', 'p50', 'p99', 'p99.9', 'max', 'p99 × Redis RTT', 'statuses'],
      [
        row('idle', '/health', r.idle.health),
        row('idle', '/metrics', r.idle.metrics),
        row(`${r.load.offeredPerSec} chats/s`, '/health', r.underLoad.health),
        row(`${r.load.offeredPerSec} chats/s`, '/metrics', r.underLoad.metrics),
      ],
    ) + table('S5 the load meanwhile', chatHeaders, chatRows([r.load], floor))
  );
}

const TABLES = { S1: s1Table, S2: s2Table, S3: s3Table, S4: s4Table, S5: s5Table };

export function scenarioTables(name, result, floor) {
  return TABLES[name](result, floor);
}

function evaluate(report) {
  const s = report.scenarios;
  const targets = [];
  const add = (scenario, target, value, met, note = '') =>
    targets.push({ scenario, target, value, met, note });
  if (s.S1) {
    add(
      'S1',
      '≥ 20,000 sockets on one gateway',
      s.S1.socketsHeld,
      s.S1.socketsHeld >= 20_000,
      s.S1.socketsOffered < 20_000
        ? `only ${s.S1.socketsOffered} tried: open files limit ${report.machine.openFilesLimit}`
        : '',
    );
    add(
      'S1',
      '≤ 2 KB RSS per idle socket',
      s.S1.rssPerSocketBytes,
      s.S1.rssPerSocketBytes !== null && s.S1.rssPerSocketBytes <= 2048,
      `after ${s.S1.idleMs / 1000} s idle; ${s.S1.rssPerSocketAsFoundBytes} B as found 2 s after the connects`,
    );
  }
  if (s.S2) {
    for (const [rate, limit] of [
      [1000, 10],
      [3000, 35],
    ]) {
      const run = s.S2.runs.find((r) => r.offeredPerSec === rate);
      if (!run) {
        add('S2', `p99 ≤ ${limit} ms at ${rate} chats/s, 0 errors`, 'not run', false);
        continue;
      }
      const clean = run.errors === 0 && run.incomplete === 0;
      add(
        'S2',
        `p99 ≤ ${limit} ms at ${rate} chats/s, 0 errors`,
        `${run.roundTrip.p99} ms, ${run.errors} errors, ${run.incomplete} incomplete`,
        run.roundTrip.p99 !== null && run.roundTrip.p99 <= limit && clean,
      );
    }
  }
  if (s.S3) {
    const best = Math.max(...s.S3.runs.map((r) => r.deltasDeliveredPerSec ?? 0));
    add('S3', '≥ 100,000 deltas/s', best, best >= 100_000);
  }
  if (s.S4) {
    const r = s.S4;
    add(
      'S4',
      '10,000 clients all back within 5 s',
      `${r.clients} clients, ${r.msTo100Percent ?? 'not all'} ms`,
      r.clients >= 10_000 && r.msTo100Percent !== null && r.msTo100Percent <= 5000,
    );
    add(
      'S4',
      '0 lost, 0 duplicated events',
      `${r.events.lost} lost, ${r.events.duplicated} duplicated`,
      r.events.lost === 0 &&
        r.events.duplicated === 0 &&
        r.chats.unanswered === 0 &&
        r.chats.duplicateReplies === 0,
    );
  }
  if (s.S5) {
    const p99 = s.S5.underLoad.health.p99;
    add('S5', '/health p99 ≤ 5 ms (under S2 load)', `${p99} ms`, p99 !== null && p99 <= 5);
  }
  if (report.quick)
    for (const t of targets) t.note = `${t.note} (--quick: not a measurement)`.trim();
  return targets;
}

function render(targets) {
  if (targets.length === 0) return '';
  return table(
    'Targets',
    ['scenario', 'target', 'measured', 'met', 'note'],
    targets.map((t) => [t.scenario, t.target, t.value, t.met ? 'met' : 'NOT met', t.note]),
  );
}

export const targetsTable = { evaluate, render };
