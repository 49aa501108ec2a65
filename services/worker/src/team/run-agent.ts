import { TOOL_SPECS } from '../knowledge/graph-tools.js';
import type { ChatMessage, ModelObserver, ToolCall } from '../providers/chat-model.js';
import type { WorkerContext } from '../worker-context.js';
import type { AgentLog } from './agent-log.js';
import type { AgentSpec } from './team-config.js';

/** Model turns of one agent at most; the last one is offered no tools, so it must answer. */
const MAX_ROUNDS = 4;

export interface AgentTurn {
  text: string;
  inputTokens: number;
  outputTokens: number;
}

export interface AgentIO {
  /** Streamed text, as it comes (speaking agents). */
  onText?: (text: string) => void;
  log: AgentLog;
  observer: ModelObserver;
  signal: AbortSignal;
}

/** Runs one agent: streams its answer and carries out the tool calls it makes on the way. */
export async function runAgent(
  ctx: WorkerContext,
  agent: AgentSpec,
  prompt: ChatMessage[],
  io: AgentIO,
): Promise<AgentTurn> {
  const messages = [...prompt];
  const model = agent.model ?? ctx.model.model;
  const turn: AgentTurn = { text: '', inputTokens: 0, outputTokens: 0 };
  for (let round = 1; round <= MAX_ROUNDS; round++) {
    const tools = round < MAX_ROUNDS ? agent.tools.map((name) => TOOL_SPECS[name]) : [];
    const started = performance.now();
    let calls: ToolCall[] = [];
    let roundText = '';
    try {
      for await (const chunk of ctx.model.stream(
        {
          agent: agent.name,
          ...(agent.model ? { model: agent.model } : {}),
          messages,
          ...(tools.length > 0 ? { tools } : {}),
          offlineStyle: agent.offline,
          signal: io.signal,
        },
        io.observer,
      )) {
        if (chunk.kind === 'text') {
          if (roundText === '')
            ctx.metrics.llmFirstToken(agent.name, model, (performance.now() - started) / 1000);
          roundText += chunk.text;
          io.onText?.(chunk.text);
        } else if (chunk.kind === 'tool_calls') {
          calls = chunk.calls;
        } else {
          turn.inputTokens += chunk.inputTokens;
          turn.outputTokens += chunk.outputTokens;
        }
      }
    } catch (error) {
      const outcome = io.signal.aborted ? 'aborted' : 'error';
      ctx.metrics.llmCall(agent.name, model, outcome, (performance.now() - started) / 1000);
      throw error;
    }
    ctx.metrics.llmCall(agent.name, model, 'ok', (performance.now() - started) / 1000);
    turn.text += roundText;
    if (calls.length === 0) break;
    messages.push({ role: 'assistant', content: roundText || null, toolCalls: calls });
    for (const call of calls) {
      void io.log.write(
        agent.name,
        'info',
        'tool',
        `${call.name}(${call.arguments.slice(0, 120)})`,
      );
      const result = await ctx.tools.run(call.name, call.arguments);
      void io.log.write(agent.name, result.ok ? 'info' : 'warn', 'tool-result', result.summary);
      messages.push({ role: 'tool', toolCallId: call.id, content: result.content });
    }
  }
  ctx.metrics.llmTokens(agent.name, model, turn.inputTokens, turn.outputTokens);
  return turn;
}
