// The scenarios S1–S5. Each starts its own Redis, gateways and worker, and stops them at the end.
import { forkClients, stopClients } from './clients.mjs';
import {
  cpuDelta,
  cpuSnapshot,
  getText,
  log,
  mergeHistograms,
  metricValue,
  probeHttp,
  round,
  rssBytes,
  sleep,
  startCluster,
  summarize,
} from './lib.mjs';

const sum = (values) => values.reduce((a, b) => a + (b ?? 0), 0);

/** Adds up counters ({ key: n }) of several client processes. */
function addCounts(list) {
  const total = {};
  for (const counts of list) {
    for (const [key, n] of Object.entries(counts ?? {})) total[key] = (total[key] ?? 0) + n;
  }
  return total;
}

/** What every scenario's cluster takes from the command line: profiling, Redis Cluster. */
const clusterSettings = ({ profileDir, redisCluster }) => ({ profileDir, redisCluster });

/** Spreads `total` over `parts` as evenly as whole numbers allow. */
const share = (total, parts, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0);

async function heapUsed(gateway) {
  return metricValue(await getText(gateway.port, '/metrics'), 'nodejs_heap_size_used_bytes');
}

// ---------------------------------------------------------------------------------------------

/**
 * S1: idle sockets held on one gateway. RSS and heap are read once the gateway has sat idle for
 * `idleMs`, before the connects and again after them: V8 returns a burst's garbage only when
 * allocation has gone quiet (its memory reducer: here about 8 s after start-up and 20 s after the
 * connects), so only then does the memory show what idle sockets hold. RSS 2 s after the last
 * connect, with the connects' garbage still in it, is reported too ("as found").
 */
export async function s1IdleSockets(options) {
  const { sockets, clientProcesses, concurrency, idleMs } = options;
  const cluster = await startCluster({
    gateways: 1,
    worker: false,
    ...clusterSettings(options),
  });
  const [gateway] = cluster.gateways;
  const clients = forkClients(clientProcesses, 's1-client');
  const memory = async () => ({
    rss: rssBytes(gateway.pid),
    heap: await heapUsed(gateway),
    redisRss: sum(cluster.redisNodes.map((node) => rssBytes(node.pid))),
  });
  try {
    log(`S1: gateway idle for ${idleMs / 1000} s before the connects`);
    await sleep(idleMs);
    const before = await memory();
    const cpuBefore = cpuSnapshot(cluster.services());
    log(`S1: opening ${sockets} sockets on one gateway from ${clientProcesses} client processes`);
    const results = await Promise.all(
      clients.map((c, i) =>
        c.call(
          'hold',
          { urls: [gateway.wsUrl], count: share(sockets, clientProcesses, i), concurrency },
          300_000,
        ),
      ),
    );
    const cpu = cpuDelta(cpuBefore, cpuSnapshot(cluster.services()));
    const connectedAt = Date.now();
    await sleep(2000);
    const asFoundRss = rssBytes(gateway.pid);
    log(`S1: sockets idle for ${idleMs / 1000} s`);
    await sleep(connectedAt + idleMs - Date.now());
    const after = await memory();
    const connected = sum(results.map((r) => r.connected));
    const elapsedMs = Math.max(...results.map((r) => r.elapsedMs));
    const perSocket = (a, b) =>
      connected > 0 && a !== null && b !== null ? round((a - b) / connected, 0) : null;
    return {
      socketsOffered: sockets,
      socketsHeld: connected,
      failed: sum(results.map((r) => r.failed)),
      failures: addCounts(results.map((r) => r.failures)),
      idleMs,
      connectRatePerSec: round((connected / elapsedMs) * 1000, 0),
      connectTime: summarize(mergeHistograms(results.map((r) => r.connectTimes))),
      gatewayRssBytes: { before: before.rss, asFound: asFoundRss, after: after.rss },
      gatewayHeapUsedBytes: { before: before.heap, after: after.heap },
      rssPerSocketBytes: perSocket(after.rss, before.rss),
      rssPerSocketAsFoundBytes: perSocket(asFoundRss, before.rss),
      heapPerSocketBytes: perSocket(after.heap, before.heap),
      redisRssPerSocketBytes: perSocket(after.redisRss, before.redisRss),
      gatewayCpuMsPerConnect: connected > 0 ? round((cpu.gw1 ?? 0) / connected, 4) : null,
      redisCpuMsPerConnect:
        connected > 0
          ? round(sum(cluster.redisNodes.map((n) => cpu[n.name])) / connected, 4)
          : null,
    };
  } finally {
    await stopClients(clients);
    await cluster.stop();
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Starts an open-loop run in every client process that has sessions, the rate shared by their
 * sessions; resolves with each process's result (null for one without sessions).
 */
function loadRuns(
  clients,
  ready,
  connected,
  { rate, startAt, warmupMs, durationMs, drainMs, idPrefix },
) {
  return clients.map((c, i) =>
    ready[i].sessions === 0
      ? Promise.resolve(null)
      : c.call(
          'loadRun',
          {
            rate: rate * (ready[i].sessions / connected),
            startAt,
            warmupMs,
            durationMs,
            drainMs,
            text: 'benchmark message',
            idPrefix: `${idPrefix}${i}x`,
          },
          warmupMs + durationMs + drainMs + 60_000,
        ),
  );
}

/**
 * Open-loop chat load on a running cluster: `sessions` sessions (their first socket on gateway
 * i % 2, further sockets on the others) spread over `clientProcesses`, `rate` chats/s in total.
 * Returns the merged figures and the CPU the services spent in the measured window.
 */
async function chatLoad(cluster, clients, options) {
  const {
    sessions,
    socketsPerSession = 1,
    rate,
    warmupMs,
    durationMs,
    drainMs,
    idPrefix,
  } = options;
  const gatewayUrls = cluster.gateways.map((g) => g.wsUrl);
  const ready = await Promise.all(
    clients.map((c, i) =>
      c.call('loadConnect', {
        gatewayUrls,
        sessions: share(sessions, clients.length, i),
        socketsPerSession,
      }),
    ),
  );
  const connected = sum(ready.map((r) => r.sessions));
  if (connected === 0) throw new Error(`no session connected: ${JSON.stringify(ready)}`);
  // Fresh processes run their first thousands of chats on unoptimised code: a load whose figures
  // are dropped lets V8 compile the hot paths first (a production replica is warm too).
  if (options.prewarm) {
    const { rate: warmRate, durationMs: warmMs } = options.prewarm;
    await Promise.all(
      loadRuns(clients, ready, connected, {
        rate: warmRate,
        startAt: Date.now() + 100,
        warmupMs: 0,
        durationMs: warmMs,
        drainMs: 5_000,
        idPrefix: `${idPrefix}p`,
      }),
    );
  }
  const startAt = Date.now() + 300;
  const services = cluster.services();
  let cpuBefore = null;
  let cpuAfter = null;
  const windowStart = setTimeout(
    () => (cpuBefore = cpuSnapshot(services)),
    startAt + warmupMs - Date.now(),
  );
  const windowEnd = setTimeout(
    () => (cpuAfter = cpuSnapshot(services)),
    startAt + warmupMs + durationMs - Date.now(),
  );
  // A client process whose sessions all failed to connect sends nothing; the rest share the rate.
  const runs = loadRuns(clients, ready, connected, {
    rate,
    startAt,
    warmupMs,
    durationMs,
    drainMs,
    idPrefix: `${idPrefix}c`,
  });
  const probes = options.during?.(startAt) ?? Promise.resolve(null);
  const [all, probed] = await Promise.all([Promise.all(runs), probes]);
  const results = all.filter(Boolean);
  clearTimeout(windowStart);
  clearTimeout(windowEnd);
  const cpu = cpuBefore && cpuAfter ? cpuDelta(cpuBefore, cpuAfter) : {};
  const windowSec = durationMs / 1000;
  const endsInWindow = sum(results.map((r) => r.endsInWindow));
  const serviceCpu = sum(Object.values(cpu));
  const roundTrip = mergeHistograms(results.map((r) => r.roundTrip));
  return {
    result: {
      sessions: connected,
      sessionsOffered: sessions,
      socketsPerSession,
      connectFailures: addCounts(ready.map((r) => r.failures)),
      offeredPerSec: rate,
      sentPerSec: round(sum(results.map((r) => r.sentMeasured)) / windowSec, 1),
      achievedPerSec: round(endsInWindow / windowSec, 1),
      measuredChats: sum(results.map((r) => r.sentMeasured)),
      completed: sum(results.map((r) => r.completedMeasured)),
      incomplete: sum(results.map((r) => r.incomplete)),
      errors: sum(results.map((r) => r.errorsMeasured)) + sum(results.map((r) => r.notSent)),
      errorCodes: addCounts(results.map((r) => r.errors)),
      closes: addCounts(results.map((r) => r.closes)),
      roundTrip: summarize(roundTrip),
      ack: summarize(mergeHistograms(results.map((r) => r.ack))),
      sendLag: summarize(mergeHistograms(results.map((r) => r.sendLag))),
      deltasPerReply: round(
        sum(results.map((r) => r.deltas)) /
          Math.max(1, sum(results.map((r) => r.ends))) /
          socketsPerSession,
        1,
      ),
      deltasDeliveredPerSec: round(sum(results.map((r) => r.deltasInWindow)) / windowSec, 0),
      deltaLatency: summarize(mergeHistograms(results.map((r) => r.deltaLatency))),
      cpuMsPerChat: endsInWindow > 0 ? round(serviceCpu / endsInWindow, 3) : null,
      cpuMsPerChatByProcess: Object.fromEntries(
        Object.entries(cpu).map(([name, ms]) => [
          name,
          endsInWindow > 0 ? round(ms / endsInWindow, 3) : null,
        ]),
      ),
      cpuCoresUsed: Object.fromEntries(
        Object.entries(cpu).map(([name, ms]) => [name, round(ms / durationMs, 2)]),
      ),
      loadGeneratorCores: round(sum(results.map((r) => r.clientCpuMs)) / durationMs, 2),
    },
    probed,
  };
}

/** The echo model with `deltas` deltas, each sent at once (no coalescing, as the reference). */
const workerEnv = (deltas, concurrency) => ({
  ECHO_DELTAS: String(deltas),
  DELTA_FLUSH_MS: '0',
  ...(concurrency ? { WORKER_CONCURRENCY: String(concurrency) } : {}),
});

/** S2: chat round trip at fixed rates over two gateways, echo model with `deltas` deltas. */
export async function s2ChatRoundTrip(options) {
  const runs = [];
  for (const rate of options.rates) {
    log(`S2: ${rate} chats/s, ${options.sessions} sessions over 2 gateways`);
    const cluster = await startCluster({
      gateways: 2,
      workerEnv: workerEnv(options.deltas, options.workerConcurrency),
      ...clusterSettings(options),
    });
    const clients = forkClients(options.clientProcesses, 's2-client');
    try {
      const { result } = await chatLoad(cluster, clients, {
        ...options,
        rate,
        idPrefix: `s2r${rate}`,
      });
      runs.push(result);
    } finally {
      await stopClients(clients);
      await cluster.stop();
    }
  }
  return { sessions: options.sessions, deltasPerReplyConfigured: options.deltas, runs };
}

/** S3: token streaming, 1 and 3 sockets per session, at fixed delivered-delta rates. */
export async function s3Streaming(options) {
  const runs = [];
  for (const socketsPerSession of options.socketsPerSession) {
    const cluster = await startCluster({
      gateways: 2,
      workerEnv: workerEnv(options.deltas, options.workerConcurrency),
      ...clusterSettings(options),
    });
    const clients = forkClients(options.clientProcesses, 's3-client');
    try {
      for (const deltasPerSec of options.offeredDeltasPerSec) {
        const rate = deltasPerSec / options.deltas / socketsPerSession;
        log(
          `S3: ${socketsPerSession} socket(s)/session, ${deltasPerSec} deltas/s offered (${round(rate, 1)} chats/s × ${options.deltas} deltas)`,
        );
        const { result } = await chatLoad(cluster, clients, {
          ...options,
          socketsPerSession,
          rate,
          idPrefix: `s3k${socketsPerSession}r${deltasPerSec}`,
        });
        runs.push({ offeredDeltasPerSec: deltasPerSec, ...result });
        await Promise.all(clients.map((c) => c.call('release')));
      }
    } finally {
      await stopClients(clients);
      await cluster.stop();
    }
  }
  return { deltasPerReplyConfigured: options.deltas, runs };
}

// ---------------------------------------------------------------------------------------------

/** S4: SIGKILL a gateway holding N clients; they reconnect (with lastEventId) to the other one. */
export async function s4ReconnectStorm(options) {
  const { clientsTotal, clientProcesses, activeSessions, chatRate, quick } = options;
  const cluster = await startCluster({
    gateways: 2,
    workerEnv: workerEnv(10, options.workerConcurrency),
    ...clusterSettings(options),
  });
  const [victim, survivor] = cluster.gateways;
  const clients = forkClients(clientProcesses, 's4-client');
  try {
    log(`S4: ${clientsTotal} clients on ${victim.name}`);
    const connectStarted = Date.now();
    const ready = await Promise.all(
      clients.map((c, i) =>
        c.call(
          'stormConnect',
          {
            url: victim.wsUrl,
            failoverUrl: survivor.wsUrl,
            count: share(clientsTotal, clientProcesses, i),
            deadlineMs: 300_000,
          },
          300_000,
        ),
      ),
    );
    const connected = sum(ready.map((r) => r.connected));
    const connectMs = Date.now() - connectStarted;
    const chatMs = quick ? 2000 : 6000;
    const startAt = Date.now() + 300;
    const chatting = clients.map((c, i) =>
      c.call(
        'stormChat',
        {
          activeCount: share(activeSessions, clientProcesses, i),
          rate: chatRate / clientProcesses,
          startAt,
          durationMs: chatMs,
          idPrefix: `s4c${i}x`,
        },
        120_000,
      ),
    );
    await sleep(startAt - Date.now() + chatMs / 3);
    const survivorCpuBefore = cpuSnapshot([survivor]);
    log(`S4: SIGKILL ${victim.name} holding ${connected} clients`);
    const killAt = Date.now();
    victim.child.kill('SIGKILL');
    const status = async () => {
      const all = await Promise.all(clients.map((c) => c.call('stormStatus')));
      return Object.fromEntries(
        Object.keys(all[0]).map((key) => [key, sum(all.map((s) => s[key]))]),
      );
    };
    const backDeadline = killAt + (quick ? 15_000 : 30_000);
    let now = await status();
    while (now.back + now.gaveUp < connected && Date.now() < backDeadline) {
      await sleep(50);
      now = await status();
    }
    const survivorCpu = cpuDelta(survivorCpuBefore, cpuSnapshot([survivor]));
    await Promise.all(chatting);
    const answerDeadline = Date.now() + 30_000;
    now = await status();
    while ((now.answered < now.acked || now.acked < now.chats) && Date.now() < answerDeadline) {
      await sleep(100);
      now = await status();
    }
    await sleep(500);
    const reports = await Promise.all(clients.map((c) => c.call('stormReport')));
    const backTimes = reports
      .flatMap((r) => r.backAt)
      .filter((t) => t > 0)
      .map((t) => t - killAt)
      .sort((a, b) => a - b);
    const nth = (fraction) => {
      const needed = Math.ceil(connected * fraction);
      return backTimes.length >= needed && needed > 0 ? backTimes[needed - 1] : null;
    };
    const verified = await Promise.all(
      clients.map((c) =>
        c.call('stormVerify', { redisUrl: cluster.redisUrl, prefix: cluster.prefix }, 120_000),
      ),
    );
    const v = (key) => sum(verified.map((r) => r[key]));
    return {
      clients: connected,
      connectFailures: addCounts(ready.map((r) => r.failures)),
      initialConnectMs: connectMs,
      killed: victim.name,
      back: backTimes.length,
      notBack: connected - backTimes.length,
      msTo99Percent: nth(0.99),
      msTo100Percent: nth(1),
      msToFirst: backTimes[0] ?? null,
      retries: sum(reports.map((r) => r.retries)),
      attemptFailures: addCounts(reports.map((r) => r.failures)),
      closeCodes: addCounts(reports.map((r) => r.closes)),
      survivorCpuMsDuringStorm: round(survivorCpu[survivor.name] ?? 0, 0),
      chats: {
        activeSessions,
        sent: v('chats'),
        unacked: v('unacked'),
        unanswered: v('unanswered'),
        duplicateReplies: v('duplicateReplies'),
        errorReplies: v('errorReplies'),
      },
      events: {
        inStreams: v('streamEvents'),
        received: v('received'),
        lost: v('lost'),
        duplicated: v('duplicated'),
        unknown: v('unknown'),
        outOfOrder: v('outOfOrder'),
        resets: v('resets'),
        lostTypes: addCounts(verified.map((r) => r.lostTypes)),
        lostSamples: verified.flatMap((r) => r.lostSamples).slice(0, 10),
      },
    };
  } finally {
    await stopClients(clients);
    await cluster.stop();
  }
}

// ---------------------------------------------------------------------------------------------

/** S5: /health and /metrics latency, idle and while S2's load runs. */
export async function s5HealthUnderLoad(options) {
  const cluster = await startCluster({
    gateways: 2,
    workerEnv: workerEnv(options.deltas, options.workerConcurrency),
    ...clusterSettings(options),
  });
  const clients = forkClients(options.clientProcesses, 's5-client');
  const [gateway] = cluster.gateways;
  const probe = (startAt, durationMs) =>
    Promise.all([
      probeHttp({
        port: gateway.port,
        path: '/health',
        rate: options.healthRate,
        startAt,
        durationMs,
      }),
      probeHttp({
        port: gateway.port,
        path: '/metrics',
        rate: options.metricsRate,
        startAt,
        durationMs,
      }),
    ]);
  try {
    log('S5: /health and /metrics, idle');
    const [idleHealth, idleMetrics] = await probe(Date.now() + 100, options.idleMs);
    log(`S5: /health and /metrics during ${options.rate} chats/s`);
    const { result, probed } = await chatLoad(cluster, clients, {
      ...options,
      idPrefix: 's5',
      during: (startAt) => probe(startAt + options.warmupMs, options.durationMs),
    });
    const [loadHealth, loadMetrics] = probed;
    return {
      idle: { health: idleHealth, metrics: idleMetrics },
      underLoad: { health: loadHealth, metrics: loadMetrics },
      load: result,
    };
  } finally {
    await stopClients(clients);
    await cluster.stop();
  }
}
