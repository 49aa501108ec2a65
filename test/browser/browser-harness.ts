import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { TestContext } from 'vitest';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const RESULTS = fileURLToPath(new URL('../../test-results/', import.meta.url));

/** Debian's Chromium, headless, with nothing that reaches for the network by itself. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
}

/**
 * Contexts and pages of one test, closed after it; on failure every open page is saved as a
 * screenshot in test-results/ first, with the page's console in the error output.
 */
export class PageSet {
  private contexts: BrowserContext[] = [];
  private readonly consoles = new Map<Page, string[]>();

  constructor(private readonly browser: Browser) {}

  async context(options: Parameters<Browser['newContext']>[0] = {}): Promise<BrowserContext> {
    const context = await this.browser.newContext({
      viewport: { width: 1100, height: 800 },
      ...options,
    });
    context.setDefaultTimeout(15_000);
    context.on('page', (page) => this.watch(page));
    this.contexts.push(context);
    return context;
  }

  async page(url: string, options: Parameters<Browser['newContext']>[0] = {}): Promise<Page> {
    const context = await this.context(options);
    const page = await context.newPage();
    await page.goto(url);
    return page;
  }

  /** Registers the screenshot-on-failure hook of the running test. */
  watchTest(test: TestContext): void {
    test.onTestFailed(async () => {
      mkdirSync(RESULTS, { recursive: true });
      const name = test.task.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 80);
      let index = 0;
      for (const context of this.contexts) {
        for (const page of context.pages()) {
          const path = `${RESULTS}${name}-${index++}.png`;
          await page.screenshot({ path, fullPage: true }).catch(() => undefined);
          console.error(`screenshot: ${path}\n${(this.consoles.get(page) ?? []).join('\n')}`);
        }
      }
    });
  }

  async close(): Promise<void> {
    await Promise.all(
      this.contexts.splice(0).map((context) => context.close().catch(() => undefined)),
    );
    this.consoles.clear();
  }

  private watch(page: Page): void {
    const lines: string[] = [];
    this.consoles.set(page, lines);
    page.on('console', (message) => lines.push(`[${message.type()}] ${message.text()}`));
    page.on('pageerror', (error) => lines.push(`[pageerror] ${error.message}`));
  }
}

/** The chat page's view of things, through the same elements and labels a person uses. */
export class ChatPage {
  constructor(readonly page: Page) {}

  /** The message box, by its label. */
  get box() {
    return this.page.getByRole('textbox', { name: 'Message', exact: true });
  }

  get connection() {
    return this.page.getByTestId('connection');
  }

  messages() {
    return this.page.getByTestId('message');
  }

  /** The chat ids of the messages shown, in order. */
  async ids(): Promise<string[]> {
    const ids: string[] = [];
    for (const message of await this.messages().all()) {
      ids.push((await message.getAttribute('data-id')) ?? '');
    }
    return ids;
  }

  message(id: string) {
    return this.page.locator(`[data-testid="message"][data-id="${id}"]`);
  }

  async waitOpen(gatewayId?: string): Promise<string> {
    const selector = gatewayId
      ? `[data-testid="connection"][data-state="open"][data-gateway="${gatewayId}"]`
      : '[data-testid="connection"][data-state="open"]';
    await this.page.waitForSelector(selector);
    return (await this.connection.getAttribute('data-gateway')) ?? '';
  }

  /** Types a message and presses Enter; resolves with the new message's chat id. */
  async send(text: string): Promise<string> {
    const before = await this.messages().count();
    const box = this.box;
    await box.fill(text);
    await box.press('Enter');
    const added = this.messages().nth(before);
    await added.waitFor();
    return (await added.getAttribute('data-id')) ?? '';
  }

  async waitReplyDone(id: string, timeout = 20_000): Promise<string> {
    const reply = this.message(id).locator('[data-testid="reply"][data-done="true"]');
    await reply.waitFor({ timeout });
    return (await reply.getByTestId('reply-text').textContent()) ?? '';
  }

  async replyText(id: string): Promise<string> {
    return (await this.message(id).getByTestId('reply-text').textContent()) ?? '';
  }

  /** The session the page keeps in localStorage. */
  async session(): Promise<{ session: string; token: string }> {
    const saved = await this.page.evaluate<string | null>("localStorage.getItem('chorus.session')");
    const parsed = JSON.parse(saved ?? '{}') as { sessionId?: string; token?: string };
    if (!parsed.sessionId || !parsed.token) throw new Error('the page has no session');
    return { session: parsed.sessionId, token: parsed.token };
  }
}
