// Leases (containerd core/metadata/leases.go): records that keep what they list alive for the
// GC until they are deleted or expire (`containerd.io/gc.expire`). An operation run with a lease
// attaches what it writes to it.
import { randomBytes } from 'node:crypto';
import { alreadyExists, BerthError, invalidArgument, notFound } from '../../store/errors.js';
import { objectAdaptor, parseFilters } from '../../store/filters/index.js';
import { parseDigest } from '../../store/digest.js';
import { type Labels, withoutEmpty } from '../oci/labels.js';
import { formatTimestamp, parseTimestamp } from '../oci/time.js';
import { checkNamespace, type OpContext } from './context.js';
import { nsKey, type LeaseRecord, type LeaseResources, type MetadataDB } from './db.js';
import { type Tx } from '../level/tx.js';
import { ensureNamespace } from './namespaces.js';
import { validateExpiry, validateIdentifier } from './validate.js';

export const expireLabel = 'containerd.io/gc.expire';
export const flatLabel = 'containerd.io/gc.flat';

export interface Lease {
  id: string;
  createdAt: Date;
  labels: Labels;
}

export interface Resource {
  id: string;
  /** `content`, `ingests`, `images` or `snapshots/<snapshotter>` */
  type: string;
}

export interface LeaseCreate {
  id?: string;
  labels?: Labels;
  /** Milliseconds until the lease expires: sets `containerd.io/gc.expire`. */
  expiresIn?: number;
}

const emptyResources = (): LeaseResources => ({ content: [], ingests: [], images: [], snapshots: {} });

/** containerd writes expiry with second precision in RFC 3339. */
export function expiryAfter(ms: number, now = Date.now()): string {
  return new Date(Math.ceil((now + ms) / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** True when the record carries a parsable `gc.expire` that has passed. */
export function isExpired(labels: Labels, now = new Date()): boolean {
  const value = labels[expireLabel];
  if (value === undefined) return false;
  const at = parseTimestamp(value);
  return at !== undefined && now > at;
}

/** A snapshotter's name in a resource type: one path segment, not `.` or `..`, no control characters. */
const isSegment = (s: string): boolean =>
  // eslint-disable-next-line no-control-regex
  s !== '' && s !== '.' && s !== '..' && !/[\u0000-\u001f\u007f]/.test(s);

/** Where a resource lives in a lease record; refuses unknown or malformed types as containerd. */
function resourceList(resources: LeaseResources, r: Resource, lease: string): string[] {
  const parts = r.type.split('/');
  switch (parts[0]) {
    case 'content':
    case 'ingests':
    case 'images': {
      if (parts.length !== 1) throw invalidArgument(`lease "${lease}": invalid resource type ${JSON.stringify(r.type)}`);
      if (parts[0] === 'content') {
        try {
          parseDigest(r.id);
        } catch (err) {
          throw invalidArgument(`lease "${lease}": invalid content resource id ${JSON.stringify(r.id)}`, err);
        }
      }
      return resources[parts[0]];
    }
    case 'snapshots':
      if (parts.length !== 2 || !isSegment(parts[1])) {
        throw invalidArgument(`lease "${lease}": invalid snapshot resource type ${JSON.stringify(r.type)}`);
      }
      // Own keys only: a snapshotter called `constructor` or `__proto__` is a name like any other.
      if (!Object.hasOwn(resources.snapshots, parts[1])) {
        Object.defineProperty(resources.snapshots, parts[1], { value: [], enumerable: true, writable: true, configurable: true });
      }
      return resources.snapshots[parts[1]];
    default:
      // A type berth may learn one day is "not yet"; anything else is the caller's mistake.
      if (!/^[a-z][a-z0-9_-]*$/.test(parts[0]) || parts.length > 2 || (parts.length === 2 && !isSegment(parts[1]))) {
        throw invalidArgument(`lease "${lease}": invalid resource type ${JSON.stringify(r.type)}`);
      }
      throw new BerthError('not_implemented', `lease "${lease}": resource type ${r.type} not supported yet`);
  }
}

/**
 * Adds a resource to the context's lease inside `tx` (nothing without a lease). A lease that
 * does not exist is not_found, as containerd's `lease does not exist`.
 */
export async function attachToLease(db: MetadataDB, tx: Tx, ctx: OpContext, r: Resource): Promise<void> {
  if (!ctx.lease) return;
  const key = nsKey(ctx.namespace, ctx.lease);
  const record = await tx.get(db.leases, key);
  if (!record) throw notFound(`lease "${ctx.lease}" does not exist`);
  const list = resourceList(record.resources, r, ctx.lease);
  if (!list.includes(r.id)) {
    list.push(r.id);
    tx.put(db.leases, key, record);
  }
}

/** Removes a resource from the context's lease inside `tx`, if both exist. */
export async function detachFromLease(db: MetadataDB, tx: Tx, ctx: OpContext, r: Resource): Promise<void> {
  if (!ctx.lease) return;
  const key = nsKey(ctx.namespace, ctx.lease);
  const record = await tx.get(db.leases, key);
  if (!record) return;
  const list = resourceList(record.resources, r, ctx.lease);
  const i = list.indexOf(r.id);
  if (i >= 0) {
    list.splice(i, 1);
    tx.put(db.leases, key, record);
  }
}

export class LeaseManager {
  constructor(
    private readonly db: MetadataDB,
    /** The moment (epoch ms) expiries are counted from: real time, unless a test moves a clock of its own. */
    private readonly now: () => number = Date.now,
  ) {}

  async create(ctx: OpContext, opts: LeaseCreate = {}): Promise<Lease> {
    const ns = checkNamespace(ctx);
    const id = opts.id ?? `${this.now()}-${randomBytes(4).toString('hex')}`;
    validateIdentifier(id, `lease ${JSON.stringify(id)}`);
    const labels = withoutEmpty({ ...opts.labels });
    validateExpiry(labels, `lease ${JSON.stringify(id)}`);
    if (opts.expiresIn !== undefined) {
      if (!Number.isFinite(opts.expiresIn) || opts.expiresIn < 0) {
        throw invalidArgument(`lease "${id}": expiresIn must be a non-negative number of milliseconds`);
      }
      labels[expireLabel] = expiryAfter(opts.expiresIn, this.now());
    }
    return this.db.update(async (tx) => {
      const key = nsKey(ns, id);
      if (await tx.get(this.db.leases, key)) throw alreadyExists(`lease "${id}": already exists`);
      await ensureNamespace(this.db, tx, ns);
      const record: LeaseRecord = { createdAt: formatTimestamp(new Date(this.now())), labels, resources: emptyResources() };
      tx.put(this.db.leases, key, record);
      tx.noteExpiry(labels[expireLabel] ? parseTimestamp(labels[expireLabel]) : undefined);
      return { id, createdAt: parseTimestamp(record.createdAt)!, labels };
    });
  }

  async get(ctx: OpContext, id: string): Promise<Lease> {
    const record = await this.db.leases.get(nsKey(checkNamespace(ctx), id));
    if (!record) throw notFound(`lease "${id}": not found`);
    return { id, createdAt: parseTimestamp(record.createdAt)!, labels: record.labels };
  }

  async list(ctx: OpContext, filters: string[] = []): Promise<Lease[]> {
    const filter = parseFilters(filters);
    const out: Lease[] = [];
    for (const [id, record] of await this.db.list(this.db.leases, checkNamespace(ctx))) {
      if (filter(objectAdaptor({ id: id || undefined }, { labels: record.labels }))) out.push({ id, createdAt: parseTimestamp(record.createdAt)!, labels: record.labels });
    }
    return out;
  }

  async delete(ctx: OpContext, id: string): Promise<void> {
    const ns = checkNamespace(ctx);
    await this.db.update(async (tx) => {
      const key = nsKey(ns, id);
      if (!(await tx.get(this.db.leases, key))) throw notFound(`lease "${id}": not found`);
      tx.del(this.db.leases, key);
      tx.dirty = true;
    });
  }

  async addResource(ctx: OpContext, id: string, r: Resource): Promise<void> {
    const ns = checkNamespace(ctx);
    await this.db.update(async (tx) => {
      if (!(await tx.get(this.db.leases, nsKey(ns, id)))) throw notFound(`lease "${id}": not found`);
      await attachToLease(this.db, tx, { namespace: ns, lease: id }, r);
    });
  }

  async deleteResource(ctx: OpContext, id: string, r: Resource): Promise<void> {
    const ns = checkNamespace(ctx);
    await this.db.update(async (tx) => {
      const record = await tx.get(this.db.leases, nsKey(ns, id));
      if (!record) throw notFound(`lease "${id}": not found`);
      resourceList(record.resources, r, id); // validates the type
      await detachFromLease(this.db, tx, { namespace: ns, lease: id }, r);
      tx.dirty = true;
    });
  }

  /** content, then images, ingests, snapshots — containerd's order. */
  async listResources(ctx: OpContext, id: string): Promise<Resource[]> {
    const record = await this.db.leases.get(nsKey(checkNamespace(ctx), id));
    if (!record) throw notFound(`lease "${id}": not found`);
    const { content, images, ingests, snapshots } = record.resources;
    return [
      ...content.map((d) => ({ id: d, type: 'content' })),
      ...images.map((n) => ({ id: n, type: 'images' })),
      ...ingests.map((r) => ({ id: r, type: 'ingests' })),
      ...Object.entries(snapshots).flatMap(([sn, keys]) => keys.map((k) => ({ id: k, type: `snapshots/${sn}` }))),
    ];
  }
}
