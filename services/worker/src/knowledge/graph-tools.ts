import { z } from 'zod';
import type { GraphStore } from '@chorus/state';
import type { KnowledgeBase } from './knowledge-base.js';

export const TOOL_NAMES = [
  'search_concepts',
  'concept_neighbours',
  'add_concept',
  'add_relation',
] as const;
export type ToolName = (typeof TOOL_NAMES)[number];

export const NODE_TYPES = [
  'topic',
  'concept',
  'algorithm',
  'data-structure',
  'protocol',
  'technique',
  'tool',
  'theorem',
  'language',
] as const;
export const RELATIONS = [
  'part-of',
  'requires',
  'related-to',
  'example-of',
  'implements',
  'uses',
  'contrasts-with',
  'generalizes',
] as const;

/** A function the model may call, in the OpenAI tools format. */
export interface ToolSpec {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
}

const conceptId = z
  .string()
  .regex(/^[a-z0-9-]{1,48}$/, { error: 'must be a concept id like binary-search' });

const ARGS = {
  search_concepts: z.object({
    query: z.string().min(1).max(200),
    limit: z.number().int().min(1).max(10).default(5),
  }),
  concept_neighbours: z.object({ id: conceptId }),
  add_concept: z.object({
    label: z.string().trim().min(2).max(80),
    type: z.enum(NODE_TYPES),
    description: z.string().trim().min(10).max(300),
  }),
  add_relation: z.object({ source: conceptId, target: conceptId, label: z.enum(RELATIONS) }),
} satisfies Record<ToolName, z.ZodType>;

export const TOOL_SPECS: Record<ToolName, ToolSpec> = {
  search_concepts: {
    name: 'search_concepts',
    description:
      'Find concepts of the knowledge graph by keywords; returns ids, labels, types and descriptions.',
    parameters: {
      type: 'object',
      properties: {
        query: { type: 'string' },
        limit: { type: 'integer', minimum: 1, maximum: 10 },
      },
      required: ['query'],
    },
  },
  concept_neighbours: {
    name: 'concept_neighbours',
    description:
      'The concepts directly related to a concept (by id), with the relation and its direction.',
    parameters: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
  },
  add_concept: {
    name: 'add_concept',
    description:
      'Add a concept to the knowledge graph; nothing happens if one with the same id exists.',
    parameters: {
      type: 'object',
      properties: {
        label: { type: 'string' },
        type: { type: 'string', enum: [...NODE_TYPES] },
        description: { type: 'string', description: 'one or two factual sentences' },
      },
      required: ['label', 'type', 'description'],
    },
  },
  add_relation: {
    name: 'add_relation',
    description: 'Relate two existing concepts (by id); nothing happens if the relation exists.',
    parameters: {
      type: 'object',
      properties: {
        source: { type: 'string' },
        target: { type: 'string' },
        label: { type: 'string', enum: [...RELATIONS] },
      },
      required: ['source', 'target', 'label'],
    },
  },
};

export interface ToolResult {
  ok: boolean;
  /** What the model gets back, as JSON. */
  content: string;
  /** One line for agent.log. */
  summary: string;
}

export const conceptIdOf = (label: string) =>
  label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48);

/** The knowledge-graph tools: arguments validated, additions deduplicated, errors returned, never thrown. */
export class GraphTools {
  constructor(
    private readonly store: GraphStore,
    private readonly knowledge: KnowledgeBase,
  ) {}

  async run(name: string, rawArguments: string): Promise<ToolResult> {
    if (!(TOOL_NAMES as readonly string[]).includes(name))
      return failure(`unknown tool ${name.slice(0, 40)}`);
    let args: unknown;
    try {
      args = JSON.parse(rawArguments || '{}');
    } catch {
      return failure(`${name}: arguments are not valid JSON`);
    }
    switch (name as ToolName) {
      case 'search_concepts':
        return withArgs(ARGS.search_concepts, name, args, ({ query, limit }) => {
          const hits = this.knowledge.search(query, limit).map(({ node }) => node);
          return success(
            hits,
            `search "${query}": ${hits.map((n) => n.id).join(', ') || 'no match'}`,
          );
        });
      case 'concept_neighbours':
        return withArgs(ARGS.concept_neighbours, name, args, ({ id }) => {
          const node = this.knowledge.node(id);
          if (!node) return failure(`no concept with id ${id}`);
          const neighbours = this.knowledge.neighbours(id);
          return success(
            { concept: node, neighbours },
            `neighbours of ${id}: ${neighbours.length}`,
          );
        });
      case 'add_concept':
        return withArgs(ARGS.add_concept, name, args, (input) => this.addConcept(input));
      case 'add_relation':
        return withArgs(ARGS.add_relation, name, args, (edge) => this.addRelation(edge));
    }
  }

  private async addConcept(input: z.infer<typeof ARGS.add_concept>): Promise<ToolResult> {
    const id = conceptIdOf(input.label);
    if (id.length === 0) return failure('add_concept: label needs letters or digits');
    const node = { id, label: input.label, type: input.type, description: input.description };
    const added = await this.store.addNode(node);
    if (added) this.knowledge.addNode(node);
    return success({ id, added }, added ? `added concept ${id}` : `concept ${id} exists already`);
  }

  private async addRelation(edge: z.infer<typeof ARGS.add_relation>): Promise<ToolResult> {
    if (edge.source === edge.target)
      return failure('add_relation: a concept cannot relate to itself');
    for (const id of [edge.source, edge.target]) {
      if (!this.knowledge.node(id) && !(await this.store.node(id))) {
        return failure(`add_relation: no concept with id ${id}`);
      }
    }
    const added = await this.store.addEdge(edge);
    if (added) this.knowledge.addEdge(edge);
    const line = `${edge.source} ${edge.label} ${edge.target}`;
    return success({ added }, added ? `added relation ${line}` : `relation ${line} exists already`);
  }
}

/** Validates a tool's arguments; the model gets the first problem back as the tool's result. */
async function withArgs<T>(
  schema: z.ZodType<T>,
  name: string,
  args: unknown,
  run: (value: T) => ToolResult | Promise<ToolResult>,
): Promise<ToolResult> {
  const parsed = schema.safeParse(args);
  if (parsed.success) return run(parsed.data);
  const issue = parsed.error.issues[0];
  return failure(
    `${name}: ${issue?.path.join('.') ?? ''} ${issue?.message ?? 'invalid arguments'}`.replace(
      /\s+/g,
      ' ',
    ),
  );
}

const success = (value: unknown, summary: string): ToolResult => ({
  ok: true,
  content: JSON.stringify(value),
  summary,
});
const failure = (message: string): ToolResult => ({
  ok: false,
  content: JSON.stringify({ error: message }),
  summary: message,
});
