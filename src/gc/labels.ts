// The labels that give the GC its edges (containerd pkg/gc, core/metadata/gc.go).
import type { Labels } from '../oci/labels.js';

export const rootLabel = 'containerd.io/gc.root';

export type NodeType = 'content' | 'snapshot' | 'image' | 'container' | 'lease' | 'ingest';

/** An edge target named by a label: `key` is a digest, `<snapshotter>/<key>`, a name or an id. */
export interface LabelRef {
  type: NodeType;
  key: string;
  /** The label that made the edge (for `gc explain`). */
  label: string;
}

/** `prefix` exactly, or prefix followed by `.` or `/` (so `gc.ref.contentbad` is no reference). */
function hasSuffixRule(key: string, prefix: string): boolean {
  return key === prefix || (key.startsWith(prefix) && (key[prefix.length] === '.' || key[prefix.length] === '/'));
}

/** `<prefix><snapshotter>[/anything]` → the snapshotter name. */
function snapshotterOf(key: string, prefix: string): string | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const sn = key.slice(prefix.length).split('/')[0];
  return sn || undefined;
}

function parse(labels: Labels | undefined, kind: 'ref' | 'bref'): LabelRef[] {
  const out: LabelRef[] = [];
  for (const [label, value] of Object.entries(labels ?? {})) {
    if (!label.startsWith(`containerd.io/gc.${kind}.`) || !value) continue;
    const base = `containerd.io/gc.${kind}.`;
    if (hasSuffixRule(label, `${base}content`)) out.push({ type: 'content', key: value, label });
    else if (hasSuffixRule(label, `${base}image`)) out.push({ type: 'image', key: value, label });
    else if (kind === 'bref' && hasSuffixRule(label, `${base}container`)) out.push({ type: 'container', key: value, label });
    else {
      const sn = snapshotterOf(label, `${base}snapshot.`);
      if (sn) out.push({ type: 'snapshot', key: `${sn}/${value}`, label });
    }
  }
  return out;
}

/** Objects this object's labels reference (`containerd.io/gc.ref.*`). */
export const labelRefs = (labels: Labels | undefined): LabelRef[] => parse(labels, 'ref');

/** Parents that reference this object through its own labels (`containerd.io/gc.bref.*`). */
export const labelBackRefs = (labels: Labels | undefined): LabelRef[] => parse(labels, 'bref');
