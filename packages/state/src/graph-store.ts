import type { Redis } from 'ioredis';
import type { KeySchema } from './keys.js';

export interface GraphNode {
  id: string;
  label: string;
  type: string;
  description?: string;
}
export interface GraphEdge {
  source: string;
  target: string;
  label: string;
}
export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

const edgeKey = (e: GraphEdge) => `${e.source}|${e.label}|${e.target}`;
const BATCH = 500;

/** The knowledge graph in Redis: nodes by id, edges by (source, label, target), so both dedupe. */
export class GraphStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: KeySchema,
  ) {}

  /**
   * Loads a shipped data set unless this version was loaded already. Safe to run from several
   * processes at once: writes are idempotent and the version is set last.
   */
  async seed(graph: Graph, version: string): Promise<boolean> {
    const k = this.keys.graph;
    if ((await this.redis.get(k.version)) === version) return false;
    for (let i = 0; i < graph.nodes.length; i += BATCH) {
      const batch = graph.nodes.slice(i, i + BATCH);
      await this.redis.hset(
        k.nodes,
        Object.fromEntries(batch.map((n) => [n.id, JSON.stringify(n)])),
      );
    }
    for (let i = 0; i < graph.edges.length; i += BATCH) {
      const batch = graph.edges.slice(i, i + BATCH);
      await this.redis.hset(
        k.edges,
        Object.fromEntries(batch.map((e) => [edgeKey(e), JSON.stringify(e)])),
      );
    }
    await this.redis.set(k.version, version);
    return true;
  }

  async counts(): Promise<{ nodes: number; edges: number }> {
    const k = this.keys.graph;
    const [nodes, edges] = await Promise.all([this.redis.hlen(k.nodes), this.redis.hlen(k.edges)]);
    return { nodes, edges };
  }

  async load(): Promise<Graph> {
    const k = this.keys.graph;
    const [nodes, edges] = await Promise.all([
      this.redis.hvals(k.nodes),
      this.redis.hvals(k.edges),
    ]);
    return {
      nodes: nodes.map((n) => JSON.parse(n) as GraphNode),
      edges: edges.map((e) => JSON.parse(e) as GraphEdge),
    };
  }
}
