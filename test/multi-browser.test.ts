import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestBrowser, type Frame } from './support/test-browser.js';
import { TestCluster } from './support/test-cluster.js';

/**
 * The seven multi-browser cases of the system Chorus replaces, each against two gateway
 * replicas sharing one Redis, with a real worker answering offline from the knowledge graph.
 */
describe('multi-browser', () => {
  let cluster: TestCluster;
  const browsers: TestBrowser[] = [];
  const open = async (gateway: number, options = {}) => {
    const result = await TestBrowser.open(cluster.gateway(gateway).wsUrl, options);
    browsers.push(result.browser);
    return result;
  };

  beforeAll(async () => {
    cluster = await TestCluster.start({
      gateways: 2,
      workers: 1,
      workerEnv: { OFFLINE_CHUNK_DELAY_MS: '15' },
    });
  });
  afterAll(async () => {
    for (const browser of browsers) browser.terminate();
    await cluster?.stop();
  });

  const expectWholeReply = async (browser: TestBrowser, id: string) => {
    const reply = await browser.reply(id);
    expect(reply.end.text).toBe(reply.deltas);
    expect(String(reply.end.text)).toContain('offline mode');
    expect(reply.end.agent).toBe('tutor');
    return reply;
  };

  it('a single browser chats and sees the whole conversation in order', async () => {
    const { browser, welcome } = await open(0);
    expect(welcome).toMatchObject({
      type: 'welcome',
      protocol: 1,
      resumed: false,
      heartbeatMs: 30_000,
    });
    expect(welcome.sessionId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    browser.chat('m1', 'What is a hash table?');
    const ack = await browser.next('ack');
    expect(ack).toMatchObject({ id: 'm1', eventId: expect.stringMatching(/^\d+-\d+$/) });
    await expectWholeReply(browser, 'm1');
    await browser.waitFor((f) => f.type === 'status' && f.state === 'idle');
    // agent.log lines (the team at work) may come anywhere; the reply's own events are ordered.
    const types = browser
      .events()
      .map((f) => f.type)
      .filter((type) => type !== 'agent.log');
    expect(types[0]).toBe('user.message');
    expect(types.slice(1, 3)).toEqual(['status', 'reply.start']);
    expect(types.slice(-2)).toEqual(['reply.end', 'status']);
    const ids = browser.events().map((f) => f.eventId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('the same session reconnects on the other replica and keeps chatting', async () => {
    const first = await open(0);
    first.browser.close();
    await first.browser.closed;
    const { browser, welcome } = await open(1, {
      session: String(first.welcome.sessionId),
      token: String(first.welcome.token),
    });
    expect(welcome).toMatchObject({ sessionId: first.welcome.sessionId, resumed: true });
    expect(welcome.gatewayId).not.toBe(first.welcome.gatewayId);
    browser.chat('after-move', 'Explain TCP');
    await expectWholeReply(browser, 'after-move');
  });

  it('a second browser joining mid-reply gets the reply, then chats itself', async () => {
    const { browser: a, welcome } = await open(0);
    a.chat('long', 'Tell me about graph algorithms like Dijkstra and breadth-first search');
    await a.next('reply.delta');
    const { browser: b } = await open(1, {
      session: String(welcome.sessionId),
      token: String(welcome.token),
    });
    const [replyA] = await Promise.all([
      a.reply('long'),
      b.waitFor((f) => f.type === 'reply.end' && f.replyTo === 'long'),
    ]);
    const endB = b.frames.find((f) => f.type === 'reply.end' && f.replyTo === 'long');
    expect(endB?.text).toBe(replyA.end.text);

    b.chat('from-b', 'What is recursion?');
    await expect(b.next('ack')).resolves.toMatchObject({ id: 'from-b' });
    await expectWholeReply(b, 'from-b');
    const onA = await a.waitFor((f) => f.type === 'reply.end' && f.replyTo === 'from-b');
    expect(onA.text).toBe((await b.reply('from-b')).end.text);
    await a.waitFor((f) => f.type === 'user.message' && f.id === 'from-b');
  });

  it('five browsers at once each get their own answer and nothing of the others', async () => {
    const five = await Promise.all([0, 1, 0, 1, 0].map((gateway) => open(gateway)));
    five.forEach(({ browser }, i) => browser.chat(`q${i}`, `What is a binary tree? (${i})`));
    const replies = await Promise.all(
      five.map(({ browser }, i) => expectWholeReply(browser, `q${i}`)),
    );
    expect(replies).toHaveLength(5);
    five.forEach(({ browser }, i) => {
      const foreign = browser.frames.filter(
        (f: Frame) => typeof f.replyTo === 'string' && f.replyTo !== `q${i}`,
      );
      expect(foreign).toEqual([]);
    });
  });

  it('ten rapid reconnects across replicas, then chat works and no socket is left behind', async () => {
    const { browser: first, welcome } = await open(0);
    const session = { session: String(welcome.sessionId), token: String(welcome.token) };
    first.close();
    for (let i = 0; i < 10; i++) {
      const { browser } = await open(i % 2, session);
      browser.close();
    }
    const { browser } = await open(1, session);
    browser.chat('after-storm', 'What is a stack?');
    await expectWholeReply(browser, 'after-storm');
    const sockets = await cluster.redis().hlen(cluster.keys.session(session.session).sockets);
    expect(sockets).toBe(1);
  });

  it('every socket of a session, on either replica, receives every event', async () => {
    const { browser: a, welcome } = await open(0);
    const session = { session: String(welcome.sessionId), token: String(welcome.token) };
    const { browser: b } = await open(0, session);
    const { browser: c } = await open(1, session);
    b.chat('shared', 'What is a queue?');
    const replies = await Promise.all([a, b, c].map((browser) => browser.reply('shared')));
    for (const reply of replies) expect(reply.end.text).toBe(replies[0]?.end.text);
    const idsOf = (browser: TestBrowser) => browser.events().map((f) => f.eventId);
    await c.waitFor((f) => f.type === 'status' && f.state === 'idle');
    await a.waitFor((f) => f.type === 'status' && f.state === 'idle');
    expect(idsOf(a)).toEqual(idsOf(c));
    for (const browser of [a, c])
      await browser.waitFor((f) => f.type === 'user.message' && f.id === 'shared');
  });

  it('bad frames are answered with bad_request and the socket keeps working', async () => {
    const { browser } = await open(1);
    const bad = [
      'not json',
      '[]',
      '{"type":"dance"}',
      '{"type":"chat","id":"bad id!","text":"x"}',
      '{"type":"chat","id":"ok","text":""}',
    ];
    for (const frame of bad) browser.send(frame);
    browser.socket.send(Buffer.from([1, 2, 3]), { binary: true });
    await browser.waitFor(
      () => browser.frames.filter((f) => f.type === 'error').length === bad.length + 1,
    );
    const errors = browser.frames.filter((f) => f.type === 'error');
    expect(errors.every((f) => f.code === 'bad_request' && typeof f.message === 'string')).toBe(
      true,
    );
    expect(errors.map((f) => f.message)).toContain('frame is not valid JSON');
    browser.send({ type: 'ping' });
    await expect(browser.next('pong')).resolves.toMatchObject({ ts: expect.any(Number) });
    browser.chat('recovered', 'What is an array?');
    await expectWholeReply(browser, 'recovered');
  });
});
