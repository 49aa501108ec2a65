import type { Graph, GraphEdge, GraphNode, GraphStore } from '@chorus/state';

export interface SearchHit {
  node: GraphNode;
  score: number;
  related: GraphNode[];
}

export interface Neighbour {
  id: string;
  label: string;
  relation: string;
  direction: 'out' | 'in';
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

/** A node with its words, split once when it is indexed rather than on every search. */
interface IndexedNode {
  node: GraphNode;
  label: string[];
  description: Set<string>;
}

const indexed = (node: GraphNode): IndexedNode => ({
  node,
  label: words(node.label),
  description: new Set(words(node.description ?? '')),
});

/** An in-memory copy of the graph in Redis, with keyword search over labels and descriptions. */
export class KnowledgeBase {
  private nodes = new Map<string, GraphNode>();
  private index = new Map<string, IndexedNode>();
  private edgesOf = new Map<string, GraphEdge[]>();

  constructor(private readonly store: GraphStore) {}

  async refresh(): Promise<void> {
    this.load(await this.store.load());
  }

  get size(): number {
    return this.nodes.size;
  }

  node(id: string): GraphNode | undefined {
    return this.nodes.get(id);
  }

  neighbours(id: string): Neighbour[] {
    return (this.edgesOf.get(id) ?? []).flatMap((edge) => {
      const out = edge.source === id;
      const other = this.nodes.get(out ? edge.target : edge.source);
      return other
        ? [
            {
              id: other.id,
              label: other.label,
              relation: edge.label,
              direction: out ? ('out' as const) : ('in' as const),
            },
          ]
        : [];
    });
  }

  addNode(node: GraphNode): void {
    this.nodes.set(node.id, node);
    this.index.set(node.id, indexed(node));
  }

  addEdge(edge: GraphEdge): void {
    for (const id of [edge.source, edge.target])
      this.edgesOf.set(id, [...(this.edgesOf.get(id) ?? []), edge]);
  }

  /** Best matches first: label words weigh three times description words. */
  search(query: string, limit: number): SearchHit[] {
    const terms = new Set(words(query));
    if (terms.size === 0) return [];
    const hits: SearchHit[] = [];
    for (const { node, label, description } of this.index.values()) {
      let score = 0;
      for (const term of terms) {
        if (label.includes(term)) score += 3;
        if (description.has(term)) score += 1;
      }
      if (label.length > 0 && label.every((w) => terms.has(w))) score += 3;
      if (score > 0) hits.push({ node, score, related: [] });
    }
    hits.sort((a, b) => b.score - a.score || a.node.label.localeCompare(b.node.label));
    return hits.slice(0, limit).map((hit) => ({
      ...hit,
      related: this.neighbours(hit.node.id).flatMap((n) => this.nodes.get(n.id) ?? []),
    }));
  }

  private load(graph: Graph): void {
    this.nodes = new Map(graph.nodes.map((n) => [n.id, n]));
    this.index = new Map(graph.nodes.map((n) => [n.id, indexed(n)]));
    this.edgesOf = new Map();
    for (const edge of graph.edges) this.addEdge(edge);
  }
}
