import WebSocket from 'ws';

/** A frame as the server sent it; tests look at fields by name. */
export type Frame = { type: string; eventId?: string; [field: string]: unknown };

export interface ConnectOptions {
  session?: string;
  token?: string;
  lastEventId?: string;
  origin?: string;
  /** More request headers (e.g. X-Forwarded-For behind a trusted proxy). */
  headers?: Record<string, string>;
}

export interface Reply {
  start: Frame;
  deltas: string;
  end: Frame;
}

/**
 * What a browser tab does, on a real WebSocket: it records every frame, in order, so tests
 * assert on what a user would see.
 */
export class TestBrowser {
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data, isBinary) => {
      this.frames.push(
        isBinary ? { type: '<binary>' } : (JSON.parse((data as Buffer).toString('utf8')) as Frame),
      );
      for (const waiter of [...this.waiters]) waiter();
    });
    this.closed = new Promise((resolve) => {
      socket.once('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const waiter of [...this.waiters]) waiter();
      });
    });
  }

  static url(base: string, options: ConnectOptions = {}): string {
    const params = new URLSearchParams();
    if (options.session !== undefined) params.set('session', options.session);
    if (options.token !== undefined) params.set('token', options.token);
    if (options.lastEventId !== undefined) params.set('lastEventId', options.lastEventId);
    const query = params.toString();
    return query ? `${base}?${query}` : base;
  }

  /** Opens a socket; resolves once the upgrade succeeded (before `welcome`). */
  static connect(base: string, options: ConnectOptions = {}): Promise<TestBrowser> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(TestBrowser.url(base, options), {
        headers: { Origin: options.origin ?? 'http://localhost:8080', ...options.headers },
      });
      const browser = new TestBrowser(socket);
      socket.once('open', () => resolve(browser));
      socket.once('unexpected-response', (_req, res) =>
        reject(new UpgradeRefused(res.statusCode ?? 0)),
      );
      socket.once('error', reject);
    });
  }

  /** Opens a socket and waits for its welcome. */
  static async open(
    base: string,
    options: ConnectOptions = {},
  ): Promise<{ browser: TestBrowser; welcome: Frame }> {
    const browser = await TestBrowser.connect(base, options);
    return { browser, welcome: await browser.next('welcome') };
  }

  send(frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  chat(id: string, text: string): void {
    this.send({ type: 'chat', id, text });
  }

  /** The first frame (from the start of the recording) that matches, waiting if needed. */
  waitFor(match: (frame: Frame) => boolean, timeoutMs = 15_000, from = 0): Promise<Frame> {
    return new Promise((resolve, reject) => {
      // Each check looks only at frames it has not seen yet: a long recording stays linear.
      let scanned = from;
      const check = () => {
        let found: Frame | undefined;
        while (!found && scanned < this.frames.length) {
          const frame = this.frames[scanned++]!;
          if (match(frame)) found = frame;
        }
        if (found) {
          done();
          resolve(found);
        } else if (this.socket.readyState === WebSocket.CLOSED) {
          done();
          reject(new Error(`socket closed before the frame came; got ${this.describe()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no matching frame in ${timeoutMs} ms; got ${this.describe()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      this.waiters.push(check);
      check();
    });
  }

  next(type: string, timeoutMs?: number): Promise<Frame> {
    return this.waitFor((f) => f.type === type, timeoutMs);
  }

  /** Waits for the answer to a chat id: its last reply.start, the deltas after it, and reply.end. */
  async reply(id: string, timeoutMs = 20_000): Promise<Reply> {
    const end = await this.waitFor(
      (f) => (f.type === 'reply.end' || f.type === 'error') && f.replyTo === id,
      timeoutMs,
    );
    if (end.type === 'error') throw new Error(`reply to ${id} failed: ${JSON.stringify(end)}`);
    const mine = this.frames.filter((f) => f.replyTo === id);
    const startIndex = mine.map((f) => f.type).lastIndexOf('reply.start');
    const start = mine[startIndex];
    if (!start) throw new Error(`reply.end without reply.start for ${id}`);
    const deltas = mine
      .slice(startIndex)
      .filter((f) => f.type === 'reply.delta')
      .map((f) => String(f.text))
      .join('');
    return { start, deltas, end };
  }

  /** Session events received (frames with an eventId). */
  events(): Frame[] {
    return this.frames.filter((f) => f.eventId !== undefined && f.type !== 'ack');
  }

  close(code = 1000): void {
    this.socket.close(code);
  }

  terminate(): void {
    this.socket.terminate();
  }

  private describe(): string {
    return JSON.stringify(this.frames.map((f) => f.type)).slice(0, 400);
  }
}

export class UpgradeRefused extends Error {
  constructor(readonly status: number) {
    super(`upgrade refused with HTTP ${status}`);
  }
}
