import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { GraphStore, KeySchema } from '@chorus/state';
import { GraphTools } from './graph-tools.js';
import { KnowledgeBase } from './knowledge-base.js';

describe('GraphTools', () => {
  const prefix = `t${randomBytes(5).toString('hex')}`;
  let redis: Redis;
  let store: GraphStore;
  let tools: GraphTools;

  beforeAll(async () => {
    redis = new Redis(inject('redisUrl'));
    store = new GraphStore(redis, new KeySchema(prefix));
    await store.seed(
      {
        nodes: [
          {
            id: 'binary-search',
            label: 'Binary search',
            type: 'algorithm',
            description: 'Halves a sorted range.',
          },
          {
            id: 'sorted-array',
            label: 'Sorted array',
            type: 'data-structure',
            description: 'Items in order.',
          },
        ],
        edges: [{ source: 'binary-search', target: 'sorted-array', label: 'requires' }],
      },
      'v1',
    );
    const knowledge = new KnowledgeBase(store);
    await knowledge.refresh();
    tools = new GraphTools(store, knowledge);
  });
  afterAll(async () => {
    const keys = await redis.keys(`*${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('answers searches and neighbour questions from the graph', async () => {
    const search = await tools.run('search_concepts', '{"query":"binary search"}');
    expect(search.ok).toBe(true);
    expect(JSON.parse(search.content)).toEqual([expect.objectContaining({ id: 'binary-search' })]);
    const neighbours = await tools.run('concept_neighbours', '{"id":"sorted-array"}');
    expect(JSON.parse(neighbours.content)).toMatchObject({
      neighbours: [{ id: 'binary-search', relation: 'requires', direction: 'in' }],
    });
  });

  it('returns precise errors for bad calls instead of throwing', async () => {
    const cases: [string, string, RegExp][] = [
      ['drop_tables', '{}', /unknown tool drop_tables/],
      ['search_concepts', '{not json', /arguments are not valid JSON/],
      ['search_concepts', '{"query":""}', /search_concepts: query/],
      [
        'add_concept',
        '{"label":"X","type":"spell","description":"A made-up thing here."}',
        /add_concept: label|add_concept: type/,
      ],
      [
        'add_relation',
        '{"source":"binary-search","target":"binary-search","label":"uses"}',
        /cannot relate to itself/,
      ],
      [
        'add_relation',
        '{"source":"binary-search","target":"no-such","label":"uses"}',
        /no concept with id no-such/,
      ],
      ['concept_neighbours', '{"id":"Bad Id"}', /must be a concept id/],
    ];
    for (const [name, args, message] of cases) {
      const result = await tools.run(name, args);
      expect(result.ok, `${name} ${args}`).toBe(false);
      expect(JSON.parse(result.content)).toEqual({ error: expect.stringMatching(message) });
    }
  });

  it('adds concepts and relations once, visible in Redis at once', async () => {
    const concept =
      '{"label":"Interpolation search","type":"algorithm","description":"Guesses the position from the key value."}';
    expect((await tools.run('add_concept', concept)).summary).toBe(
      'added concept interpolation-search',
    );
    expect((await tools.run('add_concept', concept)).summary).toBe(
      'concept interpolation-search exists already',
    );
    const relation = '{"source":"interpolation-search","target":"sorted-array","label":"requires"}';
    expect((await tools.run('add_relation', relation)).summary).toBe(
      'added relation interpolation-search requires sorted-array',
    );
    expect((await tools.run('add_relation', relation)).ok).toBe(true);
    expect(await store.counts()).toEqual({ nodes: 3, edges: 2 });
    expect(await store.node('interpolation-search')).toMatchObject({ type: 'algorithm' });
  });
});
