// What this node tells the fleet it holds: `<prefix>/blobs/<digest>/<node>` on the node's lease.
//
// - Progress of a blob still arriving is written at most every `intervalMs` (250 ms) per digest:
//   peers learn early that the bytes are coming, and etcd is not written once per chunk. The
//   complete state is written at once: it is what lets peers read the whole blob.
// - The etcd operations of one digest run one after another, so a withdraw can never be
//   overtaken by an earlier put of the same key.
// - Memory holds only what is not yet written, or still arriving. A complete blob is dropped once
//   written: at every (re-)join, the committed blobs are read again from the content store and
//   written in transactions of `batch` puts, one transaction at a time — bounded in memory and in
//   request size however many blobs the node has.
import type { Advertisement, FleetKeys } from './keys.js';
import type { Session } from './session.js';

/** A write that missed its deadline is tried again after this long. */
const retryMs = 500;
/** Deletes tried before a withdraw gives up on the session (its lease then takes the key). */
const withdrawAttempts = 3;

/** etcd says the session's lease no longer exists: whatever was on it is gone. */
export function leaseGone(err: unknown): boolean {
  return /lease not found|expired or revoked/i.test((err as Error)?.message ?? '');
}

export interface CommittedBlob {
  digest: string;
  size: number;
}

export interface AdvertiserOptions {
  node: string;
  keys: FleetKeys;
  intervalMs: number;
  /** The blobs to advertise complete at each join (the namespace's committed content). */
  committed: () => AsyncIterable<CommittedBlob>;
  /** An etcd write failed: the session is broken. */
  onFailure(session: Session, reason: string): void;
  logger: { warn(obj: object, msg: string): void };
  /** Puts per transaction at a join (etcd's `--max-txn-ops` is 128 by default). */
  batch?: number;
}

interface Entry {
  ad: Advertisement;
  /** When the last write started (the rate limit counts from there). */
  lastWrite: number;
  /** Changed since the last write started. */
  dirty: boolean;
  writing: boolean;
  timer?: NodeJS.Timeout;
}

export class Advertiser {
  private readonly entries = new Map<string, Entry>();
  /** digest → the last etcd operation queued for it. */
  private readonly tails = new Map<string, Promise<void>>();
  private session?: Session;
  /** Digests withdrawn while a join's advertisement of the committed blobs runs. */
  private withdrawnDuringSync?: Set<string>;

  constructor(private readonly o: AdvertiserOptions) {}

  advertise(digest: string, size: number, offset: number, complete: boolean): void {
    let entry = this.entries.get(digest);
    if (!entry) this.entries.set(digest, (entry = { ad: { size, offset, complete }, lastWrite: 0, dirty: true, writing: false }));
    entry.ad = { size, offset: complete ? size : Math.min(offset, size), complete };
    entry.dirty = true;
    this.schedule(digest, entry);
  }

  async withdraw(digest: string): Promise<void> {
    const entry = this.entries.get(digest);
    if (entry) clearTimeout(entry.timer);
    this.entries.delete(digest);
    this.withdrawnDuringSync?.add(digest);
    const session = this.session;
    // Alone: nothing to write. The key, if etcd still has it, is on a lease this node revokes
    // once it is back (fleet.ts), and the next join does not advertise what is not held.
    if (!session) return;
    await this.enqueue(digest, async () => {
      // A slow etcd is asked again (a stale advertisement would send peers for a blob that is
      // going); a lost lease takes the key with it.
      for (let attempt = 1; this.session === session; attempt++) {
        try {
          await session.delete(this.o.keys.blob(digest, this.o.node));
          return;
        } catch (err) {
          if (leaseGone(err) || attempt >= withdrawAttempts) {
            return this.o.onFailure(session, `withdrawing ${digest}: ${(err as Error).message}`);
          }
        }
      }
    });
  }

  /**
   * A session is open: writes what is pending (blobs still arriving first: peers may follow them
   * now), then every committed blob. Rejects when etcd fails meanwhile.
   */
  async attach(session: Session): Promise<void> {
    this.session = session;
    for (const [digest, entry] of this.entries) {
      entry.dirty = true;
      entry.lastWrite = 0;
      this.schedule(digest, entry);
    }
    const withdrawn = new Set<string>();
    this.withdrawnDuringSync = withdrawn;
    try {
      await this.advertiseCommitted(session, withdrawn);
    } finally {
      if (this.withdrawnDuringSync === withdrawn) this.withdrawnDuringSync = undefined;
    }
  }

  /** The session is gone: nothing is written until the next one; pending state is kept for it. */
  detach(): void {
    this.session = undefined;
    for (const entry of this.entries.values()) {
      clearTimeout(entry.timer);
      entry.timer = undefined;
      entry.dirty = true;
    }
  }

  close(): void {
    this.detach();
    this.entries.clear();
  }

  private async advertiseCommitted(session: Session, withdrawn: Set<string>): Promise<void> {
    const limit = this.o.batch ?? 64;
    let batch: CommittedBlob[] = [];
    const flush = async () => {
      const blobs = batch;
      batch = [];
      const complete = (size: number): Advertisement => ({ size, offset: size, complete: true });
      await session.putAll(blobs.map((b) => [this.o.keys.blob(b.digest, this.o.node), JSON.stringify(complete(b.size))]));
      // Withdrawn while the transaction was on its way: take it back, after the put.
      for (const b of blobs) if (withdrawn.has(b.digest)) await session.delete(this.o.keys.blob(b.digest, this.o.node));
    };
    const source = this.o.committed()[Symbol.asyncIterator]();
    for (;;) {
      let next: IteratorResult<CommittedBlob>;
      try {
        next = await source.next();
      } catch (err) {
        // The content store failed (e.g. closing at shutdown): not etcd's fault, so the session stays.
        this.o.logger.warn({ err: (err as Error).message }, 'fleet: listing committed content to advertise failed');
        break;
      }
      if (next.done) break;
      if (this.session !== session) {
        await source.return?.();
        return; // the session broke meanwhile: the next join starts over
      }
      // Newer news about this digest is queued already, or it was taken back meanwhile.
      if (this.entries.has(next.value.digest) || withdrawn.has(next.value.digest)) continue;
      batch.push(next.value);
      if (batch.length >= limit) await flush();
    }
    if (batch.length > 0 && this.session === session) await flush();
  }

  private schedule(digest: string, entry: Entry): void {
    if (!this.session || entry.writing || !entry.dirty) return; // a write in flight reschedules when it ends
    const wait = entry.ad.complete ? 0 : entry.lastWrite + this.o.intervalMs - Date.now();
    if (wait <= 0) {
      clearTimeout(entry.timer);
      entry.timer = undefined;
      this.write(digest, entry);
    } else if (!entry.timer) {
      entry.timer = setTimeout(() => {
        entry.timer = undefined;
        this.schedule(digest, entry);
      }, wait);
      entry.timer.unref();
    }
  }

  private write(digest: string, entry: Entry): void {
    const session = this.session!;
    entry.dirty = false;
    entry.writing = true;
    entry.lastWrite = Date.now();
    const value = JSON.stringify(entry.ad);
    const complete = entry.ad.complete;
    void this.enqueue(digest, async () => {
      try {
        await session.put(this.o.keys.blob(digest, this.o.node), value);
      } catch (err) {
        entry.writing = false;
        entry.dirty = true;
        const reason = `advertising ${digest}: ${(err as Error).message}`;
        // The lease is gone: the session is. Otherwise etcd was slow (a missed deadline):
        // written again a little later, on the same lease.
        if (leaseGone(err)) return this.o.onFailure(session, reason);
        this.o.logger.warn({ digest, err: (err as Error).message }, 'fleet: advertising failed; trying again');
        this.retryLater(digest, entry);
        return;
      }
      entry.writing = false;
      if (this.entries.get(digest) !== entry) return; // withdrawn meanwhile
      if (entry.dirty) this.schedule(digest, entry);
      else if (complete) this.entries.delete(digest); // held by the store: the next join reads it from there
    });
  }

  private retryLater(digest: string, entry: Entry): void {
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (this.entries.get(digest) === entry) this.schedule(digest, entry);
    }, retryMs);
    entry.timer.unref();
  }

  private enqueue(digest: string, op: () => Promise<void>): Promise<void> {
    const next = (this.tails.get(digest) ?? Promise.resolve()).then(op);
    this.tails.set(digest, next);
    void next.then(() => {
      if (this.tails.get(digest) === next) this.tails.delete(digest);
    });
    return next;
  }
}
