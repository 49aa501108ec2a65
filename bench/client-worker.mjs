// A client process of the benchmark (child_process.fork of bench/run.mjs): holds many WebSocket
// clients and runs open-loop load on them, so that the measuring process is not the one whose
// event loop parses every frame. Commands arrive over IPC: { id, cmd, ...args }; the answer is
// { id, ok, result | error }.
/* global setInterval, clearInterval, performance, URLSearchParams */
import WebSocket from 'ws';
import { parseRedisUrl } from '../packages/config/dist/index.js';
import { createRedis, KeySchema } from '../packages/state/dist/index.js';
import { encodeHistogram, newHistogram, recordMs, sleep } from './lib.mjs';

const ORIGIN = 'http://localhost';
const CONNECT_TIMEOUT_MS = 15_000;

/**
 * Opens a socket; resolves with it at `welcome` (or at the upgrade when `plain`). `onFrame` gets
 * every frame after the welcome, and is set before any can arrive (replay follows the welcome in
 * the same TCP read). Rejects with a short reason.
 */
function openSocket(url, { plain = false, onFrame, onClose } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, headers: { Origin: ORIGIN } });
    let settled = false;
    const fail = (reason) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(new Error(reason));
    };
    const timer = setTimeout(() => fail('timeout'), CONNECT_TIMEOUT_MS);
    const succeed = (welcome) => {
      settled = true;
      clearTimeout(timer);
      resolve({ ws, welcome });
    };
    ws.on('unexpected-response', (_req, res) => fail(`http ${res.statusCode}`));
    ws.on('error', (error) => fail(error.code ?? error.message));
    ws.on('open', () => {
      if (plain) succeed(null);
    });
    ws.on('message', (data) => {
      if (plain) return;
      let frame;
      try {
        frame = JSON.parse(String(data));
      } catch {
        return;
      }
      if (!settled) {
        if (frame.type === 'welcome') succeed(frame);
        else fail(`first frame ${frame.type}`);
        return;
      }
      onFrame?.(frame, ws);
    });
    ws.on('close', (code) => {
      if (!settled) fail(`closed ${code}`);
      else onClose?.(code, ws);
    });
  });
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` at a time. */
async function pool(count, concurrency, task) {
  let next = 0;
  const lanes = Array.from({ length: Math.min(count, concurrency) }, async () => {
    while (next < count) await task(next++);
  });
  await Promise.all(lanes);
}

const bump = (counts, key) => (counts[key] = (counts[key] ?? 0) + 1);

/** Compares two stream ids (`<ms>-<seq>`). */
function compareIds(a, b) {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am - bm || as - bs;
}

const held = [];
let pinger = null;

function startPings(everyMs) {
  if (pinger || !everyMs) return;
  pinger = setInterval(() => {
    for (const ws of held) if (ws.readyState === WebSocket.OPEN) ws.send('{"type":"ping"}');
    for (const s of storm.sessions)
      if (s.ws?.readyState === WebSocket.OPEN) s.ws.send('{"type":"ping"}');
  }, everyMs);
}

// ---------------------------------------------------------------------------------------------
// hold: idle sockets (S1, and the floor's bare uWS server).

async function hold({ urls, count, concurrency = 100, plain = false, pingEveryMs = 20_000 }) {
  const connectTimes = newHistogram();
  const failures = {};
  let connected = 0;
  const started = performance.now();
  await pool(count, concurrency, async (i) => {
    const t = performance.now();
    try {
      const { ws } = await openSocket(urls[i % urls.length], { plain });
      recordMs(connectTimes, performance.now() - t);
      held.push(ws);
      connected++;
    } catch (error) {
      bump(failures, error.message);
    }
  });
  const elapsedMs = performance.now() - started;
  if (!plain) startPings(pingEveryMs);
  return {
    connected,
    failed: count - connected,
    failures,
    elapsedMs,
    connectTimes: encodeHistogram(connectTimes),
  };
}

// ---------------------------------------------------------------------------------------------
// load: sessions with 1..n sockets each, open-loop chats (S2, S3, S5).

const load = { sessions: [], run: null };

function onLoadFrame(frame, socketIndex) {
  const run = load.run;
  if (!run) return;
  run.frames++;
  const now = performance.now();
  const inWindow = now >= run.tStart && now < run.tEnd;
  switch (frame.type) {
    case 'reply.delta': {
      run.deltas++;
      if (inWindow) {
        run.deltasInWindow++;
        // eventIds are Redis stream ids: <ms of the append>-<seq>, on this machine's clock.
        const appended = Number(frame.eventId.slice(0, frame.eventId.indexOf('-')));
        recordMs(run.deltaLatency, Math.max(0, Date.now() - appended));
      }
      return;
    }
    case 'ack': {
      const chat = run.pending.get(frame.id);
      if (chat && !chat.acked) {
        chat.acked = true;
        if (chat.measured) recordMs(run.ack, now - chat.intended);
      }
      return;
    }
    case 'reply.end': {
      if (socketIndex !== 0) return;
      run.ends++;
      if (inWindow) run.endsInWindow++;
      const chat = run.pending.get(frame.replyTo);
      if (!chat) return;
      run.pending.delete(frame.replyTo);
      if (chat.measured) {
        run.completedMeasured++;
        recordMs(run.roundTrip, now - chat.intended);
      }
      return;
    }
    case 'error': {
      if (socketIndex !== 0 && frame.replyTo) return;
      bump(run.errors, frame.code ?? 'unknown');
      const chat = frame.replyTo ? run.pending.get(frame.replyTo) : undefined;
      if (chat) {
        run.pending.delete(frame.replyTo);
        if (chat.measured) run.errorsMeasured++;
      }
      return;
    }
    default:
  }
}

async function loadConnect({ gatewayUrls, sessions, socketsPerSession = 1, concurrency = 50 }) {
  const failures = {};
  const closes = {};
  load.sessions = [];
  await pool(sessions, concurrency, async (i) => {
    const session = { sockets: [] };
    const onClose = (code) => bump(closes, code);
    try {
      for (let j = 0; j < socketsPerSession; j++) {
        const base = gatewayUrls[(i + j) % gatewayUrls.length];
        const url =
          j === 0
            ? base
            : `${base}?session=${encodeURIComponent(session.id)}&token=${encodeURIComponent(session.token)}`;
        const { ws, welcome } = await openSocket(url, {
          onFrame: (frame) => onLoadFrame(frame, j),
          onClose,
        });
        if (j === 0) {
          session.id = welcome.sessionId;
          session.token = welcome.token;
        }
        session.sockets.push(ws);
      }
      load.sessions.push(session);
    } catch (error) {
      bump(failures, error.message);
      for (const ws of session.sockets) ws.terminate();
    }
  });
  load.closes = closes;
  startPings(20_000);
  return { sessions: load.sessions.length, failures };
}

/**
 * Sends chats at `rate` per second from `startAt` (epoch ms): send k is due at t0 + k/rate and
 * its latency counts from that instant, whenever it actually left. Sends due in
 * [warmup, warmup + duration) are measured. Then waits up to `drainMs` for the answers; a measured
 * chat still unanswered is recorded at its age then (a lower bound) and counted incomplete.
 */
async function loadRun({ rate, startAt, warmupMs, durationMs, drainMs, text, idPrefix }) {
  const sessions = load.sessions;
  if (sessions.length === 0) throw new Error('no sessions');
  const t0 = performance.now() + (startAt - Date.now());
  const run = {
    tStart: t0 + warmupMs,
    tEnd: t0 + warmupMs + durationMs,
    pending: new Map(),
    roundTrip: newHistogram(),
    ack: newHistogram(),
    deltaLatency: newHistogram(),
    sendLag: newHistogram(),
    errors: {},
    errorsMeasured: 0,
    completedMeasured: 0,
    frames: 0,
    deltas: 0,
    deltasInWindow: 0,
    ends: 0,
    endsInWindow: 0,
    sent: 0,
    sentMeasured: 0,
    notSent: 0,
  };
  load.run = run;
  const total = Math.max(1, Math.floor((rate * (warmupMs + durationMs)) / 1000));
  const due = (k) => t0 + (k * 1000) / rate;
  let cpuStart = null;
  let cpuWindow = null;
  setTimeout(() => (cpuStart = process.cpuUsage()), Math.max(0, run.tStart - performance.now()));
  setTimeout(
    () => (cpuWindow = process.cpuUsage(cpuStart ?? undefined)),
    Math.max(0, run.tEnd - performance.now()),
  );
  let k = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (k < total && due(k) <= now) {
        const intended = due(k);
        const session = sessions[k % sessions.length];
        const id = `${idPrefix}${k}`;
        k++;
        const ws = session.sockets[0];
        const measured = intended >= run.tStart && intended < run.tEnd;
        recordMs(run.sendLag, now - intended);
        if (ws.readyState !== WebSocket.OPEN) {
          run.notSent++;
          bump(run.errors, 'socket_closed');
          continue;
        }
        run.pending.set(id, { intended, measured, acked: false });
        ws.send(JSON.stringify({ type: 'chat', id, text }));
        run.sent++;
        if (measured) run.sentMeasured++;
      }
      if (k >= total) resolve();
      else setTimeout(tick, Math.max(1, Math.floor(due(k) - performance.now())));
    };
    setTimeout(tick, Math.max(0, t0 - performance.now()));
  });
  // The window's figures (CPU, counts) close at tEnd even when every answer came before it.
  while (performance.now() < run.tEnd + 5)
    await sleep(Math.max(1, run.tEnd + 5 - performance.now()));
  const deadline = due(total - 1) + drainMs;
  while (run.pending.size > 0 && performance.now() < deadline) await sleep(20);
  const end = performance.now();
  let incomplete = 0;
  for (const chat of run.pending.values()) {
    if (!chat.measured) continue;
    incomplete++;
    recordMs(run.roundTrip, end - chat.intended);
  }
  load.run = null;
  return {
    sent: run.sent,
    sentMeasured: run.sentMeasured,
    notSent: run.notSent,
    completedMeasured: run.completedMeasured,
    incomplete,
    errors: run.errors,
    errorsMeasured: run.errorsMeasured,
    ends: run.ends,
    endsInWindow: run.endsInWindow,
    deltas: run.deltas,
    deltasInWindow: run.deltasInWindow,
    frames: run.frames,
    closes: load.closes,
    clientCpuMs: cpuWindow ? (cpuWindow.user + cpuWindow.system) / 1000 : null,
    roundTrip: encodeHistogram(run.roundTrip),
    ack: encodeHistogram(run.ack),
    deltaLatency: encodeHistogram(run.deltaLatency),
    sendLag: encodeHistogram(run.sendLag),
  };
}

// ---------------------------------------------------------------------------------------------
// storm: clients of one gateway that reconnect to another when it dies (S4), with chats in flight;
// every session event is checked against the session's stream in Redis at the end.

const storm = {
  sessions: [],
  chats: new Map(),
  failoverUrl: '',
  releasing: false,
  deadline: 0,
  failures: {},
  closes: {},
  retries: 0,
};

function onStormFrame(s, frame) {
  if (frame.eventId !== undefined && frame.type !== 'ack') {
    if (s.seen.has(frame.eventId)) {
      s.duplicates++;
      return;
    }
    if (s.lastEventId && compareIds(frame.eventId, s.lastEventId) < 0) s.outOfOrder++;
    s.seen.add(frame.eventId);
    if (!s.lastEventId || compareIds(frame.eventId, s.lastEventId) > 0)
      s.lastEventId = frame.eventId;
  }
  switch (frame.type) {
    case 'ack': {
      const chat = storm.chats.get(frame.id);
      if (chat) chat.acked = true;
      return;
    }
    case 'reply.end': {
      const chat = storm.chats.get(frame.replyTo);
      if (chat) chat.ends++;
      return;
    }
    case 'error': {
      const chat = frame.replyTo ? storm.chats.get(frame.replyTo) : undefined;
      if (chat) chat.errors++;
      bump(storm.failures, `error ${frame.code}`);
      return;
    }
    case 'reset':
      s.resets++;
      return;
    default:
  }
}

function stormOpen(s, url) {
  return openSocket(url, {
    onFrame: (frame) => onStormFrame(s, frame),
    onClose: (code, ws) => {
      if (storm.releasing || ws !== s.ws) return;
      bump(storm.closes, code);
      s.closedAt = Date.now();
      s.ws = null;
      void reconnect(s);
    },
  });
}

function sendChat(s, id, via) {
  const open = s.ws?.readyState === WebSocket.OPEN;
  storm.chats.get(id).sends.push({ at: Date.now(), via, open });
  if (open) s.ws.send(JSON.stringify({ type: 'chat', id, text: 'storm' }));
}

async function reconnect(s) {
  // As @chorus/client after a 1006: the first attempt after a full-jitter delay of [0, 250) ms.
  await sleep(Math.random() * 250);
  for (let attempt = 0; !storm.releasing && Date.now() < storm.deadline; attempt++) {
    const params = new URLSearchParams({ session: s.id, token: s.token });
    // Like @chorus/client: a client that has seen no event yet asks for all of them ('0-0').
    params.set('lastEventId', s.lastEventId || '0-0');
    try {
      const { ws } = await stormOpen(s, `${storm.failoverUrl}?${params}`);
      s.ws = ws;
      s.backAt = Date.now();
      s.reconnects++;
      // A chat whose ack never came is sent again: chat is idempotent on (session, id).
      for (const id of s.chatIds) if (!storm.chats.get(id).acked) sendChat(s, id, 'resend');
      return;
    } catch (error) {
      storm.retries++;
      bump(storm.failures, error.message);
      const backoff = Math.min(2000, 50 * 2 ** Math.min(attempt, 6));
      await sleep(backoff * (0.5 + Math.random()));
    }
  }
  s.gaveUp = true;
}

async function stormConnect({ url, failoverUrl, count, concurrency = 100, deadlineMs }) {
  storm.failoverUrl = failoverUrl;
  storm.deadline = Date.now() + deadlineMs;
  const failures = {};
  await pool(count, concurrency, async () => {
    const s = {
      ws: null,
      id: '',
      token: '',
      lastEventId: '',
      seen: new Set(),
      duplicates: 0,
      outOfOrder: 0,
      resets: 0,
      reconnects: 0,
      chatIds: [],
      closedAt: 0,
      backAt: 0,
      gaveUp: false,
    };
    try {
      const { ws, welcome } = await stormOpen(s, url);
      s.ws = ws;
      s.id = welcome.sessionId;
      s.token = welcome.token;
      storm.sessions.push(s);
    } catch (error) {
      bump(failures, error.message);
    }
  });
  startPings(20_000);
  return { connected: storm.sessions.length, failures };
}

/** Open-loop chats over the first `activeCount` sessions; a chat due while its socket is down waits for the reconnect. */
async function stormChat({ activeCount, rate, startAt, durationMs, idPrefix }) {
  const active = storm.sessions.slice(0, activeCount);
  if (active.length === 0) return { sent: 0 };
  const total = Math.floor((rate * durationMs) / 1000);
  const t0 = performance.now() + (startAt - Date.now());
  let k = 0;
  await new Promise((resolve) => {
    const tick = () => {
      while (k < total && t0 + (k * 1000) / rate <= performance.now()) {
        const s = active[k % active.length];
        const id = `${idPrefix}${k++}`;
        storm.chats.set(id, { acked: false, ends: 0, errors: 0, sends: [] });
        s.chatIds.push(id);
        sendChat(s, id, 'first');
      }
      if (k >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  return { sent: total };
}

function stormStatus() {
  let back = 0;
  let gaveUp = 0;
  let open = 0;
  for (const s of storm.sessions) {
    if (s.backAt) back++;
    if (s.gaveUp) gaveUp++;
    if (s.ws?.readyState === WebSocket.OPEN) open++;
  }
  let answered = 0;
  let acked = 0;
  for (const chat of storm.chats.values()) {
    if (chat.acked) acked++;
    if (chat.acked && chat.ends + chat.errors > 0) answered++;
  }
  return {
    sessions: storm.sessions.length,
    back,
    gaveUp,
    open,
    chats: storm.chats.size,
    acked,
    answered,
  };
}

/** Back times (epoch ms) of every reconnected socket, and why attempts failed. */
function stormReport() {
  return {
    backAt: storm.sessions.map((s) => s.backAt),
    closedAt: storm.sessions.map((s) => s.closedAt),
    failures: storm.failures,
    closes: storm.closes,
    retries: storm.retries,
  };
}

/** Compares what each client saw with its session's event stream in Redis. */
async function stormVerify({ redisUrl, prefix }) {
  const keys = new KeySchema(prefix);
  // The product's connection: one server or a Redis Cluster, as REDIS_URL says.
  const redis = createRedis(parseRedisUrl(redisUrl), { name: 'bench:verify' });
  const result = {
    sessions: storm.sessions.length,
    streamEvents: 0,
    received: 0,
    lost: 0,
    unknown: 0,
    duplicated: 0,
    outOfOrder: 0,
    resets: 0,
    chats: storm.chats.size,
    unacked: 0,
    unanswered: 0,
    duplicateReplies: 0,
    errorReplies: 0,
    lostTypes: {},
    // What happened around each lost event (times in ms from the session's reconnect).
    lostSamples: [],
  };
  try {
    for (let i = 0; i < storm.sessions.length; i += 200) {
      const batch = storm.sessions.slice(i, i + 200);
      // Not one pipeline: on a Redis Cluster, the sessions' streams live on different nodes.
      const replies = await Promise.all(
        batch.map((s) => redis.xrange(keys.session(s.id).events, '-', '+')),
      );
      batch.forEach((s, j) => {
        const entries = replies[j];
        const ids = new Set();
        for (const [id, fields] of entries) {
          ids.add(id);
          if (!s.seen.has(id)) {
            result.lost++;
            const body = fields[fields.indexOf('e') + 1] ?? '';
            const type = /"type":"([^"]+)"/.exec(body)?.[1] ?? 'unknown';
            bump(result.lostTypes, type);
            if (result.lostSamples.length < 10) {
              const chatId = /"id":"([^"]+)"/.exec(body)?.[1];
              const rel = (t) => (t && s.backAt ? t - s.backAt : null);
              result.lostSamples.push({
                eventId: id,
                type,
                appendedMsFromReconnect: rel(Number(id.split('-')[0])),
                closedMsFromReconnect: rel(s.closedAt),
                lastEventIdAtEnd: s.lastEventId,
                chat: chatId,
                sends: (storm.chats.get(chatId)?.sends ?? []).map((send) => ({
                  ...send,
                  at: rel(send.at),
                })),
              });
            }
          }
        }
        for (const id of s.seen) if (!ids.has(id)) result.unknown++;
        result.streamEvents += ids.size;
        result.received += s.seen.size;
        result.duplicated += s.duplicates;
        result.outOfOrder += s.outOfOrder;
        result.resets += s.resets;
      });
    }
  } finally {
    redis.disconnect();
  }
  for (const chat of storm.chats.values()) {
    if (!chat.acked) result.unacked++;
    else if (chat.ends + chat.errors === 0) result.unanswered++;
    if (chat.ends > 1) result.duplicateReplies += chat.ends - 1;
    if (chat.errors > 0) result.errorReplies++;
  }
  return result;
}

// ---------------------------------------------------------------------------------------------

function release() {
  storm.releasing = true;
  if (pinger) clearInterval(pinger);
  pinger = null;
  for (const ws of held) ws.terminate();
  held.length = 0;
  for (const session of load.sessions) for (const ws of session.sockets) ws.terminate();
  load.sessions = [];
  for (const s of storm.sessions) s.ws?.terminate();
  return { released: true, rss: process.memoryUsage().rss };
}

const commands = {
  hold,
  loadConnect,
  loadRun,
  stormConnect,
  stormChat,
  stormStatus,
  stormReport,
  stormVerify,
  release,
  usage: () => ({ rss: process.memoryUsage().rss }),
};

process.on('message', (message) => {
  const { id, cmd, ...args } = message;
  Promise.resolve()
    .then(() => commands[cmd](args))
    .then(
      (result) => process.send({ id, ok: true, result }),
      (error) => process.send({ id, ok: false, error: String(error?.stack ?? error) }),
    );
});
process.on('disconnect', () => process.exit(0));
