// Namespaces (containerd core/metadata/namespaces.go): created explicitly or by the first object
// written in them; deleted only when they hold no images, content, snapshots or
// containers.
import { alreadyExists, failedPrecondition, notFound } from '../../store/errors.js';
import { objectAdaptor, parseFilters } from '../../store/filters/index.js';
import { formatTimestamp, parseTimestamp } from '../oci/time.js';
import { applyLabelPaths, type Labels, withoutEmpty } from '../oci/labels.js';
import { nsRange, type MetadataDB, type NamespaceRecord } from './db.js';
import { type Tx } from '../level/tx.js';
import { validateIdentifier, validateLabels } from './validate.js';

export interface Namespace {
  name: string;
  labels: Labels;
  createdAt: Date;
}

const view = (name: string, r: NamespaceRecord): Namespace => ({
  name,
  labels: r.labels,
  createdAt: parseTimestamp(r.createdAt) ?? new Date(0),
});

/** Creates the namespace's record if it has none (objects create their namespace). */
export async function ensureNamespace(db: MetadataDB, tx: Tx, ns: string): Promise<void> {
  if (!(await tx.get(db.namespaces, ns))) tx.put(db.namespaces, ns, { labels: {}, createdAt: formatTimestamp(new Date()) });
}

export class NamespaceStore {
  constructor(private readonly db: MetadataDB) {}

  async create(name: string, labels: Labels = {}): Promise<Namespace> {
    validateIdentifier(name, `namespace ${JSON.stringify(name)}`);
    validateLabels(labels, `namespace ${JSON.stringify(name)}`);
    return this.db.update(async (tx) => {
      if (await tx.get(this.db.namespaces, name)) throw alreadyExists(`namespace "${name}": already exists`);
      const record = { labels: withoutEmpty(labels), createdAt: formatTimestamp(new Date()) };
      tx.put(this.db.namespaces, name, record);
      return view(name, record);
    });
  }

  async get(name: string): Promise<Namespace> {
    validateIdentifier(name, `namespace ${JSON.stringify(name)}`);
    const record = await this.db.namespaces.get(name);
    if (!record) throw notFound(`namespace "${name}": not found`);
    return view(name, record);
  }

  async list(filters: string[] = []): Promise<Namespace[]> {
    const filter = parseFilters(filters);
    const out: Namespace[] = [];
    for await (const [name, record] of this.db.namespaces.iterator()) {
      const ns = view(name, record);
      if (filter(objectAdaptor({ name }, { labels: ns.labels }))) out.push(ns);
    }
    return out;
  }

  /** Replaces the labels, or with `labels.<k>` field paths changes only those keys. */
  async update(name: string, labels: Labels, fieldpaths: string[] = []): Promise<Namespace> {
    validateIdentifier(name, `namespace ${JSON.stringify(name)}`);
    validateLabels(labels, `namespace ${JSON.stringify(name)}`);
    return this.db.update(async (tx) => {
      const record = await tx.get(this.db.namespaces, name);
      if (!record) throw notFound(`namespace "${name}": not found`);
      const updated = { ...record, labels: applyLabelPaths(record.labels, labels, fieldpaths, `namespace "${name}"`) };
      tx.put(this.db.namespaces, name, updated);
      return view(name, updated);
    });
  }

  /**
   * Deletes an empty namespace with its leases and ingest records (containerd removes the
   * whole bucket); what those held is left to the GC.
   */
  async delete(name: string): Promise<void> {
    validateIdentifier(name, `namespace ${JSON.stringify(name)}`);
    await this.db.update(async (tx) => {
      if (!(await tx.get(this.db.namespaces, name))) throw notFound(`namespace "${name}": not found`);
      const left: string[] = [];
      if (await this.any(this.db.images, name)) left.push('images');
      if (await this.any(this.db.blobs, name)) left.push('blobs');
      if (await this.any(this.db.snapshots, name)) left.push('snapshots');
      if (await this.any(this.db.containers, name)) left.push('containers');
      if (left.length > 0) {
        throw failedPrecondition(`namespace "${name}" must be empty, but it still has ${left.join(', ')}`);
      }
      for (const sub of [this.db.leases, this.db.ingests] as const) {
        for await (const key of (sub as typeof this.db.leases).keys(nsRange(name))) tx.del(sub as typeof this.db.leases, key);
      }
      tx.del(this.db.namespaces, name);
      tx.dirty = true;
    });
  }

  private async any(sub: MetadataDB['images'] | MetadataDB['blobs'] | MetadataDB['snapshots'] | MetadataDB['containers'], ns: string): Promise<boolean> {
    for await (const _ of (sub as MetadataDB['images']).keys({ ...nsRange(ns), limit: 1 })) return true;
    return false;
  }
}
