// One connection of this node to etcd: a client, the node's lease (kept alive by the client every
// TTL/3, as etcd's Go client does) and the watch that keeps the fleet view current. A session
// that breaks — etcd unreachable, the lease lost, the watch cut and not back within a request's deadline — is not repaired in place: it
// reports why, once, and the fleet (fleet.ts) opens a fresh one. A fresh client each time also
// sheds whatever a half-open gRPC stream left behind (microsoft/etcd3#110, #153).
import { Etcd3, Range, type Lease, type Watcher } from 'etcd3';
import { unavailable } from '../../store/errors.js';
import type { FleetKeys } from './keys.js';
import type { EtcdTlsFiles } from './options.js';
import type { FleetView } from './view.js';

export interface SessionOptions {
  /** `host:port` of each etcd endpoint. */
  endpoints: string[];
  /** Over TLS, with these files (options.ts read them); unset: plain text. */
  tls?: EtcdTlsFiles;
  keys: FleetKeys;
  ttlS: number;
  /** Deadline of each request (not of the keepalive and watch streams). */
  callTimeoutMs: number;
  /** Filled by the list and kept current by the watch. */
  view: FleetView;
  /** Called once, when the open session stops working. */
  onBroken(reason: string): void;
  /** Keys per page when listing the prefix (a range answer is capped at gRPC's 4 MiB). */
  pageSize?: number;
}

export class Session {
  private closed = false;
  private opened = false;
  private reported?: string;
  private failure?: Error;
  private watcher?: Watcher;
  private watchGrace?: NodeJS.Timeout;

  private constructor(
    private readonly o: SessionOptions,
    readonly client: Etcd3,
    private readonly lease: Lease,
    /** The lease's id (decimal, as the client gives it). */
    readonly leaseId: string,
  ) {}

  /** Connects, takes a lease and starts the watch; fails (and cleans up) when etcd does not answer. */
  static async open(o: SessionOptions): Promise<Session> {
    const { tls } = o;
    const client = new Etcd3({
      // `https://` makes the client use TLS (with the system's roots unless credentials say otherwise).
      hosts: tls ? o.endpoints.map((h) => `https://${h}`) : o.endpoints,
      ...(tls && (tls.ca || tls.cert)
        ? { credentials: { rootCertificate: tls.ca as Buffer, ...(tls.cert ? { certChain: tls.cert, privateKey: tls.key } : {}) } }
        : {}),
      // Each request has a deadline, so that an unreachable etcd is an error, not a wait; the
      // keepalive and watch streams have none (they are meant to stay open).
      defaultCallOptions: (c) => (c.isStream ? {} : { deadline: Date.now() + o.callTimeoutMs }),
    });
    let session: Session | undefined;
    try {
      const lease = client.lease(o.ttlS);
      // Attached at once: a failed grant emits `lost` too.
      lease.on('lost', (err) => session?.broken(`lease lost: ${err.message}`));
      // Not `keepaliveFailed`: the client retries a failed keepalive itself (after 100 ms), and one
      // missed beat — a stalled event loop, a dropped stream — does not end a lease that has
      // TTL left. `lost` comes when it does (the lease invalid, or 2 × TTL without a beat); an
      // etcd that went away is seen at once by the watch (`disconnected`).
      const id = await lease.grant();
      session = new Session(o, client, lease, id);
      await session.startWatch();
      if (session.failure) throw session.failure;
      session.opened = true;
      return session;
    } catch (err) {
      if (session) await session.close({ revoke: true }).catch(() => {});
      else client.close();
      throw unavailable(`etcd ${o.endpoints.join(', ')}: ${(err as Error).message}`, err);
    }
  }

  /** The lease as etcdctl shows it (hex). */
  get leaseHex(): string {
    return BigInt(this.leaseId).toString(16);
  }

  get isOpen(): boolean {
    return this.opened && !this.closed && this.reported === undefined;
  }

  /** Why the session stopped working, once it did. */
  get brokenBecause(): string | undefined {
    return this.reported;
  }

  /** Puts `key` on this session's lease. */
  async put(key: string, value: string): Promise<void> {
    await this.client.put(key).value(value).lease(this.leaseId).exec();
  }

  /** Puts every entry on the lease in one transaction (at most etcd's `--max-txn-ops`, 128 by default). */
  async putAll(entries: Array<[string, string]>): Promise<void> {
    if (entries.length === 0) return;
    await this.client.kv.txn({
      success: entries.map(([key, value]) => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value), lease: this.leaseId } })),
    });
  }

  async delete(key: string): Promise<void> {
    await this.client.delete().key(key).exec();
  }

  /**
   * Creates `key` = `value` on the lease if no such key exists (its create revision is 0), in one
   * transaction; otherwise answers the value that is there.
   */
  async createIfAbsent(
    key: string,
    value: string,
  ): Promise<{ created: true } | { created: false; value: string; revision: string } | { created: false; value: undefined }> {
    const res = await this.client
      .if(key, 'Create', '==', 0)
      .then(this.client.put(key).value(value).lease(this.leaseId))
      .else(this.client.get(key))
      .commit();
    if (res.succeeded) return { created: true };
    const kv = res.responses[0]?.response_range?.kvs[0];
    return kv ? { created: false, value: kv.value.toString(), revision: kv.mod_revision } : { created: false, value: undefined };
  }

  /** Deletes `key` if it is still on this session's lease (never another node's key of the same name). */
  async deleteIfOwned(key: string): Promise<void> {
    await this.client.if(key, 'Lease', '==', this.leaseId).then(this.client.delete().key(key)).commit();
  }

  /** Revokes a lease an earlier session of this node left: what is still on it goes at once. */
  async revoke(leaseId: string): Promise<void> {
    try {
      await this.client.leaseClient.leaseRevoke({ ID: leaseId });
    } catch (err) {
      // Already expired (etcd answers "requested lease not found"): nothing was left on it.
      if (!/lease not found/i.test((err as Error).message)) throw err;
    }
  }

  /**
   * Ends the session. `revoke`: the lease goes now and every key on it with it (a clean stop);
   * otherwise it is only no longer kept alive, and expires within its TTL.
   */
  async close(opts: { revoke: boolean }): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const watcher = this.watcher;
    this.watcher = undefined;
    this.watchUp();
    // Cancelled before the client closes, or the client's watch manager would keep reconnecting it.
    if (watcher) await withTimeout(watcher.cancel(), this.o.callTimeoutMs).catch(() => {});
    try {
      if (opts.revoke) await withTimeout(this.lease.revoke(), this.o.callTimeoutMs);
      else this.lease.release();
    } finally {
      this.lease.release();
      this.client.close();
    }
  }

  private broken(reason: string): void {
    if (this.closed || this.reported !== undefined) return;
    if (!this.opened) {
      this.failure ??= new Error(reason);
      return;
    }
    this.reported = `etcd ${this.o.endpoints.join(', ')}: ${reason}`; // once: fleet.ts closes this session and opens another
    this.o.onBroken(this.reported);
  }

  /**
   * List, then watch from the revision after the list: every change after the list arrives, in
   * order, none twice. etcd cancels a watch whose start revision was compacted away; then the
   * list is taken again (a watch cancelled before it ever connected is a broken session).
   */
  private async startWatch(): Promise<void> {
    const { revision, entries } = await this.list();
    this.o.view.reset(entries, BigInt(revision));
    const watcher = this.client.watch().prefix(this.o.keys.dir).startRevision((BigInt(revision) + 1n).toString()).watcher();
    this.watcher = watcher;
    const { view } = this.o;
    watcher.on('put', (kv) => view.set(kv.key.toString(), kv.value.toString(), kv.mod_revision));
    watcher.on('delete', (kv) => view.delete(kv.key.toString(), kv.mod_revision));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the watch did not start within ${this.o.callTimeoutMs} ms`)), this.o.callTimeoutMs);
      watcher.once('connected', () => {
        clearTimeout(timer);
        resolve();
      });
      watcher.on('disconnected', (err) => {
        clearTimeout(timer);
        reject(err);
        if (this.watcher === watcher && this.opened) this.watchDown(watcher, err.message);
      });
      // The client reconnects a dropped watch by itself, from the revision after the last event
      // it delivered: nothing is missed. A drop it repairs within the grace is no reason to leave.
      watcher.on('connected', () => {
        if (this.watcher === watcher) this.watchUp();
      });
      watcher.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
        if (this.watcher === watcher && this.opened) void this.relist(err.message);
      });
    });
  }

  /**
   * The watch dropped: the session breaks unless the client has it back within a request's
   * deadline. Meanwhile the view is kept (claims are taken in etcd, never from the view alone);
   * an etcd that is really gone also stops the lease's keepalive and every request.
   */
  private watchDown(watcher: Watcher, reason: string): void {
    if (this.watchGrace) return;
    this.watchGrace = setTimeout(() => {
      this.watchGrace = undefined;
      if (this.watcher === watcher) this.broken(`watch disconnected (${reason}) and not back within ${this.o.callTimeoutMs} ms`);
    }, this.o.callTimeoutMs);
  }

  private watchUp(): void {
    clearTimeout(this.watchGrace);
    this.watchGrace = undefined;
  }

  private async relist(reason: string): Promise<void> {
    if (this.closed) return;
    try {
      await this.startWatch();
    } catch (err) {
      this.broken(`watch cancelled (${reason}) and listing again failed: ${(err as Error).message}`);
    }
  }

  /** Every key under the prefix at one revision, a page at a time. */
  private async list(): Promise<{ revision: string; entries: Array<[string, string]> }> {
    const pageSize = this.o.pageSize ?? 1000;
    const end = Range.prefix(this.o.keys.dir).end;
    const entries: Array<[string, string]> = [];
    let revision: string | undefined;
    let from: Buffer = Buffer.from(this.o.keys.dir);
    for (;;) {
      let query = this.client.getAll().inRange(new Range(from, end)).limit(pageSize);
      // Later pages at the first page's revision: one consistent picture.
      if (revision !== undefined) query = query.revision(revision);
      const res = await query.exec();
      revision ??= res.header.revision;
      for (const kv of res.kvs) entries.push([kv.key.toString(), kv.value.toString()]);
      if (!res.more || res.kvs.length === 0) break;
      from = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
    }
    return { revision, entries };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
