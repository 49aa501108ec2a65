import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

interface ChatBody {
  model: string;
  stream?: boolean;
  messages: { role: string; content: string }[];
}

/**
 * An OpenAI-compatible /v1/chat/completions server of our own. The last user message picks the
 * behaviour: `FAIL500` (always 500), `FAIL429ONCE` (429 once, then fine), `BOOM` (a malformed
 * stream), `HANG` (never answers), `SLOW` (100 ms between chunks); anything else streams
 * "Echo: <text>".
 */
export class FakeOpenAI {
  readonly requests: ChatBody[] = [];
  private failedOnce = new Set<string>();
  private readonly hung: ServerResponse[] = [];

  private constructor(private readonly server: Server) {}

  static async start(): Promise<FakeOpenAI> {
    const handlers: { fake?: FakeOpenAI } = {};
    const server = createServer((req, res) => void handlers.fake?.handle(req, res));
    const fake = (handlers.fake = new FakeOpenAI(server));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  get baseURL(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`;
  }

  async stop(): Promise<void> {
    for (const res of this.hung) res.destroy();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let raw = '';
    for await (const chunk of req) raw += String(chunk);
    if (req.url !== '/v1/chat/completions') {
      res.writeHead(404).end();
      return;
    }
    const body = JSON.parse(raw) as ChatBody;
    this.requests.push(body);
    const text = [...body.messages].reverse().find((m) => m.role === 'user')?.content ?? '';
    const error = (status: number, headers: Record<string, string> = {}): void => {
      res
        .writeHead(status, { 'content-type': 'application/json', ...headers })
        .end(JSON.stringify({ error: { message: `fake ${status}`, type: 'server_error' } }));
    };

    if (text.includes('FAIL500')) return error(500);
    if (text.includes('FAIL429ONCE') && !this.failedOnce.has(text)) {
      this.failedOnce.add(text);
      return error(429, { 'retry-after': '0' });
    }
    if (text.includes('HANG')) {
      this.hung.push(res);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = (data: unknown) =>
      res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
    const chunk = (content: string) => ({
      id: 'chatcmpl-fake',
      object: 'chat.completion.chunk',
      created: 0,
      model: body.model,
      choices: [{ index: 0, delta: { content }, finish_reason: null }],
    });
    if (text.includes('BOOM')) {
      send(chunk('This will '));
      send('{"not json');
      res.end();
      return;
    }
    const words = `Echo: ${text}`.match(/\S+\s*/g) ?? [];
    for (const word of words) {
      if (res.destroyed) return;
      send(chunk(word));
      if (text.includes('SLOW')) await new Promise((r) => setTimeout(r, 100));
    }
    send({
      id: 'chatcmpl-fake',
      object: 'chat.completion.chunk',
      created: 0,
      model: body.model,
      choices: [],
      usage: {
        prompt_tokens: 10,
        completion_tokens: words.length,
        total_tokens: 10 + words.length,
      },
    });
    send('[DONE]');
    res.end();
  }
}
