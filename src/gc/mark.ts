// Marking (containerd pkg/gc Tricolor): what the roots reach along the graph's edges. The same
// walk, breadth first and remembering how it got there, gives `gc explain` its chains.

/** An object of the graph as marking names it. */
interface MarkNode {
  type: string;
  namespace: string;
  key: string;
}

/**
 * What marking reads of a graph (GcGraph is one): vertices by number — two per object, its
 * normal and its flat variant — their edges, and the roots.
 */
export interface MarkGraph<N extends MarkNode> {
  readonly size: number;
  node(vertex: number): N;
  edgesOf(vertex: number): { to: readonly number[]; via: readonly string[] };
  rootVertices(): ReadonlyArray<{ vertex: number; reason: string }>;
}

/** Tri-colour mark (depth first) over the index; `black[id]` is 1 for every reached object. */
export function markIds<N extends MarkNode>(graph: MarkGraph<N>): Uint8Array {
  const seen = new Uint8Array(graph.size * 2);
  const black = new Uint8Array(graph.size);
  const gray: number[] = [];
  for (const { vertex } of graph.rootVertices()) {
    if (!seen[vertex]) {
      seen[vertex] = 1;
      gray.push(vertex);
    }
  }
  while (gray.length > 0) {
    const v = gray.pop()!;
    for (const next of graph.edgesOf(v).to) {
      if (!seen[next]) {
        seen[next] = 1;
        gray.push(next);
      }
    }
    black[v >> 1] = 1;
  }
  return black;
}

/** The reached objects as `type\0namespace\0key`: flat and normal twins are one object. */
export function markedObjects<N extends MarkNode>(graph: MarkGraph<N>): Set<string> {
  const black = markIds(graph);
  const out = new Set<string>();
  black.forEach((b, id) => {
    if (!b) return;
    const { type, namespace, key } = graph.node(id * 2);
    out.add(`${type}\u0000${namespace}\u0000${key}`);
  });
  return out;
}

/**
 * The shortest chain of references from a root to `target` (breadth first), or undefined when
 * nothing reaches it: what `gc explain` shows.
 */
export function pathTo<N extends MarkNode>(graph: MarkGraph<N>, target: (n: N) => boolean): Array<{ node: N; via: string }> | undefined {
  const parent = new Map<number, { from?: number; via: string }>();
  const queue: number[] = [];
  for (const { vertex, reason } of graph.rootVertices()) {
    if (!parent.has(vertex)) {
      parent.set(vertex, { via: `root: ${reason}` });
      queue.push(vertex);
    }
  }
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i];
    if (target(graph.node(v))) {
      const path: Array<{ node: N; via: string }> = [];
      for (let at: number | undefined = v; at !== undefined; at = parent.get(at)!.from) {
        path.unshift({ node: graph.node(at), via: parent.get(at)!.via });
      }
      return path;
    }
    const { to, via } = graph.edgesOf(v);
    to.forEach((next, j) => {
      if (!parent.has(next)) {
        parent.set(next, { from: v, via: via[j] });
        queue.push(next);
      }
    });
  }
  return undefined;
}
