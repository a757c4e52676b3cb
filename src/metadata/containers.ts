// Containers (containerd core/metadata/containers.go): metadata records — an id, the image it
// came from, its runtime spec and the snapshot that is its root file system. A container is
// always a GC root and keeps its snapshot; the process that runs in it is a task (runtime/).
import { alreadyExists, invalidArgument, notFound } from '../../store/errors.js';
import { objectAdaptor, parseFilters } from '../../store/filters/index.js';
import { applyLabelPaths, type Labels, withoutEmpty } from '../oci/labels.js';
import { formatTimestamp, parseTimestamp } from '../oci/time.js';
import { checkNamespace, type OpContext } from './context.js';
import { nsKey, type ContainerRecord, type MetadataDB } from './db.js';
import { ensureNamespace } from './namespaces.js';
import { validateIdentifier, validateLabels } from './validate.js';

export interface Container {
  id: string;
  image: string;
  runtime: { name: string };
  spec: Record<string, unknown>;
  snapshotter?: string;
  snapshotKey?: string;
  labels: Labels;
  createdAt: Date;
  updatedAt: Date;
}

export type ContainerInput = Omit<Container, 'createdAt' | 'updatedAt' | 'labels'> & { labels?: Labels };

const containerOf = (id: string, r: ContainerRecord): Container => ({
  id,
  image: r.image,
  runtime: r.runtime,
  spec: r.spec,
  ...(r.snapshotter ? { snapshotter: r.snapshotter } : {}),
  ...(r.snapshotKey ? { snapshotKey: r.snapshotKey } : {}),
  labels: r.labels,
  createdAt: parseTimestamp(r.createdAt) ?? new Date(0),
  updatedAt: parseTimestamp(r.updatedAt) ?? new Date(0),
});

/** containerd's rules (§3.6): all invalid_argument. */
function validate(c: Partial<ContainerInput> & { id: string }): void {
  const what = `container ${JSON.stringify(c.id)}`;
  validateIdentifier(c.id, what);
  validateLabels(c.labels, what);
  if (!c.runtime?.name) throw invalidArgument(`${what}: must specify a runtime name`);
  if (!c.spec || typeof c.spec !== 'object') throw invalidArgument(`${what}: must specify a spec`);
  if (c.snapshotKey && !c.snapshotter) throw invalidArgument(`${what}: must set snapshotter when snapshot key is set`);
}

export class ContainerStore {
  constructor(private readonly db: MetadataDB) {}

  async get(ctx: OpContext, id: string): Promise<Container> {
    const r = this.db.cached(this.db.containers).get(nsKey(checkNamespace(ctx), id));
    if (!r) throw notFound(`container "${id}": not found`);
    return containerOf(id, r);
  }

  /** Filter fields: `id`, `image`, `runtime.name`, `snapshotter`, `snapshotKey`, `labels.<key>`. */
  async list(ctx: OpContext, filters: string[] = []): Promise<Container[]> {
    const filter = parseFilters(filters);
    const out: Container[] = [];
    for (const [id, r] of await this.db.list(this.db.containers, checkNamespace(ctx))) {
      const adaptor = objectAdaptor(
        { id, image: r.image, 'runtime.name': r.runtime.name, snapshotter: r.snapshotter, snapshotKey: r.snapshotKey },
        { labels: r.labels },
      );
      if (filter(adaptor)) out.push(containerOf(id, r));
    }
    return out;
  }

  async create(ctx: OpContext, c: ContainerInput): Promise<Container> {
    const ns = checkNamespace(ctx);
    validate(c);
    return this.db.update(async (tx) => {
      const key = nsKey(ns, c.id);
      if (await tx.get(this.db.containers, key)) throw alreadyExists(`container "${c.id}": already exists`);
      await ensureNamespace(this.db, tx, ns);
      const now = formatTimestamp(new Date());
      const record: ContainerRecord = {
        image: c.image,
        runtime: { name: c.runtime.name },
        spec: c.spec,
        ...(c.snapshotter ? { snapshotter: c.snapshotter } : {}),
        ...(c.snapshotKey ? { snapshotKey: c.snapshotKey } : {}),
        labels: withoutEmpty({ ...c.labels }),
        createdAt: now,
        updatedAt: now,
      };
      tx.put(this.db.containers, key, record);
      return containerOf(c.id, record);
    });
  }

  /**
   * Field paths `labels`, `labels.<k>`, `image`, `spec`, `snapshotKey` (as containerd: runtime
   * and snapshotter cannot change); none: labels and image from the input.
   */
  async update(ctx: OpContext, c: Partial<ContainerInput> & { id: string }, fieldpaths: string[] = []): Promise<Container> {
    const ns = checkNamespace(ctx);
    const what = `container ${JSON.stringify(c.id)}`;
    validateLabels(c.labels, what);
    return this.db.update(async (tx) => {
      const key = nsKey(ns, c.id);
      const r = await tx.get(this.db.containers, key);
      if (!r) throw notFound(`container "${c.id}": not found`);
      const next: ContainerRecord = { ...r };
      const paths = fieldpaths.length > 0 ? fieldpaths : ['labels', ...(c.image ? ['image'] : [])];
      const labelPaths = paths.filter((p) => p === 'labels' || p.startsWith('labels.'));
      if (labelPaths.length > 0) next.labels = applyLabelPaths(r.labels, c.labels ?? {}, labelPaths, what);
      for (const p of paths) {
        if (p === 'labels' || p.startsWith('labels.')) continue;
        if (p === 'image') {
          if (!c.image) throw invalidArgument(`${what}: image must not be empty`);
          next.image = c.image;
        } else if (p === 'spec') {
          if (!c.spec || typeof c.spec !== 'object') throw invalidArgument(`${what}: must specify a spec`);
          next.spec = c.spec;
        } else if (p === 'snapshotKey') {
          if (!c.snapshotKey) throw invalidArgument(`${what}: snapshotKey must not be empty`);
          next.snapshotKey = c.snapshotKey;
        } else {
          throw invalidArgument(`${what}: cannot update ${JSON.stringify(p)} field`);
        }
      }
      next.updatedAt = formatTimestamp(new Date());
      tx.put(this.db.containers, key, next);
      return containerOf(c.id, next);
    });
  }

  async delete(ctx: OpContext, id: string): Promise<Container> {
    const ns = checkNamespace(ctx);
    return this.db.update(async (tx) => {
      const key = nsKey(ns, id);
      const r = await tx.get(this.db.containers, key);
      if (!r) throw notFound(`container "${id}": not found`);
      tx.del(this.db.containers, key);
      tx.dirty = true;
      return containerOf(id, r);
    });
  }
}
