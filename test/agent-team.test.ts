import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeOpenAI, questionOf } from './support/fake-openai.js';
import { ServiceProcess, WORKER_MAIN } from './support/service-process.js';
import { TestBrowser, type Frame } from './support/test-browser.js';
import { TestCluster } from './support/test-cluster.js';

const TEAM_FILE = new URL('../services/worker/team.json', import.meta.url).pathname;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (what prom-client writes). */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] ?? ''] = pair[2] ?? '';
    }
    samples.push({ name: match[1] ?? '', labels, value: Number(match[3]) });
  }
  return samples;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `read` until `done` holds for its value; returns that value. */
async function poll<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 8_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline)
      throw new Error(
        `condition not met in ${timeoutMs} ms; last: ${JSON.stringify(value).slice(0, 300)}`,
      );
    await sleep(200);
  }
}

/**
 * The agent team of team.json against our fake OpenAI server: the coordinator's routing (by
 * model, by keywords when the model's route is unusable, offline), several agents in one reply,
 * graph tools called by the model, retries and the circuit breaker in agent.log and metrics,
 * bounded agent.log, per-session isolation, team-file validation.
 */
describe('agent team', () => {
  let fake: FakeOpenAI;
  /** Model-backed team, default settings. */
  let cluster: TestCluster;
  /** No OPENAI_API_KEY: the offline team. */
  let offline: TestCluster;
  /** A breaker that opens after 2 failures and probes after 1.5 s; no retries. */
  let fragile: TestCluster;
  /** At most 2 agent.log lines per message; model calls time out after 1 s, no retries. */
  let terse: TestCluster;
  const browsers: TestBrowser[] = [];
  const sessionIds: string[] = [];
  const nonce = randomBytes(3).toString('hex');

  beforeAll(async () => {
    fake = await FakeOpenAI.start();
    const modelEnv = {
      OPENAI_API_KEY: 'test-key',
      OPENAI_BASE_URL: fake.baseURL,
      OPENAI_MODEL: 'fake-model',
    };
    [cluster, offline, fragile, terse] = await Promise.all([
      TestCluster.start({ gateways: 1, workers: 1, workerEnv: modelEnv }),
      TestCluster.start({ gateways: 1, workers: 1 }),
      TestCluster.start({
        gateways: 1,
        workers: 1,
        workerEnv: {
          ...modelEnv,
          LLM_BREAKER_THRESHOLD: '2',
          LLM_BREAKER_RESET_MS: '1500',
          LLM_MAX_RETRIES: '0',
        },
      }),
      TestCluster.start({
        gateways: 1,
        workers: 1,
        workerEnv: {
          ...modelEnv,
          AGENT_LOG_MAX: '2',
          LLM_TIMEOUT_MS: '1000',
          LLM_MAX_RETRIES: '0',
        },
      }),
    ]);
  });
  afterAll(async () => {
    for (const browser of browsers) browser.terminate();
    await Promise.all([cluster?.stop(), offline?.stop(), fragile?.stop(), terse?.stop()]);
    await fake?.stop();
  });

  const open = async (on: TestCluster = cluster) => {
    const { browser, welcome } = await TestBrowser.open(on.gateway(0).wsUrl);
    browsers.push(browser);
    sessionIds.push(String(welcome.sessionId));
    return browser;
  };
  const framesFor = (browser: TestBrowser, id: string, type: string) =>
    browser.frames.filter((f) => f.replyTo === id && f.type === type);
  /** The final event of message `id`: reply.end or error. */
  const outcomeOf = (browser: TestBrowser, id: string, timeoutMs = 15_000) =>
    browser.waitFor(
      (f) => (f.type === 'reply.end' || f.type === 'error') && f.replyTo === id,
      timeoutMs,
    );
  /**
   * The agent.log lines of message `id` (agent.log has no replyTo; a session answers one message
   * at a time, so they are those between its `processing` status and its reply.end or error).
   */
  const linesOf = (browser: TestBrowser, id: string): Frame[] => {
    const from = browser.frames.findIndex(
      (f) => f.type === 'status' && f.state === 'processing' && f.replyTo === id,
    );
    const to = browser.frames.findIndex(
      (f) => (f.type === 'reply.end' || f.type === 'error') && f.replyTo === id,
    );
    expect(from).toBeGreaterThanOrEqual(0);
    expect(to).toBeGreaterThan(from);
    return browser.frames.slice(from, to).filter((f) => f.type === 'agent.log');
  };
  const speakers = (frames: Frame[]) =>
    frames.map((f) => String(f.agent)).filter((agent, i, all) => i === 0 || all[i - 1] !== agent);
  const workerMetrics = async (on: TestCluster = cluster) => {
    const worker = on.workers[0];
    if (!worker) throw new Error('no worker');
    const response = await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`);
    return response.text();
  };
  const health = async (on: TestCluster = cluster) => {
    const response = await fetch(`${on.gateway(0).url}/health`);
    return (await response.json()) as { knowledge_graph: { nodes: number; edges: number } };
  };
  const graph = async (on: TestCluster = cluster) => {
    const response = await fetch(`${on.gateway(0).url}/api/graph`);
    return (await response.json()) as { nodes: { id: string; label: string; type: string }[] };
  };

  it('the coordinator routes by model: the researcher leads and speaks alone', async () => {
    const browser = await open();
    const text = `RESEARCH what comes before heaps ${nonce}`;
    browser.chat('r1', text);
    const reply = await browser.reply('r1');
    expect(reply.start).toMatchObject({ agent: 'researcher' });
    const deltas = framesFor(browser, 'r1', 'reply.delta');
    expect(deltas.length).toBeGreaterThan(0);
    expect(deltas.every((d) => d.agent === 'researcher')).toBe(true);
    expect(reply.end).toMatchObject({
      agent: 'researcher',
      agents: ['researcher'],
      text: `Echo: ${text}`,
    });
    expect(reply.deltas).toBe(reply.end.text);

    const routing = linesOf(browser, 'r1').filter((f) => f.category === 'routing');
    expect(routing).toEqual([
      expect.objectContaining({
        agent: 'coordinator',
        level: 'info',
        message: expect.stringMatching(/^researcher leads.*\(by model\)$/),
      }),
    ]);
    expect(browser.frames.indexOf(routing[0]!)).toBeLessThan(browser.frames.indexOf(reply.start));

    const [route, ...moreRoutes] = fake.routeRequests().filter((r) => questionOf(r) === text);
    expect(moreRoutes).toEqual([]);
    expect(route?.tool_choice).toMatchObject({ type: 'function', function: { name: 'route' } });
    expect(route?.messages[0]?.content).toContain('You are the coordinator');
    const answers = fake.answerRequests().filter((r) => questionOf(r) === text);
    expect(answers).toHaveLength(1);
    expect(answers[0]?.messages[0]?.content).toContain('You are the researcher');
  });

  it('an unusable route (not JSON, unknown agent) falls back to keywords, and the reply comes', async () => {
    const browser = await open();
    browser.chat('b1', `BADROUTE explain stacks ${nonce}`);
    const first = await browser.reply('b1');
    expect(first.start).toMatchObject({ agent: 'tutor' });
    expect(first.end).toMatchObject({
      agent: 'tutor',
      text: `Echo: BADROUTE explain stacks ${nonce}`,
    });
    expect(linesOf(browser, 'b1').filter((f) => f.category === 'routing')).toEqual([
      expect.objectContaining({
        agent: 'coordinator',
        level: 'warn',
        message: expect.stringContaining('routing by keywords'),
      }),
      expect.objectContaining({
        agent: 'coordinator',
        level: 'info',
        message: expect.stringMatching(/^tutor leads.*\(by keywords\)$/),
      }),
    ]);

    // An agent the team does not have: keywords decide ("related" → researcher).
    browser.chat('b2', `BADROUTEAGENT which concepts are related to queues ${nonce}`);
    const second = await browser.reply('b2');
    expect(second.start).toMatchObject({ agent: 'researcher' });
    expect(second.end).toMatchObject({ agent: 'researcher' });
    const routing = linesOf(browser, 'b2').filter((f) => f.category === 'routing');
    expect(routing.map((f) => f.level)).toEqual(['warn', 'info']);
    expect(routing[1]?.message).toMatch(/^researcher leads.*\(by keywords\)$/);
  });

  it('teamwork: one reply, the tutor then the researcher speak, the curator acts silently', async () => {
    const browser = await open();
    const label = `Fake Team Concept ${nonce}`;
    const text = `TEAMWORK explain stacks ADD: ${label}`;
    browser.chat('t1', text);
    const reply = await browser.reply('t1');
    expect(reply.start).toMatchObject({ agent: 'tutor' });
    expect(framesFor(browser, 't1', 'reply.start')).toHaveLength(1);
    const deltas = framesFor(browser, 't1', 'reply.delta');
    expect(speakers(deltas)).toEqual(['tutor', 'researcher']);
    expect(reply.end).toMatchObject({ agent: 'tutor', agents: ['tutor', 'researcher'] });
    expect(reply.end.text).toBe(deltas.map((d) => String(d.text)).join(''));
    expect(reply.end.text).toBe(`Echo: ${text}\n\nEcho: ${text}`);
    // The researcher saw the lead's answer and was told to add only what is missing.
    const helperCall = fake
      .answerRequests()
      .find((r) =>
        r.messages.some(
          (m) =>
            m.role === 'system' &&
            /^tutor answered above\. You are the researcher/.test(m.content ?? ''),
        ),
      );
    expect(
      helperCall?.messages.some((m) => m.role === 'assistant' && m.content === `Echo: ${text}`),
    ).toBe(true);

    const lines = linesOf(browser, 't1');
    expect(lines.find((f) => f.category === 'routing')?.message).toBe(
      'tutor leads; researcher, curator help (by model)',
    );
    const curator = lines.filter((f) => f.agent === 'curator');
    expect(curator.map((f) => f.category)).toEqual(['tool', 'tool-result', 'summary']);
    expect(curator[0]?.message).toMatch(/^add_concept\(/);
    expect(curator[1]?.message).toBe(`added concept fake-team-concept-${nonce}`);
    expect(browser.frames.filter((f) => f.agent === 'curator' && f.type !== 'agent.log')).toEqual(
      [],
    );

    // The curator saw what the tutor and the researcher said.
    const curatorRequest = fake
      .answerRequests()
      .find(
        (r) => questionOf(r) === text && r.messages[0]?.content?.startsWith('You are the curator'),
      );
    expect(curatorRequest?.messages.find((m) => m.role === 'assistant')?.content).toBe(
      reply.end.text,
    );
  });

  it('tool calls: the lead searches the graph and answers from the result', async () => {
    const browser = await open();
    const text = `TOOLSEARCH please look it up ${nonce}`;
    browser.chat('s1', text);
    const reply = await browser.reply('s1');
    expect(reply.end).toMatchObject({ agent: 'tutor' });
    expect(String(reply.end.text)).toMatch(/^Found: /);
    expect(String(reply.end.text)).toContain('binary-search');
    expect(reply.deltas).toBe(reply.end.text);

    const lines = linesOf(browser, 's1');
    const tool = lines.filter((f) => f.category === 'tool' || f.category === 'tool-result');
    expect(tool).toEqual([
      expect.objectContaining({
        agent: 'tutor',
        level: 'info',
        category: 'tool',
        message: 'search_concepts({"query":"binary search"})',
      }),
      expect.objectContaining({
        agent: 'tutor',
        level: 'info',
        category: 'tool-result',
        message: expect.stringMatching(/^search "binary search": binary-search\b/),
      }),
    ]);

    // The arguments streamed in pieces came back whole; the result went back as a tool message.
    const second = fake
      .answerRequests()
      .find((r) => questionOf(r) === text && r.messages.some((m) => m.role === 'tool'));
    const call = second?.messages.find((m) => m.role === 'assistant')?.tool_calls?.[0];
    expect(call).toMatchObject({
      type: 'function',
      function: { name: 'search_concepts', arguments: '{"query":"binary search"}' },
    });
    const result = second?.messages.find((m) => m.role === 'tool');
    expect(result?.tool_call_id).toBe(call?.id);
    expect(result?.content).toContain('"id":"binary-search"');
  });

  it('an agent that keeps calling tools gets three tool rounds, then a last turn without tools', async () => {
    const browser = await open();
    const text = `TOOLLOOP ${nonce}`;
    browser.chat('p1', text);
    const reply = await browser.reply('p1');
    expect(reply.end).toMatchObject({ agent: 'tutor', text: 'No more tools.' });
    const answers = fake.answerRequests().filter((r) => questionOf(r) === text);
    expect(answers.map((r) => (r.tools?.length ?? 0) > 0)).toEqual([true, true, true, false]);
    expect(answers.at(-1)?.messages.filter((m) => m.role === 'tool')).toHaveLength(3);
    const lines = linesOf(browser, 'p1');
    expect(lines.filter((f) => f.category === 'tool')).toHaveLength(3);
    expect(lines.filter((f) => f.category === 'tool-result')).toHaveLength(3);
  });

  it('a helper that fails is logged and skipped; the reply ends normally', async () => {
    const browser = await open();
    const text = `TEAMWORK FAILHELPERS explain stacks ${nonce}`;
    browser.chat('h1', text);
    const reply = await browser.reply('h1');
    expect(reply.end).toMatchObject({ agent: 'tutor', agents: ['tutor'], text: `Echo: ${text}` });
    expect(reply.deltas).toBe(reply.end.text);
    const failures = linesOf(browser, 'h1').filter((f) => f.category === 'failure');
    expect(failures).toEqual([
      expect.objectContaining({
        agent: 'researcher',
        level: 'warn',
        message: 'could not help: the model is unavailable',
      }),
      expect.objectContaining({
        agent: 'curator',
        level: 'warn',
        message: 'could not help: the model is unavailable',
      }),
    ]);
    expect(framesFor(browser, 'h1', 'error')).toEqual([]);
  });

  it('reply.end.usage sums the tokens of all model calls of the answer, routing and silent helpers included', async () => {
    const browser = await open();
    const text = `TEAMWORK count the tokens ADD: Usage Concept ${nonce}`;
    browser.chat('u1', text);
    const reply = await browser.reply('u1');
    const calls = fake.requestsAbout(text);
    expect(
      calls.filter((r) => r.messages[0]?.content?.startsWith('You are the curator')).length,
    ).toBeGreaterThan(0);
    expect(reply.end.usage).toMatchObject({ inputTokens: 10 * calls.length }); // the fake reports 10 prompt tokens a call
  });

  it('tool calls: add_concept adds a node once; the same label again adds nothing', async () => {
    const browser = await open();
    const before = (await health()).knowledge_graph.nodes;
    const id = `fake-test-concept-${nonce}`;
    browser.chat('a1', `TOOLADD ${nonce}`);
    const first = await browser.reply('a1');
    expect(first.end.text).toBe('Added.');
    expect(linesOf(browser, 'a1').find((f) => f.category === 'tool-result')?.message).toBe(
      `added concept ${id}`,
    );
    const withNode = await poll(graph, (g) => g.nodes.some((n) => n.id === id));
    expect(withNode.nodes.filter((n) => n.id === id)).toEqual([
      { id, label: `Fake Test Concept ${nonce}`, type: 'concept' },
    ]);
    await poll(health, (h) => h.knowledge_graph.nodes === before + 1);

    browser.chat('a2', `TOOLADD ${nonce} again`);
    const second = await browser.reply('a2');
    expect(second.end.text).toBe('Added.');
    expect(linesOf(browser, 'a2').find((f) => f.category === 'tool-result')?.message).toBe(
      `concept ${id} exists already`,
    );
    await sleep(1_200); // past the /health snapshot's age
    expect((await health()).knowledge_graph.nodes).toBe(before + 1);
  });

  it('NOTOOLS: offered tools, the model calls none and the reply is plain', async () => {
    const browser = await open();
    const text = `NOTOOLS explain queues ${nonce}`;
    browser.chat('n1', text);
    const reply = await browser.reply('n1');
    expect(reply.end).toMatchObject({ agent: 'tutor', text: `Echo: ${text}` });
    expect(linesOf(browser, 'n1').filter((f) => String(f.category).startsWith('tool'))).toEqual([]);
    const answers = fake.answerRequests().filter((r) => questionOf(r) === text);
    expect(answers).toHaveLength(1);
    expect(answers[0]?.tools?.map((t) => t.function.name)).toEqual([
      'search_concepts',
      'concept_neighbours',
    ]);
    expect(answers[0]?.messages.some((m) => m.role === 'tool')).toBe(false);
  });

  it('a 429 is retried, visibly: agent.log retry line and chorus_llm_retries_total', async () => {
    const browser = await open();
    browser.chat('q1', `FAIL429ONCE explain ${nonce}`);
    const reply = await browser.reply('q1');
    expect(reply.end.text).toBe(`Echo: FAIL429ONCE explain ${nonce}`);
    const retries = linesOf(browser, 'q1').filter((f) => f.category === 'retry');
    expect(retries.length).toBeGreaterThanOrEqual(1);
    for (const line of retries) {
      expect(line).toMatchObject({ level: 'warn', message: expect.stringContaining('HTTP 429') });
    }
    const samples = parseMetrics(await workerMetrics()).filter(
      (s) =>
        s.name === 'chorus_llm_retries_total' &&
        s.labels.reason === 'HTTP 429' &&
        s.labels.model === 'fake-model',
    );
    expect(samples).toHaveLength(1);
    expect(samples[0]?.value).toBeGreaterThanOrEqual(1);
  });

  it('the circuit breaker opens on failures, fails fast without calling the model, then recovers', async () => {
    const browser = await open(fragile);
    const breakerState = async () =>
      parseMetrics(await workerMetrics(fragile)).find(
        (s) => s.name === 'chorus_llm_breaker_state' && s.labels.model === 'fake-model',
      )?.value;

    let fast: { id: string; at: number } | undefined;
    for (let i = 1; i <= 5 && !fast; i++) {
      const text = `FAIL500 breaker ${i} ${nonce}`;
      const sent = Date.now();
      browser.chat(`x${i}`, text);
      const error = await outcomeOf(browser, `x${i}`);
      expect(error).toMatchObject({ type: 'error', code: 'llm_unavailable' });
      if (fake.requestsAbout(text).length === 0) fast = { id: `x${i}`, at: Date.now() - sent };
    }
    if (!fast) throw new Error('the breaker never opened');
    expect(fast.at).toBeLessThan(1_000);
    const opened = browser.frames.find((f) => f.type === 'agent.log' && f.category === 'breaker');
    expect(opened).toMatchObject({
      agent: 'coordinator',
      level: 'warn',
      message: 'model circuit open',
    });
    expect(await breakerState()).toBe(2);

    // While open, even a message the model would answer fails at once, and nothing is sent.
    const during = `while open ${nonce}`;
    browser.chat('y1', during);
    expect(await outcomeOf(browser, 'y1')).toMatchObject({
      type: 'error',
      code: 'llm_unavailable',
    });
    expect(fake.requestsAbout(during)).toEqual([]);

    await sleep(1_700);
    const after = `after the reset ${nonce}`;
    browser.chat('y2', after);
    const reply = await browser.reply('y2');
    expect(reply.end.text).toBe(`Echo: ${after}`);
    expect(linesOf(browser, 'y2').filter((f) => f.category === 'breaker')).toEqual([
      expect.objectContaining({ level: 'info', message: 'model circuit closed' }),
    ]);
    expect(await breakerState()).toBe(0);
  });

  it('agent.log is bounded per message (AGENT_LOG_MAX=2) and says what it dropped', async () => {
    const browser = await open(terse);
    browser.chat('l1', `TOOLSEARCH bounded ${nonce}`);
    const reply = await browser.reply('l1');
    expect(String(reply.end.text)).toMatch(/^Found: /);
    const lines = linesOf(browser, 'l1');
    expect(lines.length).toBeLessThanOrEqual(3);
    expect(lines.at(-1)?.message).toMatch(/^\d+ more log lines of this answer were dropped$/);
    expect(lines.slice(0, -1).map((f) => f.category)).toEqual(['routing', 'tool']);

    // The next message has a budget of its own.
    browser.chat('l2', `TOOLSEARCH again ${nonce}`);
    await browser.reply('l2');
    expect(linesOf(browser, 'l2').map((f) => f.category)).toEqual(['routing', 'tool', 'log']);
  });

  it('a model call that times out is counted with outcome="timeout"', async () => {
    const browser = await open(terse);
    browser.chat('w1', `HANG timeout ${nonce}`);
    expect(await outcomeOf(browser, 'w1', 8_000)).toMatchObject({
      type: 'error',
      code: 'llm_unavailable',
    });
    const samples = parseMetrics(await workerMetrics(terse)).filter(
      (s) =>
        s.name === 'chorus_llm_request_duration_seconds_count' &&
        s.labels.agent === 'tutor' &&
        s.labels.outcome === 'timeout',
    );
    expect(samples[0]?.value).toBe(1);
  });

  it('two sessions at once: each sees only its own agent.log lines and events', async () => {
    const [a, b] = await Promise.all([open(), open()]);
    const texts = {
      ca: `TOOLSEARCH SLOW session a ${nonce}`,
      cb: `TOOLSEARCH SLOW session b ${nonce}`,
    };
    a.chat('ca', texts.ca);
    b.chat('cb', texts.cb);
    const [ra, rb] = await Promise.all([a.reply('ca'), b.reply('cb')]);
    expect(String(ra.end.text)).toMatch(/^Found: /);
    expect(String(rb.end.text)).toMatch(/^Found: /);
    for (const [browser, own, other] of [
      [a, 'ca', 'cb'],
      [b, 'cb', 'ca'],
    ] as const) {
      expect(browser.frames.filter((f) => f.replyTo === other)).toEqual([]);
      expect(JSON.stringify(browser.frames)).not.toContain(texts[other]);
      const logs = browser.frames.filter((f) => f.type === 'agent.log');
      expect(logs.map((f) => f.category)).toEqual(['routing', 'tool', 'tool-result']);
      expect(linesOf(browser, own)).toEqual(logs);
    }
  });

  it('offline, the coordinator routes by keywords and the researcher answers from the graph', async () => {
    const browser = await open(offline);
    browser.chat('o1', 'Which concepts are related to hash table?');
    const reply = await browser.reply('o1');
    expect(reply.start).toMatchObject({ agent: 'researcher' });
    expect(reply.end).toMatchObject({ agent: 'researcher', offline: true });
    expect(String(reply.end.text)).toContain('offline');
    expect(reply.deltas).toBe(reply.end.text);
    const routing = linesOf(browser, 'o1').filter((f) => f.category === 'routing');
    expect(routing).toEqual([
      expect.objectContaining({
        agent: 'coordinator',
        message: expect.stringMatching(/^researcher leads.*\(by keywords\)$/),
      }),
    ]);
  });

  it('an invalid team file stops the worker with exit 1, naming the file and the field', async () => {
    const team = JSON.parse(readFileSync(TEAM_FILE, 'utf8')) as {
      defaultLead: string;
      agents: { name: string }[];
    };
    const dir = mkdtempSync(join(tmpdir(), 'chorus-team-'));
    try {
      const duplicate = join(dir, 'duplicate.json');
      writeFileSync(
        duplicate,
        JSON.stringify({ ...team, agents: [...team.agents, team.agents[0]] }),
      );
      const silentLead = join(dir, 'silent-lead.json');
      writeFileSync(silentLead, JSON.stringify({ ...team, defaultLead: 'curator' }));
      const start = (file: string) =>
        ServiceProcess.spawn('worker', WORKER_MAIN, {
          REDIS_URL: cluster.redisUrl,
          KEY_PREFIX: cluster.prefix,
          METRICS_PORT: '0',
          TEAM_FILE: file,
        });
      const runs = [
        { file: duplicate, field: /agents: agent names must be unique/ },
        { file: silentLead, field: /defaultLead: must name an agent that speaks/ },
      ].map(async ({ file, field }) => {
        const worker = start(file);
        const exit = await Promise.race([
          worker.exited,
          sleep(10_000).then(() => worker.kill('SIGKILL')),
        ]);
        const stderr = worker.stderr.join('');
        expect(exit.code).toBe(1);
        expect(stderr).toContain(file);
        expect(stderr).toMatch(field);
        expect(stderr).not.toMatch(/\bat \S+:\d+/); // no stack trace
      });
      await Promise.all(runs);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('model metrics: per agent and model, with time to first token and tokens, no session ids', async () => {
    const text = await workerMetrics();
    const samples = parseMetrics(text);
    const find = (name: string, labels: Record<string, string>) =>
      samples.filter(
        (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
      );
    expect(
      find('chorus_llm_request_duration_seconds_count', {
        agent: 'tutor',
        model: 'fake-model',
        outcome: 'ok',
      })[0]?.value,
    ).toBeGreaterThan(0);
    expect(
      find('chorus_llm_request_duration_seconds_count', {
        agent: 'researcher',
        model: 'fake-model',
        outcome: 'ok',
      })[0]?.value,
    ).toBeGreaterThan(0);
    expect(
      find('chorus_llm_time_to_first_token_seconds_count', {
        agent: 'tutor',
        model: 'fake-model',
      })[0]?.value,
    ).toBeGreaterThan(0);
    expect(
      find('chorus_llm_tokens_total', {
        agent: 'tutor',
        model: 'fake-model',
        direction: 'input',
      })[0]?.value,
    ).toBeGreaterThan(0);
    expect(
      find('chorus_llm_tokens_total', {
        agent: 'tutor',
        model: 'fake-model',
        direction: 'output',
      })[0]?.value,
    ).toBeGreaterThan(0);
    expect(sessionIds.length).toBeGreaterThan(0);
    for (const sample of samples) {
      for (const value of Object.values(sample.labels)) {
        for (const sessionId of sessionIds) expect(value).not.toContain(sessionId);
      }
    }
  });

  it("the coordinator's route calls are measured like every other model call", async () => {
    const samples = parseMetrics(await workerMetrics());
    const coordinator = (name: string) =>
      samples.filter((s) => s.name === name && s.labels.agent === 'coordinator');
    expect(
      coordinator('chorus_llm_request_duration_seconds_count').find(
        (s) => s.labels.outcome === 'ok',
      )?.value,
    ).toBeGreaterThan(0);
    expect(
      coordinator('chorus_llm_tokens_total').find((s) => s.labels.direction === 'input')?.value,
    ).toBeGreaterThan(0);
  });
});
