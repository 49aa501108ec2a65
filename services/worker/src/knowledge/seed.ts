import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Graph, GraphStore } from '@chorus/state';

const SEED_FILE = new URL('../../data/knowledge-graph.json', import.meta.url);

/** Loads the shipped curriculum graph into Redis unless this exact data set is there already. */
export async function seedKnowledgeGraph(
  store: GraphStore,
): Promise<{ loaded: boolean; nodes: number; edges: number }> {
  const raw = readFileSync(SEED_FILE, 'utf8');
  const graph = JSON.parse(raw) as Graph;
  const version = createHash('sha256').update(raw).digest('hex').slice(0, 16);
  const loaded = await store.seed(graph, version);
  return { loaded, nodes: graph.nodes.length, edges: graph.edges.length };
}
