import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { TOOL_NAMES } from '../knowledge/graph-tools.js';

const name = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,31}$/, { error: 'must be 1-32 characters of [a-z0-9-]' });

const AgentSpec = z.object({
  name,
  role: z.string().min(1).max(300),
  systemPrompt: z.string().min(1).max(8_000),
  tools: z.array(z.enum(TOOL_NAMES)).default([]),
  /** Speaking agents stream into the reply; the others only act and log. */
  speaks: z.boolean().default(true),
  /** A model for this agent instead of OPENAI_MODEL. */
  model: z.string().min(1).optional(),
  /** What the offline provider does for this agent: explain a concept, list relations, or nothing. */
  offline: z.enum(['explain', 'relations', 'none']).default('explain'),
  /** Words that route a message to this agent when no model routes it. */
  keywords: z.array(z.string().min(1)).default([]),
});

const TeamSpec = z
  .object({
    coordinator: z.object({
      name,
      systemPrompt: z.string().min(1),
      model: z.string().min(1).optional(),
    }),
    defaultLead: name,
    agents: z.array(AgentSpec).min(1).max(12),
  })
  .superRefine((team, issues) => {
    const names = team.agents.map((a) => a.name);
    if (new Set(names).size !== names.length)
      issues.addIssue({ code: 'custom', message: 'agent names must be unique', path: ['agents'] });
    const lead = team.agents.find((a) => a.name === team.defaultLead);
    if (!lead?.speaks)
      issues.addIssue({
        code: 'custom',
        message: 'must name an agent that speaks',
        path: ['defaultLead'],
      });
  });

export type AgentSpec = z.infer<typeof AgentSpec>;
export type TeamSpec = z.infer<typeof TeamSpec>;

export class TeamConfigError extends Error {
  override readonly name = 'TeamConfigError';
}

/** Reads and validates the team file; the error names the file and the field. */
export function loadTeam(path: string): TeamSpec {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new TeamConfigError(
      `team file ${path}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  const parsed = TeamSpec.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`,
    );
    throw new TeamConfigError(`team file ${path} is invalid:\n${problems.join('\n')}`);
  }
  return parsed.data;
}

export const DEFAULT_TEAM_FILE = new URL('../../team.json', import.meta.url).pathname;
