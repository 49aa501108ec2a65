import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareEventIds } from '../packages/protocol/dist/index.js';
import { FakeOpenAI } from './support/fake-openai.js';
import type { WorkerProcess } from './support/service-process.js';
import { TestBrowser, type Frame } from './support/test-browser.js';
import { TestCluster } from './support/test-cluster.js';

/**
 * The worker against a real model API (our fake OpenAI server, through the real `openai` SDK):
 * streaming, retries, failures that must end in exactly one `error`, hung models, ordering
 * across workers, and a worker killed mid-reply. The coordinator routes each message with a
 * request of its own before the answer; the fake fails those the same way. The circuit breaker
 * is kept out of the way here (agent-team.test.ts tests it).
 */
describe('model failures', () => {
  let fake: FakeOpenAI;
  let cluster: TestCluster;
  /** A worker that gives up on the model after 1 s, without retries. */
  let impatient: TestCluster;
  const browsers: TestBrowser[] = [];
  const nonce = randomBytes(3).toString('hex');

  const modelEnv = (fakeServer: FakeOpenAI) => ({
    OPENAI_API_KEY: 'test-key',
    OPENAI_BASE_URL: fakeServer.baseURL,
    OPENAI_MODEL: 'fake-model',
    LLM_BREAKER_THRESHOLD: '1000',
  });

  beforeAll(async () => {
    fake = await FakeOpenAI.start();
    [cluster, impatient] = await Promise.all([
      TestCluster.start({
        gateways: 1,
        workers: 1,
        workerEnv: { ...modelEnv(fake), LLM_MAX_RETRIES: '2', LEASE_TTL_MS: '3000' },
      }),
      TestCluster.start({
        gateways: 1,
        workers: 1,
        workerEnv: { ...modelEnv(fake), LLM_TIMEOUT_MS: '1000', LLM_MAX_RETRIES: '0' },
      }),
    ]);
  });
  afterAll(async () => {
    for (const browser of browsers) browser.terminate();
    await Promise.all([cluster?.stop(), impatient?.stop()]);
    await fake?.stop();
  });

  const open = async (on: TestCluster = cluster) => {
    const { browser } = await TestBrowser.open(on.gateway(0).wsUrl);
    browsers.push(browser);
    return browser;
  };
  /** The answer requests (not routing) the fake model got whose last user message is `text`. */
  const requestsFor = (text: string) =>
    fake.answerRequests().filter((r) => r.messages.at(-1)?.content === text);
  /** The coordinator's routing requests for `text`. */
  const routeRequestsFor = (text: string) =>
    fake.routeRequests().filter((r) => r.messages.at(-1)?.content === text);
  const framesFor = (browser: TestBrowser, id: string, type?: string) =>
    browser.frames.filter((f) => f.replyTo === id && (type === undefined || f.type === type));
  const idleAfter = (browser: TestBrowser, frame: Frame, timeoutMs = 10_000) =>
    browser.waitFor(
      (f) => f.type === 'status' && f.state === 'idle',
      timeoutMs,
      browser.frames.indexOf(frame) + 1,
    );
  const failureOf = (browser: TestBrowser, id: string, timeoutMs = 15_000) =>
    browser.waitFor(
      (f) => (f.type === 'error' || f.type === 'reply.end') && f.replyTo === id,
      timeoutMs,
    );
  const expectEcho = async (browser: TestBrowser, id: string, text: string, timeoutMs?: number) => {
    const reply = await browser.reply(id, timeoutMs);
    expect(reply.end.text).toBe(`Echo: ${text}`);
    expect(reply.deltas).toBe(reply.end.text);
    return reply;
  };

  it('streams a model answer through the SDK and sends the conversation as history', async () => {
    const browser = await open();
    const first = `hello model ${nonce}`;
    browser.chat('s1', first);
    await expect(browser.next('ack')).resolves.toMatchObject({
      id: 's1',
      eventId: expect.stringMatching(/^\d+-\d+$/),
    });
    const reply = await expectEcho(browser, 's1', first);
    expect(reply.start).toMatchObject({ type: 'reply.start', replyTo: 's1', agent: 'tutor' });
    expect(reply.end).toMatchObject({
      agent: 'tutor',
      agents: ['tutor'],
      // The coordinator's route call (10/5) and the tutor's answer (10/4).
      usage: { inputTokens: 20, outputTokens: 9 },
    });
    expect(reply.end).not.toHaveProperty('offline');
    expect(framesFor(browser, 's1', 'reply.delta').length).toBeGreaterThan(0);
    await idleAfter(browser, reply.end);

    const [request, ...more] = requestsFor(first);
    expect(more).toEqual([]);
    expect(request).toMatchObject({ model: 'fake-model', stream: true });
    expect(request?.messages).toEqual([
      { role: 'system', content: expect.stringContaining('You are the tutor of Chorus') },
      { role: 'user', content: first },
    ]);
    expect(routeRequestsFor(first)).toHaveLength(1);

    const second = `and a follow-up ${nonce}`;
    browser.chat('s2', second);
    await expectEcho(browser, 's2', second);
    expect(requestsFor(second).map((r) => r.messages)).toEqual([
      [
        { role: 'system', content: expect.stringContaining('You are the tutor of Chorus') },
        { role: 'user', content: first },
        { role: 'assistant', content: `Echo: ${first}` },
        { role: 'user', content: second },
      ],
    ]);
  });

  it('a 429 is retried and the client sees one ordinary reply', async () => {
    const browser = await open();
    const text = `FAIL429ONCE ${nonce}`;
    browser.chat('r1', text);
    await expectEcho(browser, 'r1', text);
    // The coordinator's request and the tutor's each get one 429, then succeed.
    expect(routeRequestsFor(text)).toHaveLength(2);
    expect(requestsFor(text)).toHaveLength(2);
    expect(framesFor(browser, 'r1', 'reply.start')).toHaveLength(1);
    expect(framesFor(browser, 'r1', 'error')).toEqual([]);
  });

  it('a model that keeps failing ends in llm_unavailable, then idle, and the session goes on', async () => {
    const browser = await open();
    const text = `FAIL500 ${nonce}`;
    browser.chat('f1', text);
    const error = await failureOf(browser, 'f1');
    expect(error).toMatchObject({
      type: 'error',
      code: 'llm_unavailable',
      replyTo: 'f1',
      eventId: expect.stringMatching(/^\d+-\d+$/),
      message: expect.any(String),
    });
    await idleAfter(browser, error);
    expect(requestsFor(text)).toHaveLength(3); // 1 + LLM_MAX_RETRIES
    expect(routeRequestsFor(text)).toHaveLength(3); // routing failed too, then keywords routed
    expect(framesFor(browser, 'f1', 'reply.end')).toEqual([]);

    const next = `after the outage ${nonce}`;
    browser.chat('f2', next);
    await expectEcho(browser, 'f2', next);
    expect(framesFor(browser, 'f1', 'error')).toHaveLength(1);
  });

  it('an exception in the worker ends in internal (no stack trace), then idle, and the session goes on', async () => {
    const browser = await open();
    browser.chat('b1', `BOOM ${nonce}`);
    const error = await failureOf(browser, 'b1');
    expect(error).toMatchObject({ type: 'error', code: 'internal', replyTo: 'b1' });
    expect(String(error.message)).not.toMatch(/\n|\bat \S+:\d+|SyntaxError|JSON|\.js\b|\.ts\b/);
    await idleAfter(browser, error);
    expect(framesFor(browser, 'b1', 'reply.end')).toEqual([]);

    const next = `still there? ${nonce}`;
    browser.chat('b2', next);
    await expectEcho(browser, 'b2', next);
  });

  it('a hung model times out into llm_unavailable within seconds, then idle', async () => {
    const browser = await open(impatient);
    const text = `HANG ${nonce}`;
    const started = Date.now();
    browser.chat('h1', text);
    const error = await failureOf(browser, 'h1', 8_000);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(error).toMatchObject({ type: 'error', code: 'llm_unavailable', replyTo: 'h1' });
    await idleAfter(browser, error, 3_000);
    expect(requestsFor(text)).toHaveLength(1);
    expect(routeRequestsFor(text)).toHaveLength(1); // routing timed out first, keywords routed
  });

  it('with two workers, back-to-back messages are answered once each, in ack order, never interleaved', async () => {
    if (cluster.workers.length < 2) await cluster.addWorker();
    const browser = await open();
    const ids = ['o1', 'o2', 'o3', 'o4', 'o5'];
    const textOf = (id: string) => `ordered ${id} ${nonce}`;
    for (const id of ids) browser.chat(id, textOf(id));
    for (const id of ids) await expectEcho(browser, id, textOf(id));
    await idleAfter(
      browser,
      browser.frames.findLast((f) => f.type === 'reply.end')!,
    );

    const acks = browser.frames.filter((f) => f.type === 'ack');
    expect(acks.map((f) => f.id)).toEqual(ids);
    const ackIds = acks.map((f) => String(f.eventId));
    expect([...ackIds].sort(compareEventIds)).toEqual(ackIds);

    const replyFrames = browser.frames.filter(
      (f) => typeof f.type === 'string' && f.type.startsWith('reply.'),
    );
    expect(replyFrames.filter((f) => f.type === 'reply.end').map((f) => f.replyTo)).toEqual(ids);
    let open_: unknown = null;
    for (const frame of replyFrames) {
      if (frame.type === 'reply.start') {
        expect(open_).toBeNull();
        open_ = frame.replyTo;
      } else {
        expect(frame.replyTo).toBe(open_);
        if (frame.type === 'reply.end') open_ = null;
      }
    }
    // Each answer saw every earlier answer of the session: they really ran one after the other.
    ids.forEach((id, i) => {
      const [request, ...more] = requestsFor(textOf(id));
      expect(more).toEqual([]);
      expect(request?.messages.slice(1, -1).map((m) => m.content)).toEqual(
        ids.slice(0, i).flatMap((earlier) => [textOf(earlier), `Echo: ${textOf(earlier)}`]),
      );
    });
  });

  it('a worker killed mid-reply: the reply restarts elsewhere and ends exactly once', async () => {
    while (cluster.workers.length < 2) await cluster.addWorker();
    const browser = await open();
    const text = `SLOW ${nonce} ${'word '.repeat(30).trim()}`;
    browser.chat('k1', text);
    await browser.waitFor((f) => f.type === 'reply.delta' && f.replyTo === 'k1');

    const answering = await answeringWorker(
      cluster.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null),
    );
    await answering.kill('SIGKILL');
    const deltasAtKill = framesFor(browser, 'k1', 'reply.delta').length;
    expect(framesFor(browser, 'k1', 'reply.end')).toEqual([]); // really mid-reply

    const reply = await browser.reply('k1', 30_000);
    await idleAfter(browser, reply.end);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(framesFor(browser, 'k1', 'reply.end')).toHaveLength(1);
    expect(framesFor(browser, 'k1', 'error')).toEqual([]);
    expect(framesFor(browser, 'k1', 'reply.start')).toHaveLength(2);
    expect(deltasAtKill).toBeGreaterThan(0);
    expect(reply.end.text).toBe(`Echo: ${text}`);
    expect(reply.deltas).toBe(reply.end.text);
    expect(requestsFor(text)).toHaveLength(2);
  });
  it('messages acked behind a reply whose worker is killed are each answered once, in order', async () => {
    // Leases that outlive BullMQ's lock (10 s): the killed holder's job is retried while its
    // lease still runs, and must wait for it rather than take the holder for a live one.
    const alive = () =>
      cluster.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
    await Promise.all(alive().map((w) => w.kill('SIGKILL')));
    await Promise.all([1, 2].map(() => cluster.addWorker({ LEASE_TTL_MS: '20000' })));
    const browser = await open();
    const first = `SLOW ${nonce} queued ${'word '.repeat(30).trim()}`;
    browser.chat('q1', first);
    await browser.waitFor((f) => f.type === 'reply.delta' && f.replyTo === 'q1');
    // Acked while a worker holds the session: they get no job of their own; the holder owes them.
    const behind = ['q2', 'q3'];
    for (const id of behind) browser.chat(id, `behind ${id} ${nonce}`);
    for (const id of behind) await browser.waitFor((f) => f.type === 'ack' && f.id === id);

    const answering = await answeringWorker(alive());
    await answering.kill('SIGKILL');
    expect(framesFor(browser, 'q1', 'reply.end')).toEqual([]);

    for (const id of behind) await expectEcho(browser, id, `behind ${id} ${nonce}`, 45_000);
    const ends = browser.frames.filter((f) => f.type === 'reply.end').map((f) => f.replyTo);
    expect(ends.filter((id) => ['q1', ...behind].includes(String(id)))).toEqual(['q1', ...behind]);
    for (const id of behind) expect(requestsFor(`behind ${id} ${nonce}`)).toHaveLength(1);
  }, 75_000);
});

/**
 * The worker answering, from each worker's own /health: the one with a job in hand. Another
 * worker may hold a job for a moment (a delayed job checking back), so a worker only counts once
 * it is the single busy one on two polls in a row.
 */
async function answeringWorker(
  workers: WorkerProcess[],
  timeoutMs = 2_000,
): Promise<WorkerProcess> {
  const deadline = Date.now() + timeoutMs;
  let previous: WorkerProcess | undefined;
  for (;;) {
    const busy: WorkerProcess[] = [];
    for (const worker of workers) {
      const response = await fetch(`http://127.0.0.1:${worker.metricsPort}/health`);
      const health = (await response.json()) as { active_jobs: number };
      if (health.active_jobs > 0) busy.push(worker);
    }
    const only = busy.length === 1 ? busy[0] : undefined;
    if (only && only === previous) return only;
    previous = only;
    if (Date.now() > deadline) throw new Error(`no single busy worker (busy: ${busy.length})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
