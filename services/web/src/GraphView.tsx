import { useEffect, useMemo, useState, type ReactNode } from 'react';

interface GraphNode {
  id: string;
  label: string;
  type: string;
}
interface GraphEdge {
  source: string;
  target: string;
  label?: string;
}
interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

const SHOWN = 36;
const SIZE = 320;
const COLORS = [
  '#2563eb',
  '#16a34a',
  '#d97706',
  '#dc2626',
  '#7c3aed',
  '#0891b2',
  '#db2777',
  '#65a30d',
  '#9333ea',
];

/**
 * A small view of the knowledge graph the agents use: the most connected nodes on a circle,
 * grouped and coloured by type, with the edges among them. Choosing a node lists its neighbours.
 */
export function GraphView() {
  const [graph, setGraph] = useState<Graph | null>(null);
  const [failed, setFailed] = useState(false);
  const [selected, setSelected] = useState<string>('');

  useEffect(() => {
    const controller = new AbortController();
    fetch('/api/graph', { signal: controller.signal })
      .then((res) =>
        res.ok ? (res.json() as Promise<Graph>) : Promise.reject(new Error(String(res.status))),
      )
      .then(setGraph)
      .catch(() => {
        if (!controller.signal.aborted) setFailed(true);
      });
    return () => controller.abort();
  }, []);

  const view = useMemo(() => (graph ? layout(graph) : null), [graph]);

  if (failed) return <Panel>The knowledge graph could not be loaded.</Panel>;
  if (!graph || !view) return <Panel>Loading the knowledge graph…</Panel>;

  const neighbours = selected ? (view.neighbours.get(selected) ?? []) : [];
  const selectedNode = view.byId.get(selected);
  return (
    <Panel>
      <p className="muted">
        {graph.nodes.length} nodes, {graph.edges.length} edges; the {view.nodes.length} most
        connected:
      </p>
      <svg
        viewBox={`0 0 ${SIZE} ${SIZE}`}
        className="graph"
        role="img"
        aria-label={`The ${view.nodes.length} most connected nodes of the knowledge graph`}
      >
        {view.edges.map(([a, b], i) => (
          <line
            key={i}
            x1={a.x}
            y1={a.y}
            x2={b.x}
            y2={b.y}
            className={selected && (a.id === selected || b.id === selected) ? 'edge hot' : 'edge'}
          />
        ))}
        {view.nodes.map((node) => (
          <circle
            key={node.id}
            cx={node.x}
            cy={node.y}
            r={node.id === selected ? 7 : 5}
            fill={view.colors.get(node.type)}
            onClick={() => setSelected(node.id)}
          >
            <title>{`${node.label} (${node.type})`}</title>
          </circle>
        ))}
      </svg>
      <ul className="legend">
        {[...view.colors].map(([type, color]) => (
          <li key={type}>
            <span className="swatch" style={{ background: color }} aria-hidden="true" />
            {type}
          </li>
        ))}
      </ul>
      <label className="field">
        Node
        <select value={selected} onChange={(event) => setSelected(event.target.value)}>
          <option value="">choose a node…</option>
          {view.nodes.map((node) => (
            <option key={node.id} value={node.id}>
              {node.label}
            </option>
          ))}
        </select>
      </label>
      {selectedNode && (
        <p className="neighbours" aria-live="polite">
          <strong>{selectedNode.label}</strong> ({selectedNode.type}):{' '}
          {neighbours.length > 0 ? neighbours.join(', ') : 'no edges'}
        </p>
      )}
    </Panel>
  );
}

function Panel({ children }: { children: ReactNode }) {
  return (
    <section className="panel" aria-labelledby="graph-title" data-testid="graph">
      <h2 id="graph-title">Knowledge graph</h2>
      {children}
    </section>
  );
}

interface Placed extends GraphNode {
  x: number;
  y: number;
}

function layout(graph: Graph) {
  const degree = new Map<string, number>();
  for (const { source, target } of graph.edges) {
    degree.set(source, (degree.get(source) ?? 0) + 1);
    degree.set(target, (degree.get(target) ?? 0) + 1);
  }
  const top = [...graph.nodes]
    .sort((a, b) => (degree.get(b.id) ?? 0) - (degree.get(a.id) ?? 0))
    .slice(0, SHOWN)
    .sort((a, b) => a.type.localeCompare(b.type) || a.label.localeCompare(b.label));
  const center = SIZE / 2;
  const radius = SIZE / 2 - 16;
  const nodes: Placed[] = top.map((node, i) => {
    const angle = (2 * Math.PI * i) / Math.max(1, top.length) - Math.PI / 2;
    return { ...node, x: center + radius * Math.cos(angle), y: center + radius * Math.sin(angle) };
  });
  const byId = new Map(nodes.map((node) => [node.id, node]));
  const labelOf = new Map(graph.nodes.map((node) => [node.id, node.label]));
  const edges: [Placed, Placed][] = [];
  const neighbours = new Map<string, string[]>();
  for (const { source, target, label } of graph.edges) {
    const a = byId.get(source);
    const b = byId.get(target);
    if (a && b) edges.push([a, b]);
    for (const [from, to] of [
      [source, target],
      [target, source],
    ] as const) {
      if (!byId.has(from)) continue;
      const list = neighbours.get(from) ?? [];
      list.push(`${labelOf.get(to) ?? to}${label ? ` (${label})` : ''}`);
      neighbours.set(from, list);
    }
  }
  const colors = new Map<string, string>();
  for (const node of nodes) {
    if (!colors.has(node.type))
      colors.set(node.type, COLORS[colors.size % COLORS.length] ?? '#888');
  }
  return { nodes, edges, byId, neighbours, colors };
}
