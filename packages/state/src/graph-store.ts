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

  /** Adds a node unless its id exists; true when added. */
  async addNode(node: GraphNode): Promise<boolean> {
    return (await this.redis.hsetnx(this.keys.graph.nodes, node.id, JSON.stringify(node))) === 1;
  }

  /** Adds an edge unless the same (source, label, target) exists; true when added. */
  async addEdge(edge: GraphEdge): Promise<boolean> {
    return (
      (await this.redis.hsetnx(this.keys.graph.edges, edgeKey(edge), JSON.stringify(edge))) === 1
    );
  }

  async node(id: string): Promise<GraphNode | null> {
    const raw = await this.redis.hget(this.keys.graph.nodes, id);
    return raw ? (JSON.parse(raw) as GraphNode) : null;
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
