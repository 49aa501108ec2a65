import { z } from 'zod';
import type { ModelObserver } from '../providers/chat-model.js';
import { callModel } from './call-model.js';
import type { WorkerContext } from '../worker-context.js';
import type { AgentLog } from './agent-log.js';
import type { AgentSpec, TeamSpec } from './team-config.js';

export interface Route {
  lead: AgentSpec;
  support: AgentSpec[];
  by: 'model' | 'keywords';
}

/** Where the tokens of the routing call are added up. */
export interface Usage {
  inputTokens: number;
  outputTokens: number;
}

const RouteArgs = z.object({ lead: z.string(), support: z.array(z.string()).default([]) });

/**
 * The coordinator's decision: who leads the answer and who helps. With a model, the coordinator
 * calls a `route` function; without one, or when that fails, keywords of the team file decide.
 */
export async function routeMessage(
  ctx: WorkerContext,
  text: string,
  signal: AbortSignal,
  log: AgentLog,
  observer: ModelObserver,
  usage: Usage,
): Promise<Route> {
  const { team } = ctx;
  if (!ctx.model.offline) {
    try {
      const route = await routeByModel(ctx, text, signal, observer, usage);
      if (route) return route;
      log.write(
        team.coordinator.name,
        'warn',
        'routing',
        'the model gave no valid route; routing by keywords',
      );
    } catch (error) {
      if (signal.aborted) throw error;
      const reason = error instanceof Error ? error.message : 'unknown error';
      log.write(
        team.coordinator.name,
        'warn',
        'routing',
        `routing by model failed (${reason}); routing by keywords`,
      );
    }
  }
  return routeByKeywords(team, text);
}

async function routeByModel(
  ctx: WorkerContext,
  text: string,
  signal: AbortSignal,
  observer: ModelObserver,
  usage: Usage,
): Promise<Route | null> {
  const { team } = ctx;
  const speakers = team.agents.filter((a) => a.speaks).map((a) => a.name);
  const roster = team.agents.map((a) => `- ${a.name}: ${a.role}`).join('\n');
  const result = await callModel(
    ctx,
    {
      agent: team.coordinator.name,
      ...(team.coordinator.model ? { model: team.coordinator.model } : {}),
      messages: [
        { role: 'system', content: `${team.coordinator.systemPrompt}\n\nThe team:\n${roster}` },
        { role: 'user', content: text },
      ],
      tools: [
        {
          name: 'route',
          description: 'Choose who leads the answer and who else helps.',
          parameters: {
            type: 'object',
            properties: {
              lead: { type: 'string', enum: speakers },
              support: {
                type: 'array',
                items: { type: 'string', enum: team.agents.map((a) => a.name) },
              },
            },
            required: ['lead'],
          },
        },
      ],
      requireTool: 'route',
      signal,
    },
    observer,
  );
  usage.inputTokens += result.inputTokens;
  usage.outputTokens += result.outputTokens;
  const args = result.calls.find((c) => c.name === 'route')?.arguments ?? '';
  let raw: unknown;
  try {
    raw = JSON.parse(args);
  } catch {
    return null;
  }
  const parsed = RouteArgs.safeParse(raw);
  const lead = parsed.success
    ? team.agents.find((a) => a.name === parsed.data.lead && a.speaks)
    : undefined;
  if (!parsed.success || !lead) return null;
  const support = team.agents.filter((a) => a !== lead && parsed.data.support.includes(a.name));
  return { lead, support, by: 'model' };
}

/** The lead is the speaking agent whose keywords match best (else the default lead); every other agent with a match helps. */
export function routeByKeywords(team: TeamSpec, text: string): Route {
  const lower = text.toLowerCase();
  const score = (agent: AgentSpec) =>
    agent.keywords.filter((k) => lower.includes(k.toLowerCase())).length;
  const fallback = team.agents.find((a) => a.name === team.defaultLead)!;
  const lead = team.agents
    .filter((a) => a.speaks)
    .reduce((best, agent) => (score(agent) > score(best) ? agent : best), fallback);
  const support = team.agents.filter((a) => a !== lead && score(a) > 0);
  return { lead, support, by: 'keywords' };
}
