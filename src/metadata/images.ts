// Images (containerd core/metadata/images.go): a name pointing at a target descriptor, with
// labels. Images are GC roots unless they carry `containerd.io/gc.expire` and it has passed.
import { alreadyExists, invalidArgument, notFound } from '../../store/errors.js';
import { objectAdaptor, parseFilters } from '../../store/filters/index.js';
import { parseDigest } from '../../store/digest.js';
import { applyLabelPaths, type Labels, withoutEmpty } from '../oci/labels.js';
import { formatTimestamp, parseTimestamp } from '../oci/time.js';
import { checkNamespace, type OpContext } from './context.js';
import { nsKey, type ImageRecord, type MetadataDB } from './db.js';
import { type Tx } from '../level/tx.js';
import { type Descriptor } from '../oci/descriptor.js';
import { attachToLease, detachFromLease, expireLabel } from './leases.js';
import { ensureNamespace } from './namespaces.js';
import { validateExpiry, validateImageName, validateLabels } from './validate.js';

export interface Image {
  name: string;
  target: Descriptor;
  labels: Labels;
  createdAt: Date;
  updatedAt: Date;
}

export interface ImageInput {
  name: string;
  target: Descriptor;
  labels?: Labels;
}

function imageOf(name: string, r: ImageRecord): Image {
  return {
    name,
    target: r.target,
    labels: r.labels,
    createdAt: parseTimestamp(r.createdAt) ?? new Date(0),
    updatedAt: parseTimestamp(r.updatedAt) ?? new Date(0),
  };
}

function validateImage(image: ImageInput): void {
  validateImageName(image.name);
  validateLabels(image.labels, `image "${image.name}"`);
  validateExpiry(image.labels, `image "${image.name}"`);
  const t = image.target as Partial<Descriptor> | undefined;
  if (!t) throw invalidArgument(`image "${image.name}": target must be set`);
  try {
    parseDigest(t.digest as string);
  } catch (err) {
    throw invalidArgument(`image "${image.name}": target.digest ${JSON.stringify(t.digest)} invalid: ${(err as Error).message}`, err);
  }
  if (!Number.isSafeInteger(t.size) || (t.size as number) <= 0) {
    throw invalidArgument(`image "${image.name}": target.size must be greater than zero`);
  }
  if (!t.mediaType) throw invalidArgument(`image "${image.name}": target.mediaType must be set`);
}

/** Only digest, mediaType, size and annotations of a target are kept. */
function storedTarget(t: Descriptor): Descriptor {
  return {
    mediaType: t.mediaType,
    digest: t.digest,
    size: t.size,
    ...(t.annotations && Object.keys(t.annotations).length > 0 ? { annotations: { ...t.annotations } } : {}),
  };
}

export class ImageStore {
  constructor(private readonly db: MetadataDB) {}

  async get(ctx: OpContext, name: string): Promise<Image> {
    const record = await this.db.images.get(nsKey(checkNamespace(ctx), name));
    if (!record) throw notFound(`image "${name}": not found`);
    return imageOf(name, record);
  }

  /** Filter fields: `name`, `target.digest`, `target.mediatype`, `labels.<k>`, `annotations.<k>`. */
  async list(ctx: OpContext, filters: string[] = []): Promise<Image[]> {
    const filter = parseFilters(filters);
    const out: Image[] = [];
    for (const [name, record] of await this.db.list(this.db.images, checkNamespace(ctx))) {
      const fields = {
        name: name || undefined,
        'target.digest': record.target.digest,
        'target.mediatype': record.target.mediaType || undefined,
      };
      if (filter(objectAdaptor(fields, { labels: record.labels, annotations: record.target.annotations }))) {
        out.push(imageOf(name, record));
      }
    }
    return out;
  }

  async create(ctx: OpContext, image: ImageInput): Promise<Image> {
    const ns = checkNamespace(ctx);
    validateImage(image);
    return this.db.update(async (tx) => {
      const key = nsKey(ns, image.name);
      if (await tx.get(this.db.images, key)) throw alreadyExists(`image "${image.name}": already exists`);
      await ensureNamespace(this.db, tx, ns);
      const now = formatTimestamp(new Date());
      const record: ImageRecord = {
        target: storedTarget(image.target),
        labels: withoutEmpty(image.labels ?? {}),
        createdAt: now,
        updatedAt: now,
      };
      await this.leaseIfExpiring(tx, ctx, image.name, record.labels);
      tx.put(this.db.images, key, record);
      return imageOf(image.name, record);
    });
  }

  /**
   * Updates by field paths: none → everything (target and labels) is replaced; `labels`,
   * `labels.<k>`, `annotations`, `annotations.<k>`, `target`.
   */
  async update(ctx: OpContext, image: Partial<ImageInput> & { name: string }, fieldpaths: string[] = []): Promise<Image> {
    const ns = checkNamespace(ctx);
    if (!image.name) throw invalidArgument('image name is required for update');
    return this.db.update(async (tx) => {
      const key = nsKey(ns, image.name);
      const stored = await tx.get(this.db.images, key);
      if (!stored) throw notFound(`image "${image.name}": not found`);
      let next: ImageRecord = { ...stored, target: { ...stored.target } };
      if (fieldpaths.length === 0) {
        next = { ...next, target: image.target as Descriptor, labels: withoutEmpty(image.labels ?? {}) };
      } else {
        const labelPaths: string[] = [];
        for (const path of fieldpaths) {
          if (path === 'labels' || path.startsWith('labels.')) labelPaths.push(path);
          else if (path === 'target') next.target = image.target as Descriptor;
          else if (path === 'annotations') next.target.annotations = withoutEmpty(image.target?.annotations ?? {});
          else if (path.startsWith('annotations.') && path.length > 'annotations.'.length) {
            const k = path.slice('annotations.'.length);
            const v = image.target?.annotations?.[k];
            const annotations = { ...next.target.annotations };
            if (v) annotations[k] = v;
            else delete annotations[k];
            next.target.annotations = annotations;
          } else {
            throw invalidArgument(`cannot update ${JSON.stringify(path)} field on image "${image.name}"`);
          }
        }
        if (labelPaths.length > 0) {
          next.labels = applyLabelPaths(stored.labels, image.labels ?? {}, labelPaths, `image "${image.name}"`);
        }
      }
      validateImage({ name: image.name, target: next.target, labels: next.labels });
      next.target = storedTarget(next.target);
      next.updatedAt = formatTimestamp(new Date());
      await this.leaseIfExpiring(tx, ctx, image.name, next.labels);
      tx.put(this.db.images, key, next);
      return imageOf(image.name, next);
    });
  }

  /** Deletes the image; `target`, when given, must be its target's digest. */
  async delete(ctx: OpContext, name: string, opts: { target?: string } = {}): Promise<void> {
    const ns = checkNamespace(ctx);
    await this.db.update(async (tx) => {
      const key = nsKey(ns, name);
      const stored = await tx.get(this.db.images, key);
      if (!stored) throw notFound(`image "${name}": not found`);
      if (opts.target && stored.target.digest !== opts.target) {
        throw notFound(`image "${name}" has target ${stored.target.digest}, not ${opts.target}`);
      }
      tx.del(this.db.images, key);
      await detachFromLease(this.db, tx, ctx, { type: 'images', id: name });
      tx.dirty = true;
    });
  }

  /** An expiring image written under a lease lives at least as long as the lease. */
  private async leaseIfExpiring(tx: Tx, ctx: OpContext, name: string, labels: Labels): Promise<void> {
    if (labels[expireLabel] === undefined) return;
    tx.noteExpiry(parseTimestamp(labels[expireLabel]));
    await attachToLease(this.db, tx, ctx, { type: 'images', id: name });
  }
}
