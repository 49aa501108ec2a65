import { connect } from 'node:net';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareEventIds } from '../packages/protocol/dist/index.js';
import { TestCluster } from './support/test-cluster.js';

interface Frame {
  type: string;
  eventId?: string;
  replyTo?: string;
  text?: string;
  id?: string;
  sessionId?: string;
  token?: string;
}

/** A socket to the cluster's first gateway, with the frames it receives and its close code. */
function openSocket(cluster: TestCluster, query = '') {
  const socket = new WebSocket(`${cluster.gateway(0).wsUrl}${query}`, {
    headers: { Origin: 'http://localhost:8080' },
  });
  const frames: Frame[] = [];
  const closed = new Promise<number>((resolve) => socket.on('close', resolve));
  socket.on('message', (data: Buffer) => frames.push(JSON.parse(data.toString('utf8')) as Frame));
  return { socket, frames, closed };
}

/** The first number the gateway's /metrics shows for `pattern` (its group 1), else 0. */
async function metric(cluster: TestCluster, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${cluster.gateway(0).url}/metrics`)).text();
  return Number(pattern.exec(text)?.[1] ?? 0);
}

const slowConsumerSteps = (cluster: TestCluster, step: string) =>
  metric(cluster, new RegExp(`chorus_ws_slow_consumer_total\\{step="${step}"[^}]*\\} (\\d+)`));

/** The session events among `frames` (an ack's eventId is its message's), in arrival order. */
const eventIdsOf = (frames: Frame[]) =>
  frames.flatMap((f) => (f.eventId && f.type !== 'ack' ? [f.eventId] : []));

/** The warnings and errors the cluster's processes logged, the last 20, one per line. */
function troubles(cluster: TestCluster): string {
  const lines = [...cluster.gateways, ...cluster.workers].flatMap((p) =>
    p.logs
      .filter((line) => ['warn', 'error', 'fatal'].includes(line.level))
      .map((line) => `${p.name}: ${JSON.stringify(line)}`),
  );
  return lines.slice(-20).join('\n') || 'none';
}

/** What the echo model answers to `question` with `deltas` deltas. */
const echoOf = (question: string, deltas: number) =>
  `echo: ${question}${Array.from({ length: deltas - 1 }, (_, k) => ` ${k + 1}`).join('')}`;

/**
 * A socket that stops reading must not lose frames silently. Live events for a socket that falls
 * behind are held, consecutive deltas merged, and sent as it drains; once MAX_BACKPRESSURE_BYTES
 * wait for it anyway, the gateway closes it (4413). A replay waits for the socket to drain; a
 * client that stops reading and sending is closed by the heartbeat rule (4408). Either way its
 * client resumes from the log with nothing missing.
 */
describe('slow consumer', () => {
  let cluster: TestCluster;
  const MESSAGES = 1_000;
  const TEXT = 'x'.repeat(15_000);

  beforeAll(async () => {
    cluster = await TestCluster.start({
      gateways: 1,
      workers: 0,
      gatewayEnv: {
        MAX_BACKPRESSURE_BYTES: '1048576',
        CHAT_BURST: '0',
        EVENTS_MAXLEN: '5000',
        HEARTBEAT_MS: '1000',
      },
    });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const count = (pattern: RegExp) => metric(cluster, pattern);

  /** Stores MESSAGES large chats in one session, ten at a time; resolves with its credentials. */
  const fillSession = () =>
    new Promise<{ session: string; token: string }>((resolve, reject) => {
      const writer = openSocket(cluster).socket;
      let acks = 0;
      let credentials = { session: '', token: '' };
      const sendBatch = () => {
        for (let i = acks; i < acks + 10; i++)
          writer.send(JSON.stringify({ type: 'chat', id: `m${i}`, text: TEXT }));
      };
      writer.on('message', (data: Buffer) => {
        const frame = JSON.parse(data.toString('utf8')) as {
          type: string;
          sessionId?: string;
          token?: string;
        };
        if (frame.type === 'welcome') {
          credentials = { session: frame.sessionId ?? '', token: frame.token ?? '' };
          sendBatch();
        } else if (frame.type === 'ack' && ++acks % 10 === 0) {
          if (acks < MESSAGES) sendBatch();
          else writer.close();
        }
      });
      writer.on('close', () =>
        acks === MESSAGES
          ? resolve(credentials)
          : reject(new Error(`writer closed after ${acks} acks`)),
      );
    });

  /** The filled session, shared by the tests below (filled by whichever runs first). */
  let filling: Promise<{ session: string; token: string }> | undefined;
  const filledSession = () => (filling ??= fillSession());

  it('paces a replay to a socket that stops reading; silent, it is closed with 4408; its client then replays everything', async () => {
    const { session, token } = await filledSession();
    const query = `?${new URLSearchParams({ session, token, lastEventId: '0-0' }).toString()}`;

    // A client that asks for the whole log (about 15 MB) and then reads nothing.
    const stalled = connect(cluster.gateway(0).port, '127.0.0.1', () => {
      stalled.write(
        `GET /ws${query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      stalled.pause();
    });
    const closedSilent = /chorus_ws_connections_closed_total\{code="4408"[^}]*\} (\d+)/;
    await expect.poll(() => count(closedSilent), { timeout: 30_000, interval: 250 }).toBe(1);
    expect(await count(/chorus_ws_connections_closed_total\{code="1006"[^}]*\} (\d+)/)).toBe(0);
    await expect.poll(() => count(/^chorus_ws_connections\{[^}]*\} (\d+)/m)).toBe(0);
    stalled.destroy();

    // The same client, back and reading, gets every message once.
    const reader = openSocket(cluster, query).socket;
    const pings = setInterval(() => reader.send(JSON.stringify({ type: 'ping' })), 300);
    const ids = new Set<string>();
    let received = 0;
    reader.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString('utf8')) as { type: string; id?: string };
      if (frame.type !== 'user.message') return;
      received++;
      ids.add(frame.id ?? '');
    });
    await expect.poll(() => received, { timeout: 30_000, interval: 100 }).toBe(MESSAGES);
    expect(ids.size).toBe(MESSAGES);
    clearInterval(pings);
    reader.terminate();
  });

  it('a client that stops reading a replay but keeps sending is closed with 4429, not buffered, and gets that code when it reads again seconds later', async () => {
    const { session, token } = await filledSession();
    const query = `?${new URLSearchParams({ session, token, lastEventId: '0-0' }).toString()}`;
    const { socket, frames, closed } = openSocket(cluster, query);
    await new Promise((resolve) => socket.once('open', resolve));
    socket.pause(); // reads nothing: the replay of about 15 MB soon waits for the socket to drain
    await expect
      .poll(() => count(/^chorus_ws_backpressure_events_total\{[^}]*\} (\d+)/m), {
        timeout: 10_000,
      })
      .toBeGreaterThan(0);
    const before = await count(/chorus_ws_errors_total\{reason="rate_limited"[^}]*\} (\d+)/);
    // Frames sent meanwhile wait for the replay; 9 MB of them is more than a client may queue.
    for (let i = 0; i < 200; i++)
      socket.send(JSON.stringify({ type: 'chat', id: `q${i}`, text: TEXT.repeat(3) }));
    await expect
      .poll(() => count(/chorus_ws_errors_total\{reason="rate_limited"[^}]*\} (\d+)/), {
        timeout: 10_000,
      })
      .toBe(before + 1);
    // It reads its close frame seconds later and still gets the code, not a reset (1006).
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    socket.resume();
    expect(await closed).toBe(4429);
    expect(frames.filter((f) => f.type === 'ack')).toEqual([]); // none of them was handled
  });

  // Last: it adds messages to the shared session, which the tests above count.
  it('a replay stalled on a reader while its session goes on holds few live events, then delivers every event once, in order', async () => {
    const { session, token } = await filledSession();
    const backpressured = () => count(/^chorus_ws_backpressure_events_total\{[^}]*\} (\d+)/m);
    const dropped = () => slowConsumerSteps(cluster, 'catch_up_dropped');
    const [backpressureBefore, droppedBefore] = [await backpressured(), await dropped()];

    // A reader that asks for the whole log, then reads nothing but keeps pinging.
    const replayQuery = new URLSearchParams({ session, token, lastEventId: '0-0' }).toString();
    const reader = openSocket(cluster, `?${replayQuery}`);
    await new Promise((resolve) => reader.socket.once('open', resolve));
    reader.socket.pause();
    const pings = setInterval(() => reader.socket.send(JSON.stringify({ type: 'ping' })), 300);
    try {
      await expect.poll(backpressured, { timeout: 10_000 }).toBeGreaterThan(backpressureBefore);

      // Meanwhile the session goes on: 400 more messages from a second socket, ten at a time.
      const writer = openSocket(cluster, `?${new URLSearchParams({ session, token }).toString()}`);
      const MORE = 400;
      let acks = 0;
      const sendBatch = () => {
        for (let i = acks; i < acks + 10; i++)
          writer.socket.send(JSON.stringify({ type: 'chat', id: `later${i}`, text: `more ${i}` }));
      };
      writer.socket.on('message', (data: Buffer) => {
        const { type } = JSON.parse(data.toString('utf8')) as Frame;
        if (type === 'welcome') sendBatch();
        else if (type === 'ack' && ++acks % 10 === 0 && acks < MORE) sendBatch();
      });
      await expect.poll(() => acks, { timeout: 20_000 }).toBe(MORE);
      writer.socket.close();
      // Over 256 of them waited for the stalled replay: dropped, to be read from the log.
      expect(await dropped()).toBeGreaterThan(droppedBefore);

      reader.socket.resume();
      const last = () =>
        reader.frames.some((f) => f.type === 'user.message' && f.id === `later${MORE - 1}`);
      await expect.poll(last, { timeout: 30_000, interval: 100 }).toBe(true);
      const stored = await cluster.redis().xrange(cluster.keys.session(session).events, '-', '+');
      expect(eventIdsOf(reader.frames)).toEqual(stored.map(([eventId]) => eventId));
      expect(reader.socket.readyState).toBe(WebSocket.OPEN);
    } finally {
      clearInterval(pings);
      reader.socket.terminate();
    }
  }, 90_000);
});

describe('slow consumer of live deltas', () => {
  let cluster: TestCluster;
  const CHATS = 30;
  const DELTAS = 2_000; // per reply: "echo: <question>", then " 1", " 2", … as separate deltas

  beforeAll(async () => {
    cluster = await TestCluster.start({
      gateways: 1,
      workers: 1,
      gatewayEnv: { MAX_BACKPRESSURE_BYTES: '1048576', CHAT_BURST: '0' },
      workerEnv: { MODEL_PROVIDER: 'echo', ECHO_DELTAS: String(DELTAS), DELTA_FLUSH_MS: '0' },
    });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const steps = (step: string) => slowConsumerSteps(cluster, step);

  it('a socket that pauses mid-stream gets merged deltas, the whole text, and stays open', async () => {
    const { socket: reader, frames } = openSocket(cluster);
    let closed: number | undefined;
    reader.on('close', (code) => (closed = code));
    await expect.poll(() => frames.length, { timeout: 10_000 }).toBeGreaterThan(0);

    for (let i = 0; i < CHATS; i++) {
      reader.send(JSON.stringify({ type: 'chat', id: `c${i}`, text: `question ${i}` }));
    }
    // Stops reading while ~20 × 4,000 deltas (≈ 5 MB of frames) stream, then reads again.
    reader.pause();
    await expect.poll(() => steps('held'), { timeout: 30_000, interval: 200 }).toBeGreaterThan(0);
    await expect.poll(() => steps('merged'), { timeout: 30_000, interval: 200 }).toBeGreaterThan(0);
    reader.resume();

    // What the client sees: every reply's end, no error, the socket open.
    const seen = () => ({
      ends: frames.filter((f) => f.type === 'reply.end').length,
      errors: frames.filter((f) => f.type === 'error'),
      closed,
    });
    await expect
      .poll(seen, { timeout: 60_000, interval: 200 })
      .toEqual({ ends: CHATS, errors: [], closed: undefined })
      .catch((error: Error) => {
        // One CI run got 24 of 30 replies in 60 s, for a cause not found: say what the services saw.
        error.message += `\nwarnings and errors the services logged:\n${troubles(cluster)}`;
        throw error;
      });
    expect(await steps('caught_up')).toBeGreaterThan(0);
    expect(await steps('closed')).toBe(0);

    const ids = eventIdsOf(frames);
    expect(ids).toEqual([...ids].sort(compareEventIds));
    expect(new Set(ids).size).toBe(ids.length);
    let deltaFrames = 0;
    for (let i = 0; i < CHATS; i++) {
      const mine = frames.filter((f) => f.replyTo === `c${i}`);
      const deltas = mine.filter((f) => f.type === 'reply.delta');
      deltaFrames += deltas.length;
      const end = mine.find((f) => f.type === 'reply.end');
      const expected = echoOf(`question ${i}`, DELTAS);
      expect(deltas.map((f) => f.text).join('')).toBe(expected);
      expect(end?.text).toBe(expected);
    }
    expect(deltaFrames).toBeLessThan(CHATS * DELTAS); // some were merged
    reader.close();
  }, 120_000);
});

describe('slow consumer that falls too far behind', () => {
  let cluster: TestCluster;
  const CHATS = 300;
  // Each chat's user.message and echoed reply carry its 15 KB text: ≈ 9 MB in all, past what the
  // kernel's socket buffers hold, and 30 KB per chat held even with the deltas merged.
  const TEXT = 'x'.repeat(15_000);

  beforeAll(async () => {
    cluster = await TestCluster.start({
      gateways: 1,
      workers: 1,
      env: { EVENTS_MAXLEN: '20000' },
      gatewayEnv: { MAX_BACKPRESSURE_BYTES: '262144', CHAT_BURST: '0' },
      workerEnv: { MODEL_PROVIDER: 'echo', ECHO_DELTAS: '10', DELTA_FLUSH_MS: '0' },
    });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const open = (query = '') => openSocket(cluster, query);

  it('is closed with 4413, then resumes from its lastEventId with every reply whole', async () => {
    const first = open();
    await expect.poll(() => first.frames.length, { timeout: 10_000 }).toBeGreaterThan(0);
    const { sessionId: session = '', token = '' } = first.frames[0]!;
    for (let i = 0; i < CHATS; i++) {
      first.socket.send(JSON.stringify({ type: 'chat', id: `c${i}`, text: `${i} ${TEXT}` }));
    }
    first.socket.pause();
    await expect
      .poll(() => slowConsumerSteps(cluster, 'closed'), { timeout: 30_000, interval: 200 })
      .toBe(1);
    first.socket.resume();
    expect(await first.closed).toBe(4413);

    const lastEventId = eventIdsOf(first.frames).at(-1)!;
    const second = open(`?${new URLSearchParams({ session, token, lastEventId }).toString()}`);
    // Like @chorus/client: chats the first socket never got an ack for are sent again.
    const acked = new Set(first.frames.filter((f) => f.type === 'ack').map((f) => f.id));
    await expect.poll(() => second.frames.length, { timeout: 10_000 }).toBeGreaterThan(0);
    for (let i = 0; i < CHATS; i++) {
      if (!acked.has(`c${i}`)) {
        second.socket.send(JSON.stringify({ type: 'chat', id: `c${i}`, text: `${i} ${TEXT}` }));
      }
    }
    const ends = () => [...first.frames, ...second.frames].filter((f) => f.type === 'reply.end');
    await expect.poll(() => ends().length, { timeout: 60_000, interval: 200 }).toBe(CHATS);
    // As the client sees it: every event once, in order across the two sockets, every reply whole.
    const all = [...first.frames, ...second.frames];
    const ids = eventIdsOf(all);
    expect(ids).toEqual([...ids].sort(compareEventIds));
    expect(new Set(ids).size).toBe(ids.length);
    for (let i = 0; i < CHATS; i++) {
      const mine = all.filter((f) => f.replyTo === `c${i}`);
      const deltas = mine
        .filter((f) => f.type === 'reply.delta')
        .map((f) => f.text)
        .join('');
      const expected = echoOf(`${i} ${TEXT}`, 10);
      expect(deltas).toBe(expected);
      expect(mine.filter((f) => f.type === 'reply.end').map((f) => f.text)).toEqual([expected]);
    }
    second.socket.close();
  }, 120_000);
});
