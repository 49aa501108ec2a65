import type { Graph, GraphNode, GraphStore } from '@chorus/state';

export interface SearchHit {
  node: GraphNode;
  score: number;
  related: GraphNode[];
}

const STOPWORDS = new Set(
  'the and for are but not you all any can had her was one our out his has how its who did yes get may him old see now way use what when where which with this that from they will would there their about explain tell does into more some than them then these your'.split(
    ' ',
  ),
);

const words = (text: string) =>
  (text.toLowerCase().match(/[a-z0-9+#]+/g) ?? []).filter(
    (w) => w.length >= 2 && !STOPWORDS.has(w),
  );

/** An in-memory copy of the graph in Redis, with keyword search over labels and descriptions. */
export class KnowledgeBase {
  private graph: Graph = { nodes: [], edges: [] };
  private byId = new Map<string, GraphNode>();
  private neighbours = new Map<string, string[]>();

  constructor(private readonly store: GraphStore) {}

  async refresh(): Promise<void> {
    this.graph = await this.store.load();
    this.byId = new Map(this.graph.nodes.map((n) => [n.id, n]));
    this.neighbours = new Map();
    for (const edge of this.graph.edges) {
      this.neighbours.set(edge.source, [...(this.neighbours.get(edge.source) ?? []), edge.target]);
      this.neighbours.set(edge.target, [...(this.neighbours.get(edge.target) ?? []), edge.source]);
    }
  }

  get size(): number {
    return this.graph.nodes.length;
  }

  /** Best matches first: label words weigh three times description words. */
  search(query: string, limit: number): SearchHit[] {
    const terms = new Set(words(query));
    if (terms.size === 0) return [];
    const hits: SearchHit[] = [];
    for (const node of this.graph.nodes) {
      const label = words(node.label);
      const description = words(node.description ?? '');
      let score = 0;
      for (const term of terms) {
        if (label.includes(term)) score += 3;
        if (description.includes(term)) score += 1;
      }
      if (label.length > 0 && label.every((w) => terms.has(w))) score += 3;
      if (score > 0) hits.push({ node, score, related: [] });
    }
    hits.sort((a, b) => b.score - a.score || a.node.label.localeCompare(b.node.label));
    return hits.slice(0, limit).map((hit) => ({
      ...hit,
      related: (this.neighbours.get(hit.node.id) ?? []).flatMap((id) => this.byId.get(id) ?? []),
    }));
  }
}
