import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A message of a chat request, as the worker sent it. */
export interface FakeMessage {
  role: string;
  content: string | null;
  tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[];
  tool_call_id?: string;
}

/** A /v1/chat/completions request body, as the worker sent it. */
export interface FakeRequest {
  model: string;
  stream?: boolean;
  messages: FakeMessage[];
  tools?: { type: string; function: { name: string } }[];
  tool_choice?: { type?: string; function?: { name?: string } } | string;
}

/** True for the coordinator's routing requests: they force the `route` function. */
export function isRouteRequest(body: FakeRequest): boolean {
  return typeof body.tool_choice === 'object' && body.tool_choice.function?.name === 'route';
}

/** The last user message of a request. */
export function lastUserText(body: FakeRequest): string {
  return [...body.messages].reverse().find((m) => m.role === 'user')?.content ?? '';
}

/** The user's question a request answers: the last user message. */
export function questionOf(body: FakeRequest): string {
  return lastUserText(body);
}

/**
 * An OpenAI-compatible /v1/chat/completions server of our own. The user's question picks the
 * behaviour, for every request (routing ones too): `FAIL500` (always 500), `FAIL429ONCE` (429
 * once per caller and text, then fine), `BOOM` (a malformed stream), `HANG` (never answers),
 * `SLOW` (100 ms between chunks).
 *
 * Routing requests (`tool_choice` forcing `route`) get a streamed `route` call: tutor leads by
 * default; `RESEARCH` → researcher; `TEAMWORK` → tutor with researcher and curator;
 * `BADROUTEAGENT` → an unknown lead; `BADROUTE` → arguments that are not JSON.
 *
 * Agent requests that offer tools: `TOOLSEARCH` → search_concepts {"query":"binary search"}, then
 * (once a tool message is there) "Found: <first 40 chars of the tool result>"; `TOOLADD <suffix>` →
 * add_concept "Fake Test Concept <suffix>", then "Added."; `NOTOOLS` → plain text. The curator
 * (system prompt "You are the curator"), with `TEAMWORK`: add_concept for the label after `ADD:`,
 * or "nothing to add". `TOOLLOOP`: search_concepts whenever tools are offered, else "No more
 * tools.". `FAILHELPERS`: 500 for every agent but the tutor (routing and the tutor are fine).
 * Anything else streams "Echo: <last user message>".
 */
export class FakeOpenAI {
  readonly requests: FakeRequest[] = [];
  private failedOnce = new Set<string>();
  private readonly hung: ServerResponse[] = [];
  private callCount = 0;

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

  /** The coordinator's routing requests. */
  routeRequests(): FakeRequest[] {
    return this.requests.filter(isRouteRequest);
  }

  /** The agents' requests (everything but routing). */
  answerRequests(): FakeRequest[] {
    return this.requests.filter((r) => !isRouteRequest(r));
  }

  /** Requests (routing and answers) for the user's question `text`. */
  requestsAbout(text: string): FakeRequest[] {
    return this.requests.filter((r) => questionOf(r) === text);
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
    const body = JSON.parse(raw) as FakeRequest;
    this.requests.push(body);
    const text = lastUserText(body);
    const question = questionOf(body);
    const system = body.messages.find((m) => m.role === 'system')?.content ?? '';
    const error = (status: number, headers: Record<string, string> = {}): void => {
      res
        .writeHead(status, { 'content-type': 'application/json', ...headers })
        .end(JSON.stringify({ error: { message: `fake ${status}`, type: 'server_error' } }));
    };

    if (question.includes('FAIL500')) return error(500);
    if (
      question.includes('FAILHELPERS') &&
      !isRouteRequest(body) &&
      !system.startsWith('You are the tutor')
    ) {
      return error(500, { 'retry-after-ms': '1' });
    }
    const onceKey = `${system.slice(0, 40)}\n${question}`;
    if (question.includes('FAIL429ONCE') && !this.failedOnce.has(onceKey)) {
      this.failedOnce.add(onceKey);
      return error(429, { 'retry-after': '0' });
    }
    if (question.includes('HANG')) {
      this.hung.push(res);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = (data: unknown) =>
      res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
    const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
      id: 'chatcmpl-fake',
      object: 'chat.completion.chunk',
      created: 0,
      model: body.model,
      choices: [{ index: 0, delta, finish_reason: finish }],
    });
    const finish = (outputTokens: number) => {
      send({
        id: 'chatcmpl-fake',
        object: 'chat.completion.chunk',
        created: 0,
        model: body.model,
        choices: [],
        usage: {
          prompt_tokens: 10,
          completion_tokens: outputTokens,
          total_tokens: 10 + outputTokens,
        },
      });
      send('[DONE]');
      res.end();
    };
    const streamText = async (answer: string) => {
      const words = answer.match(/\S+\s*/g) ?? [];
      for (const word of words) {
        if (res.destroyed) return;
        send(chunk({ content: word }));
        if (question.includes('SLOW')) await new Promise((r) => setTimeout(r, 100));
      }
      send(chunk({}, 'stop'));
      finish(words.length);
    };
    /** One tool call, its arguments split over several chunks (the worker must join them). */
    const streamToolCall = (name: string, args: string) => {
      const id = `call_fake_${++this.callCount}`;
      send(
        chunk({
          role: 'assistant',
          content: null,
          tool_calls: [{ index: 0, id, type: 'function', function: { name, arguments: '' } }],
        }),
      );
      const cut = Math.max(1, Math.floor(args.length / 2));
      for (const part of [args.slice(0, cut), args.slice(cut)]) {
        if (part) send(chunk({ tool_calls: [{ index: 0, function: { arguments: part } }] }));
      }
      send(chunk({}, 'tool_calls'));
      finish(5);
    };

    if (question.includes('BOOM')) {
      send(chunk({ content: 'This will ' }));
      send('{"not json');
      res.end();
      return;
    }
    if (isRouteRequest(body)) return streamToolCall('route', routeArguments(question));

    const offersTools = (body.tools?.length ?? 0) > 0 && body.tool_choice === undefined;
    const toolResult = body.messages.findLast((m) => m.role === 'tool')?.content ?? undefined;
    if (system.startsWith('You are the curator') && question.includes('TEAMWORK')) {
      if (toolResult !== undefined) return streamText(`Curated: ${toolResult.slice(0, 40)}`);
      const label = /ADD:\s*(.+)$/m.exec(question)?.[1]?.trim().slice(0, 80);
      if (!label || !offersTools) return streamText('nothing to add');
      return streamToolCall('add_concept', conceptArguments(label));
    }
    if (question.includes('TOOLSEARCH')) {
      if (toolResult !== undefined) return streamText(`Found: ${toolResult.slice(0, 40)}`);
      if (offersTools) return streamToolCall('search_concepts', '{"query":"binary search"}');
    }
    if (question.includes('TOOLLOOP')) {
      if (offersTools) return streamToolCall('search_concepts', '{"query":"binary search"}');
      return streamText('No more tools.');
    }
    if (question.includes('TOOLADD')) {
      if (toolResult !== undefined) return streamText('Added.');
      if (offersTools) {
        const suffix = /TOOLADD\s+(\w+)/.exec(question)?.[1] ?? 'x';
        return streamToolCall('add_concept', conceptArguments(`Fake Test Concept ${suffix}`));
      }
    }
    return streamText(`Echo: ${text}`);
  }
}

function routeArguments(question: string): string {
  if (question.includes('BADROUTEAGENT')) return '{"lead":"wizard","support":[]}';
  if (question.includes('BADROUTE')) return '{"lead": "tutor", "support": [';
  if (question.includes('TEAMWORK')) return '{"lead":"tutor","support":["researcher","curator"]}';
  if (question.includes('RESEARCH')) return '{"lead":"researcher","support":[]}';
  return '{"lead":"tutor","support":[]}';
}

const conceptArguments = (label: string) =>
  JSON.stringify({
    label,
    type: 'concept',
    description: 'A concept added by the fake model in a test.',
  });
