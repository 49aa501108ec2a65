import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TestBrowser } from '../support/test-browser.js';
import { TestCluster } from '../support/test-cluster.js';
import { ChatPage, launchChromium, PageSet } from './browser-harness.js';

/**
 * The demo chat page in headless Chromium, served by two gateway replicas with one worker that
 * answers offline, slowly enough (30 ms a word) to act in the middle of a reply.
 */
describe('chat page in Chromium', () => {
  let cluster: TestCluster;
  let browser: Browser;
  let pages: PageSet;
  const raw: TestBrowser[] = [];

  beforeAll(async () => {
    [cluster, browser] = await Promise.all([
      TestCluster.start({
        gateways: 2,
        workers: 1,
        // Pages on one replica fail over to another port: a different origin.
        gatewayEnv: { ALLOWED_ORIGINS: '*' },
        workerEnv: { OFFLINE_CHUNK_DELAY_MS: '30' },
      }),
      launchChromium(),
    ]);
  });
  beforeEach((test) => {
    pages = new PageSet(browser);
    pages.watchTest(test);
  });
  afterEach(async () => {
    await pages.close();
    for (const socket of raw.splice(0)) socket.terminate();
  });
  afterAll(async () => {
    await browser?.close();
    await cluster?.stop();
  });

  /** The reply as the gateways stored it, read by a socket of the page's session. */
  const storedReply = async (chat: ChatPage, id: string, gateway = 1) => {
    const { browser: socket } = await TestBrowser.open(cluster.gateway(gateway).wsUrl, {
      ...(await chat.session()),
      lastEventId: '0-0',
    });
    raw.push(socket);
    return String((await socket.reply(id)).end.text);
  };

  it('two browsers on two replicas chat at the same time and both get their replies', async () => {
    const [desk, phone] = await Promise.all([
      pages.page(cluster.gateway(0).url).then((page) => new ChatPage(page)),
      pages
        .page(cluster.gateway(1).url, { viewport: { width: 390, height: 844 }, isMobile: true })
        .then((page) => new ChatPage(page)),
    ]);
    const [deskGateway, phoneGateway] = await Promise.all([desk.waitOpen(), phone.waitOpen()]);
    expect(deskGateway).not.toBe(phoneGateway);
    await expect(desk.connection.textContent()).resolves.toContain(deskGateway);

    const [deskId, phoneId] = await Promise.all([
      desk.send('What is a hash table?'),
      phone.send('Explain TCP'),
    ]);
    const [deskReply, phoneReply] = await Promise.all([
      desk.waitReplyDone(deskId),
      phone.waitReplyDone(phoneId),
    ]);
    expect(deskReply).toContain('offline mode');
    expect(phoneReply).toContain('offline mode');
    expect(deskReply).not.toBe(phoneReply);
    await expect(
      desk.message(deskId).getByTestId('reply').getAttribute('data-agent'),
    ).resolves.toBe('tutor');
    // Each sees its own conversation only.
    await expect(desk.messages().count()).resolves.toBe(1);
    await expect(phone.messages().count()).resolves.toBe(1);
    expect(await storedReply(desk, deskId)).toBe(deskReply);

    // The side panel: agent activity and the knowledge graph, fetched from the replica.
    await desk.page
      .getByTestId('graph')
      .getByText(/\d+ nodes, \d+ edges/)
      .waitFor();
    await expect(
      desk.page.getByRole('heading', { name: 'Agent activity' }).isVisible(),
    ).resolves.toBe(true);
    // Readable on a phone: nothing wider than the screen; the panel opens from a button.
    const overflow = await phone.page.evaluate<number>(
      'document.documentElement.scrollWidth - window.innerWidth',
    );
    expect(overflow).toBeLessThanOrEqual(0);
    await phone.page.getByRole('button', { name: 'Agents & graph' }).click();
    await phone.page.getByRole('heading', { name: 'Knowledge graph' }).waitFor();
    await phone.page.keyboard.press('Escape');
    await phone.page.getByRole('heading', { name: 'Knowledge graph' }).waitFor({ state: 'hidden' });
  });

  it('two tabs of one session, on two replicas, show the same conversation', async () => {
    const context = await pages.context();
    const first = new ChatPage(await context.newPage());
    await first.page.goto(cluster.gateway(0).url);
    const firstReplica = await first.waitOpen();
    const firstId = await first.send('What is recursion?');
    const firstReply = await first.waitReplyDone(firstId);

    // A second tab of the same origin shares localStorage, so it joins the session and replays;
    // ?gateway= makes it talk to the other replica.
    const second = new ChatPage(await context.newPage());
    await second.page.goto(
      `${cluster.gateway(0).url}/?gateway=${encodeURIComponent(cluster.gateway(1).wsUrl)}`,
    );
    const secondReplica = await second.waitOpen();
    expect(secondReplica).not.toBe(firstReplica);
    expect(await second.waitReplyDone(firstId)).toBe(firstReply);

    const secondId = await second.send('What is a stack?');
    const secondReply = await second.waitReplyDone(secondId);
    expect(await first.waitReplyDone(secondId)).toBe(secondReply);
    for (const tab of [first, second]) {
      await expect(tab.ids()).resolves.toEqual([firstId, secondId]);
    }
    expect(await first.session()).toEqual(await second.session());
  });

  it('the gateway a page is on dies mid-reply: the page moves to the other replica and shows the whole reply once', async () => {
    const doomed = await cluster.addGateway();
    const survivor = cluster.gateway(1);
    const chat = new ChatPage(
      await pages.page(`${doomed.url}/?replicas=${encodeURIComponent(survivor.wsUrl)}`),
    );
    const before = await chat.waitOpen();
    const id = await chat.send(
      'Tell me about graph algorithms like Dijkstra and breadth-first search',
    );
    await chat.message(id).locator('[data-testid="reply"][data-done="false"]').waitFor();
    await expect
      .poll(async () => (await chat.replyText(id)).length, { timeout: 10_000, interval: 20 })
      .toBeGreaterThan(40);
    await doomed.kill('SIGKILL');

    // Right after the kill the page may still show its old, open socket: wait for the survivor.
    const after = await chat.waitOpen(survivor.gatewayId);
    expect(after).toBe(survivor.gatewayId);
    expect(after).not.toBe(before);
    const shown = await chat.waitReplyDone(id);
    expect(shown).toBe(await storedReply(chat, id));
    await expect(chat.message(id).count()).resolves.toBe(1);
    await expect(chat.messages().count()).resolves.toBe(1);
  });

  it('offline and back: nothing typed is lost', async () => {
    const context = await pages.context();
    const chat = new ChatPage(await context.newPage());
    await chat.page.goto(cluster.gateway(0).url);
    await chat.waitOpen();

    await context.setOffline(true);
    await chat.page.waitForSelector('[data-testid="connection"]:not([data-state="open"])');
    const id = await chat.send('What is a binary search tree?');
    await expect(chat.message(id).getAttribute('data-status')).resolves.toBe('queued');
    const box = chat.box;
    await box.fill('a draft, not sent yet');
    await chat.page.waitForTimeout(500);
    await expect(chat.message(id).getAttribute('data-status')).resolves.toBe('queued');

    await context.setOffline(false);
    await chat.waitOpen();
    const reply = await chat.waitReplyDone(id);
    expect(reply).toBe(await storedReply(chat, id, 0));
    await expect(chat.messages().count()).resolves.toBe(1);
    await expect(box.inputValue()).resolves.toBe('a draft, not sent yet');

    // The draft survives a reload too.
    await chat.page.reload();
    await chat.waitOpen();
    await expect(chat.box.inputValue()).resolves.toBe('a draft, not sent yet');
    expect(await chat.waitReplyDone(id)).toBe(reply);
  });

  it('Escape (or the Stop button) stops a streaming reply', async () => {
    const chat = new ChatPage(await pages.page(cluster.gateway(1).url));
    await chat.waitOpen();
    const id = await chat.send('Tell me about sorting algorithms like quicksort and merge sort');
    await chat.message(id).locator('[data-testid="reply"][data-done="false"]').waitFor();
    await chat.box.press('Escape');
    await chat.page.waitForSelector(
      `[data-testid="message"][data-id="${id}"][data-status="cancelled"]`,
    );
    await expect(chat.message(id).getByText('stopped').isVisible()).resolves.toBe(true);
    await expect(chat.page.getByRole('button', { name: 'Stop' }).isDisabled()).resolves.toBe(true);
  });
});
