import { TOOL_SPECS } from '../knowledge/graph-tools.js';
import type { ChatMessage, ModelObserver } from '../providers/chat-model.js';
import type { WorkerContext } from '../worker-context.js';
import type { AgentLog } from './agent-log.js';
import { callModel } from './call-model.js';
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
  const turn: AgentTurn = { text: '', inputTokens: 0, outputTokens: 0 };
  for (let round = 1; round <= MAX_ROUNDS; round++) {
    const tools = round < MAX_ROUNDS ? agent.tools.map((name) => TOOL_SPECS[name]) : [];
    const result = await callModel(
      ctx,
      {
        agent: agent.name,
        ...(agent.model ? { model: agent.model } : {}),
        messages,
        ...(tools.length > 0 ? { tools } : {}),
        offlineStyle: agent.offline,
        signal: io.signal,
      },
      io.observer,
      io.onText,
    );
    turn.text += result.text;
    turn.inputTokens += result.inputTokens;
    turn.outputTokens += result.outputTokens;
    if (result.calls.length === 0) break;
    messages.push({ role: 'assistant', content: result.text || null, toolCalls: result.calls });
    for (const call of result.calls) {
      io.log.write(agent.name, 'info', 'tool', `${call.name}(${call.arguments.slice(0, 120)})`);
      const outcome = await ctx.tools.run(call.name, call.arguments);
      io.log.write(agent.name, outcome.ok ? 'info' : 'warn', 'tool-result', outcome.summary);
      messages.push({ role: 'tool', toolCallId: call.id, content: outcome.content });
    }
  }
  return turn;
}
