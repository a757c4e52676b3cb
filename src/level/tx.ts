// One write transaction over LevelDB sublevels, which have no transactions of their own: reads
// see the store plus the transaction's writes, and the writes become one batch. The metadata
// store and the snapshotters' metastores both keep their records this way.
import type { Level } from 'level';
import type { AbstractSublevel } from 'abstract-level';

export type Sub<V> = AbstractSublevel<Level<string, unknown>, string | Buffer | Uint8Array, string, V>;

type Op =
  | { type: 'put'; sublevel: Sub<unknown>; key: string; value: unknown }
  | { type: 'del'; sublevel: Sub<unknown>; key: string };

/**
 * One write transaction: reads see the store plus this transaction's own writes; the writes
 * become one batch when the function returns.
 */
export class Tx {
  readonly ops: Op[] = [];
  private readonly pending = new Map<Sub<unknown>, Map<string, unknown>>();
  /** Something was deleted: the GC scheduler counts these. */
  dirty = false;
  /** The earliest expiry this transaction wrote (a lease, image or ingest): when GC has work. */
  expiresAt: Date | undefined;

  /** Notes that something written here stops being a GC root at `at`. */
  noteExpiry(at: Date | undefined): void {
    if (at && (!this.expiresAt || at < this.expiresAt)) this.expiresAt = at;
  }

  async get<V>(sub: Sub<V>, key: string): Promise<V | undefined> {
    const mine = this.pending.get(sub as Sub<unknown>);
    if (mine?.has(key)) return mine.get(key) as V | undefined;
    return sub.get(key);
  }

  put<V>(sub: Sub<V>, key: string, value: V): void {
    this.ops.push({ type: 'put', sublevel: sub as Sub<unknown>, key, value });
    this.pendingOf(sub).set(key, value);
  }

  del<V>(sub: Sub<V>, key: string): void {
    this.ops.push({ type: 'del', sublevel: sub as Sub<unknown>, key });
    this.pendingOf(sub).set(key, undefined);
  }

  private pendingOf<V>(sub: Sub<V>): Map<string, unknown> {
    let m = this.pending.get(sub as Sub<unknown>);
    if (!m) this.pending.set(sub as Sub<unknown>, (m = new Map()));
    return m;
  }
}
