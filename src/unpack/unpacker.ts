// Unpacking an image's layers into snapshots (containerd core/unpack + pkg/rootfs), faster:
// each layer is extracted while it downloads (its bytes are read as they reach the disk), and
// on a snapshotter that can rebase (overlayfs) independent layers are extracted side by side,
// each into a snapshot of its own, then committed bottom-up with their parents set at commit.
// Names and labels are containerd's, so a store unpacked by either reads the same:
// `extract-<unique> <chainID>` keys, committed snapshots named by chainID, the
// `containerd.io/uncompressed` label on layer blobs, `containerd.io/gc.ref.snapshot.<sn>` on the
// config.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rmdir } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { BerthError, errorCode, invalidArgument, isAlreadyExists, isNotFound } from '../../store/errors.js';
import type { MetadataContentStore } from '../metadata/content.js';
import type { OpContext } from '../metadata/context.js';
import type { Descriptor } from '../oci/descriptor.js';
import { snapshotRefLabel } from '../metadata/snapshots.js';
import { mountAll, unmountAll } from '../snapshots/mount.js';
import type { Mount, Snapshotter } from '../snapshots/types.js';
import { withSpan } from '../../store/telemetry.js';
import { applyLayer, type ApplyOptions, type Applied } from './apply-layer.js';
import { chainIds } from './chainid.js';
import { UnpackFlush, type LayerFlush } from './flush.js';

export const uncompressedLabel = 'containerd.io/uncompressed';
export const diffIdLabel = 'containerd.io/snapshot/diff-id';
export const parentChainLabel = 'containerd.io/snapshot/parent-chain-id';
export const snapshotGcLabel = (sn: string): string => `containerd.io/gc.ref.snapshot.${sn}`;

/** The bytes of a layer blob, from its first byte (they may still be arriving). */
export type LayerSource = (desc: Descriptor, signal: AbortSignal) => AsyncIterable<Uint8Array>;

export type LayerState = 'waiting' | 'extracting' | 'unpacked' | 'exists';

export interface UnpackRequest {
  /** The image config's descriptor: it gets the snapshot GC label. */
  config: Descriptor;
  layers: Descriptor[];
  /** The config's `rootfs.diff_ids`. */
  diffIds: string[];
  snapshotter: string;
  source: LayerSource;
  signal?: AbortSignal;
  onLayer?: (e: { digest: string; chainId: string; state: LayerState }) => void;
}

export interface UnpackResult {
  snapshotter: string;
  /** The top chainID: the committed snapshot of the whole root file system. */
  chainId: string;
  /** Layers extracted now, and layers whose snapshot was there already. */
  unpacked: number;
  existing: number;
}

export interface UnpackerOptions {
  /** Layers extracted at once where layers can be extracted side by side. */
  concurrency?: number;
  /**
   * Make every layer's files durable before its snapshot is committed: one file-system flush per
   * unpack when layers are extracted side by side (before the bottom-up commits), else one per layer.
   */
  sync?: boolean;
}

/** Resolves when `n` slots are free; a small counting semaphore. */
class Slots {
  private free: number;
  private readonly waiting: Array<() => void> = [];
  constructor(n: number) {
    this.free = n;
  }
  async take(): Promise<() => void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    return () => {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    };
  }
}

/**
 * The snapshotters an unpacker writes layers into, as one namespace sees them (the snapshots
 * service is one): named here so that unpack depends on what it uses, not on the service.
 */
export interface LayerSnapshotters {
  bind(ctx: OpContext, snapshotter: string): Snapshotter;
  /** What the snapshotter can do beyond the interface: `rebase` lets layers unpack side by side. */
  capabilities(snapshotter: string): readonly string[];
}

/**
 * Layers extracted at once unless configured: one per CPU, at most 3. Extraction is CPU work
 * (inflate, hash, file creation), and each layer has a worker thread with its own heap: a third
 * worker on a 2-CPU machine took ~30 MB more at the peak and no time off.
 */
export const machineUnpackConcurrency = (): number => Math.min(3, availableParallelism());

export class Unpacker {
  private readonly slots: Slots;
  readonly sync: boolean;

  constructor(
    private readonly content: MetadataContentStore,
    private readonly snapshots: LayerSnapshotters,
    opts: UnpackerOptions = {},
  ) {
    this.slots = new Slots(Math.max(1, opts.concurrency ?? 3));
    this.sync = opts.sync ?? true;
  }

  /**
   * The image's top chainID when it is unpacked into `snapshotter` already (its snapshot exists
   * and the config holds it): then there is nothing to do, not even a lease to take.
   */
  async unpacked(ctx: OpContext, config: Descriptor, diffIds: string[], snapshotter: string): Promise<string | undefined> {
    const top = chainIds(diffIds).at(-1);
    if (!top) return undefined;
    const labels = (await this.content.info(ctx, config.digest)).labels;
    if (labels[snapshotGcLabel(snapshotter)] !== top) return undefined;
    return (await exists(this.snapshots.bind(ctx, snapshotter), top)) ? top : undefined;
  }

  async unpack(ctx: OpContext, req: UnpackRequest): Promise<UnpackResult> {
    const { layers, diffIds, snapshotter } = req;
    if (layers.length !== diffIds.length) {
      throw invalidArgument(`config ${req.config.digest}: number of layers and diffIDs don't match: ${layers.length} != ${diffIds.length}`);
    }
    if (layers.length === 0) throw invalidArgument(`config ${req.config.digest}: the image has no layers to unpack`);
    const sn = this.snapshots.bind(ctx, snapshotter);
    const chain = chainIds(diffIds);
    const top = chain[chain.length - 1];
    return withSpan('unpack', { 'berth.snapshotter': snapshotter, 'berth.chain_id': top, 'berth.layers': layers.length }, async () => {
      const result: UnpackResult = { snapshotter, chainId: top, unpacked: 0, existing: 0 };
      if (!(await exists(sn, top))) {
        // A failed layer stops the others.
        const failed = new AbortController();
        const signal = req.signal ? AbortSignal.any([req.signal, failed.signal]) : failed.signal;
        const parallel = this.snapshots.capabilities(snapshotter).includes('rebase');
        const flush = parallel && this.sync ? new UnpackFlush(layers.length) : undefined;
        const committed: Array<Promise<void>> = [];
        for (let i = 0; i < layers.length; i++) {
          const layerFlush = flush?.layer();
          committed.push(
            // A layer that ends without saying (it failed) must not hold up the others' flush.
            this.layer(ctx, sn, req, chain, i, parallel, committed[i - 1], signal, layerFlush).finally(() => layerFlush?.skipped()).then(
              (state) => {
                if (state === 'exists') result.existing++;
                else result.unpacked++;
              },
              (err) => {
                failed.abort(err);
                throw err;
              },
            ),
          );
        }
        const outcomes = await Promise.allSettled(committed);
        const first = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
        if (first) throw req.signal?.aborted ? req.signal.reason : failed.signal.reason ?? first.reason;
      } else {
        result.existing = layers.length;
      }
      const label = snapshotGcLabel(snapshotter);
      // Unpacked before: the label is there already (a write fewer on the way to a container).
      if ((await this.content.info(ctx, req.config.digest)).labels[label] !== top) {
        await this.content.update(ctx, req.config.digest, { [label]: top }, [`labels.${label}`]);
      }
      return result;
    });
  }

  /** One layer: prepare, extract, verify, flush, commit (after the layer below), label. */
  private async layer(
    ctx: OpContext,
    sn: Snapshotter,
    req: UnpackRequest,
    chain: string[],
    i: number,
    parallel: boolean,
    below: Promise<void> | undefined,
    signal: AbortSignal,
    /** Set when the flush is shared: say what was written and wait until it is durable. */
    flush: LayerFlush | undefined,
  ): Promise<'unpacked' | 'exists'> {
    const desc = req.layers[i];
    const chainId = chain[i];
    const note = (state: LayerState) => req.onLayer?.({ digest: desc.digest, chainId, state });
    if (!parallel) await below; // the parent must be committed before a copy can be made of it
    // A layer unpacked before is found by prepare: the target label makes it answer
    // already_exists and put that snapshot in this unpack's lease (containerd's way).
    const labels: Record<string, string> = {
      [snapshotRefLabel]: chainId,
      [diffIdLabel]: req.diffIds[i],
      ...(i > 0 ? { [parentChainLabel]: chain[i - 1] } : {}),
    };
    const parent = parallel || i === 0 ? '' : chain[i - 1];
    let key = '';
    let mounts: Mount[] | undefined;
    for (let attempt = 0; attempt < 3 && !mounts; attempt++) {
      key = `extract-${process.hrtime.bigint() % 1_000_000_000n}-${randomBytes(3).toString('base64url')} ${chainId}`;
      try {
        mounts = await sn.prepare(key, parent, { labels });
      } catch (err) {
        if (!isAlreadyExists(err)) throw new BerthError(errorCode(err), `failed to prepare extraction snapshot "${key}": ${(err as Error).message}`, { cause: err });
        // Another unpack made (or is making) this layer: done if it is committed.
        if (await exists(sn, chainId)) {
          flush?.skipped(); // nothing to write: never hold up the others' flush while waiting below
          await below;
          note('exists');
          return 'exists';
        }
      }
    }
    if (!mounts) throw new BerthError('unavailable', `unable to prepare extraction snapshot for layer ${desc.digest} (${chainId})`);
    try {
      const release = await this.slots.take();
      let applied: Applied & { folder?: string };
      try {
        signal.throwIfAborted();
        note('extracting');
        applied = await withSpan('unpack.layer', { 'berth.digest': desc.digest, 'berth.chain_id': chainId }, () =>
          applyToMounts(mounts!, req.source(desc, signal), { mediaType: desc.mediaType, sync: this.sync, signal }, parallel, flush !== undefined),
        );
      } finally {
        release();
      }
      if (applied.diffId !== req.diffIds[i]) {
        throw new BerthError(
          'failed_precondition',
          `layer ${desc.digest}: wrong diff id "${applied.diffId}" calculated on extraction, the image config says "${req.diffIds[i]}"`,
        );
      }
      if (flush) await withSpan('unpack.flush', { 'berth.chain_id': chainId }, () => flush.written(applied.folder, signal));
      // Committed bottom-up: a parent must exist before its child names it.
      await below;
      signal.throwIfAborted();
      try {
        await sn.commit(chainId, key, { labels, ...(parallel && i > 0 ? { parent: chain[i - 1] } : {}), ...(applied.usage ? { usage: applied.usage } : {}) });
      } catch (err) {
        if (!isAlreadyExists(err)) throw err;
        // Someone else finished this layer first: theirs stands.
        await sn.remove(key).catch(() => {});
        note('exists');
        return 'exists';
      }
    } catch (err) {
      await sn.remove(key).catch(() => {}); // the partial snapshot goes (the GC retries if this fails)
      throw err;
    }
    await this.content.update(ctx, desc.digest, { [uncompressedLabel]: req.diffIds[i] }, [`labels.${uncompressedLabel}`]);
    note('unpacked');
    return 'unpacked';
  }
}

async function exists(sn: Snapshotter, key: string): Promise<boolean> {
  try {
    await sn.stat(key);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/**
 * Applies a layer to a snapshot's mounts (containerd's applier): straight into the folder of a
 * bind mount, straight into the upper folder of an overlay (overlay whiteouts, lower folders as
 * parents), anything else mounted on a temporary folder first. `overlayLayer`: the snapshot will
 * be stacked in an overlay (a rebased layer), so its whiteouts must be overlay whiteouts even
 * though it is written as a plain folder. `deferSync`: the caller flushes the folder written
 * into (`folder` in the result) itself later; a temporary mount is flushed here all the same.
 */
export async function applyToMounts(
  mounts: Mount[],
  source: AsyncIterable<Uint8Array>,
  opts: Omit<ApplyOptions, 'root' | 'overlay'>,
  overlayLayer = false,
  deferSync = false,
): Promise<Applied & { folder?: string }> {
  const only = mounts.length === 1 ? mounts[0] : undefined;
  // A rebased layer's folder starts empty: what the apply writes is all it holds.
  const inFolder = { ...opts, sync: opts.sync && !deferSync, countUsage: overlayLayer };
  if (only?.type === 'bind') {
    const applied = await applyLayer(source, { ...inFolder, root: only.source, ...(overlayLayer ? { overlay: { lowers: [] } } : {}) });
    return { ...applied, folder: only.source };
  }
  const upper = only?.type === 'overlay' ? optionValue(only.options, 'upperdir') : undefined;
  if (upper !== undefined) {
    const lowers = (optionValue(only!.options, 'lowerdir') ?? '').split(':').filter(Boolean);
    return { ...(await applyLayer(source, { ...inFolder, root: upper, overlay: { lowers } })), folder: upper };
  }
  const target = await mkdtemp(join(tmpdir(), 'berth-apply-'));
  try {
    await mountAll(mounts, target);
    try {
      return await applyLayer(source, { ...opts, root: target });
    } finally {
      await unmountAll(target);
    }
  } finally {
    // rmdir, never a recursive removal: if an unmount failed, that would go through the mount.
    await rmdir(target);
  }
}

function optionValue(options: string[], name: string): string | undefined {
  const o = options.find((x) => x.startsWith(`${name}=`));
  return o?.slice(name.length + 1);
}
