// This node's membership of a fleet of berth nodes coordinating through etcd (issue 12): it joins
// (a lease, its node record, its advertisements), follows the fleet in memory, and takes
// per-digest claims. When etcd cannot be reached the node works alone — `state: 'alone'` with the
// reason, no peers, every claim its own — and keeps trying, with backoff; once etcd answers
// again it joins afresh: a new lease, its node record and advertisements written again, and the
// lease of the broken session revoked so that nothing it no longer holds stays advertised.
import { BerthError } from '../../store/errors.js';
import { parseDigest } from '../../store/digest.js';
import { formatTimestamp } from '../oci/time.js';
import type { BlobHolder, Claim, Fleet } from '../pull/peers.js';
import { Advertiser, leaseGone, type CommittedBlob } from './adverts.js';
import { FleetKeys, parseNodeRecord, type NodeRecord } from './keys.js';
import type { EtcdTlsFiles } from './options.js';
import { Session } from './session.js';
import { FleetView } from './view.js';

export type FleetState = 'joined' | 'alone';

export interface FleetLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface EtcdFleetOptions {
  /** `host:port` of each etcd endpoint (options.ts parses the configured URLs). */
  endpoints: string[];
  /** TLS to etcd, with these files; unset: plain text. */
  tls?: EtcdTlsFiles;
  node: string;
  /** Where peers reach this node's registry listener, `host:port`. */
  address: string;
  /** Key prefix, e.g. `/berth/fleet` (no trailing `/`). */
  prefix: string;
  leaseTtlS: number;
  /** The committed blobs this node serves, advertised at every join. */
  committed: () => AsyncIterable<CommittedBlob>;
  logger: FleetLogger;
  /** Progress of one digest is written at most this often (default 250 ms). */
  progressIntervalMs?: number;
  /** The longest wait between two attempts to reach etcd (default 5 s). */
  maxBackoffMs?: number;
}

/** A node as `GET /v1/fleet/nodes` shows it. */
export interface FleetNode extends NodeRecord {
  self: boolean;
}

/** What the fleet's routes read (fleet.ts implements it; routes import only the type). */
export interface FleetReader {
  readonly node: string;
  nodes(): FleetNode[];
  holders(digest: string): BlobHolder[];
  /** The node holding the claim on `digest`, if any. */
  claimOf(digest: string): string | undefined;
}

/** What a node working alone answers a claim: nobody to share the fetch with. */
const aloneClaim: Claim = { mine: true, release: async () => {} };

/** How many leases of broken sessions are remembered for revocation (each expires within its TTL anyway). */
const staleLeaseLimit = 8;

export class EtcdFleet implements Fleet, FleetReader {
  readonly node: string;
  readonly address: string;
  readonly startedAt = formatTimestamp(new Date());
  private currentState: FleetState = 'alone';
  private currentReason: string | undefined = 'not started';
  private session?: Session;
  private readonly staleLeases: string[] = [];
  /** Digests this node claimed and is still fetching: claimed again at a re-join. */
  private readonly claims = new Set<string>();
  private readonly keys: FleetKeys;
  private readonly view: FleetView;
  private readonly adverts: Advertiser;
  private readonly stateListeners = new Set<() => void>();
  private retryTimer?: NodeJS.Timeout;
  private attempts = 0;
  private connecting?: Promise<void>;
  private closed = false;
  private loggedAlone = false;

  constructor(private readonly o: EtcdFleetOptions) {
    this.node = o.node;
    this.address = o.address;
    this.keys = new FleetKeys(o.prefix);
    this.view = new FleetView(this.keys);
    this.adverts = new Advertiser({
      node: o.node,
      keys: this.keys,
      intervalMs: o.progressIntervalMs ?? 250,
      committed: o.committed,
      onFailure: (session, reason) => this.broken(session, reason),
      logger: o.logger,
    });
  }

  get state(): FleetState {
    return this.currentState;
  }

  /** Why the node works alone (undefined while joined). */
  get reason(): string | undefined {
    return this.currentReason;
  }

  /** The current lease, in hex as etcdctl shows it (undefined while alone). */
  get lease(): string | undefined {
    return this.session?.leaseHex;
  }

  get endpoints(): string[] {
    return [...this.o.endpoints];
  }

  /** Calls `fn` after every change of state; returns the function that stops it. */
  onStateChange(fn: () => void): () => void {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  }

  /**
   * The first attempt to join. Never fails for want of etcd, nor waits longer than its request
   * deadlines: an unreachable etcd leaves the node alone, trying again in the background.
   */
  async start(): Promise<void> {
    const limitMs = this.callTimeoutMs();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), limitMs);
    });
    // The client retries a request a few times, each with its deadline; start-up does not wait for all of them.
    const late = await Promise.race([this.connect().then(() => false), timedOut]);
    clearTimeout(timer);
    if (late && this.currentState === 'alone') {
      this.setState('alone', `etcd ${this.o.endpoints.join(', ')} did not answer within ${limitMs} ms (still trying)`);
    }
  }

  /** A clean stop: the lease is revoked, so every peer sees this node and its keys go at once. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.connecting;
    this.adverts.close();
    const session = this.session;
    this.session = undefined;
    if (session) {
      try {
        await session.close({ revoke: true });
      } catch (err) {
        this.o.logger.warn({ err: (err as Error).message }, 'fleet: revoking the lease at stop failed; it expires within its TTL');
      }
    }
    this.view.clear();
    this.setState('alone', 'stopped');
  }

  // ---- the fleet as seen from here -----------------------------------------------------------------

  nodes(): FleetNode[] {
    const seen = this.view.nodes();
    // This node is listed even alone, or before the watch has delivered its own record.
    const self: NodeRecord = { name: this.node, address: this.address, startedAt: this.startedAt };
    const all = seen.some((n) => n.name === this.node) ? seen : [...seen, self].sort((a, b) => a.name.localeCompare(b.name));
    return all.map((n) => ({ ...n, self: n.name === this.node }));
  }

  holders(digest: string): BlobHolder[] {
    return this.view.holders(digest);
  }

  addressOf(name: string): string | undefined {
    return this.view.nodeRecord(name)?.address;
  }

  claimOf(digest: string): string | undefined {
    return this.view.claim(digest);
  }

  // ---- what a pull uses ------------------------------------------------------------------------------

  advertise(digest: string, size: number, offset: number, complete: boolean): void {
    this.adverts.advertise(digest, size, offset, complete);
  }

  withdraw(digest: string): Promise<void> {
    return this.adverts.withdraw(digest);
  }

  /**
   * Creates `<prefix>/claims/<digest>` = this node, on its lease, if no node holds it (one
   * transaction). A claim this node already holds answers `mine: false` with this node as the
   * holder: one fetch per digest per node is the pull's own rule.
   */
  async claim(digest: string): Promise<Claim> {
    parseDigest(digest);
    const session = this.session;
    if (!session) return aloneClaim;
    const key = this.keys.claim(digest);
    let answer: Awaited<ReturnType<Session['createIfAbsent']>>;
    try {
      answer = await session.createIfAbsent(key, this.node);
    } catch (err) {
      // No answer: fetch it without a claim (at worst another node fetches it too). Only a lost
      // lease ends the session; a slow etcd does not.
      if (leaseGone(err)) this.broken(session, `claiming ${digest}: ${(err as Error).message}`);
      else this.o.logger.warn({ digest, err: (err as Error).message }, 'fleet: claiming failed; fetching without a claim');
      return aloneClaim;
    }
    if (answer.created) {
      this.claims.add(digest);
      let released: Promise<void> | undefined;
      return {
        mine: true,
        release: () =>
          (released ??= (async () => {
            this.claims.delete(digest);
            // The claim is on the lease of the session now open: the one it was taken on, or
            // the one that took it again at a re-join.
            const current = this.session;
            if (current) await this.release(current, key, digest);
          })()),
      };
    }
    // A transaction compares and reads at one revision: the key it found there exists.
    if (answer.value === undefined) throw new BerthError('internal', `claim ${digest}: etcd found the claim key and read none`);
    this.view.noteClaim(digest, answer.value, answer.revision);
    return { mine: false, holder: answer.value };
  }

  claimReleased(digest: string, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      // Alone, no claim is visible (view cleared): nobody to wait for.
      if (this.view.claim(digest) === undefined) return resolve();
      const onAbort = () => {
        stop();
        reject(signal!.reason);
      };
      const stop = this.view.onClaimGone(digest, () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private async release(session: Session, key: string, digest: string): Promise<void> {
    // The session is gone: the claim went (or goes) with its lease.
    if (!session.isOpen) return;
    // A claim left in place would keep peers waiting on a fetch that is over: asked again when
    // etcd is slow, and if it still fails the session goes, and the claim with its lease.
    for (let attempt = 1; ; attempt++) {
      try {
        await session.deleteIfOwned(key);
        return;
      } catch (err) {
        if (leaseGone(err) || attempt >= 3) return this.broken(session, `releasing the claim on ${digest}: ${(err as Error).message}`);
      }
    }
  }

  // ---- joining, breaking, joining again ---------------------------------------------------------------

  private connect(): Promise<void> {
    this.connecting ??= this.tryJoin().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async tryJoin(): Promise<void> {
    this.retryTimer = undefined;
    if (this.closed) return;
    let session: Session | undefined;
    try {
      session = await Session.open({
        endpoints: this.o.endpoints,
        tls: this.o.tls,
        keys: this.keys,
        ttlS: this.o.leaseTtlS,
        callTimeoutMs: this.callTimeoutMs(),
        view: this.view,
        onBroken: (reason) => this.broken(session!, reason),
      });
      const record: NodeRecord = { name: this.node, address: this.address, startedAt: this.startedAt };
      const value = JSON.stringify(record);
      const key = this.keys.node(this.node);
      // Names are unique in the fleet: a record of this name that is not this process's own (from
      // an earlier session of it) belongs to another live node — or to this node's previous run,
      // killed less than a TTL ago. Either way, join only once it has gone.
      const existing = await session.createIfAbsent(key, value);
      if (!existing.created) {
        if (existing.value !== value) {
          const other = parseNodeRecord(existing.value ?? '');
          throw new Error(
            `node name ${JSON.stringify(this.node)} is taken by another node` +
              (other ? ` (${other.address}, started ${other.startedAt})` : '') +
              ': node names must be unique in the fleet; retrying until that record goes with its lease',
          );
        }
        await session.put(key, value); // this process's record, moved onto the new lease
      }
      // Broken between the watch starting and now: fleet.ts did not know the session yet.
      if (!session.isOpen) throw new Error(session.brokenBecause ?? 'the session closed while joining');
    } catch (err) {
      await session?.close({ revoke: true }).catch(() => {});
      this.view.clear();
      const message = (err as Error).message;
      this.setState('alone', message.startsWith('etcd ') ? message : `etcd ${this.o.endpoints.join(', ')}: ${message}`);
      this.scheduleRetry();
      return;
    }
    if (this.closed) {
      await session.close({ revoke: true }).catch(() => {});
      return;
    }
    this.session = session;
    this.attempts = 0;
    this.setState('joined', undefined);
    const joined = session;
    void this.adverts.attach(joined).then(
      // Earlier leases first: a claim still on one would make the new claim look taken.
      () => this.revokeStaleLeases(joined).then(() => this.reclaim(joined)),
      (err: Error) => this.broken(joined, `advertising committed content: ${err.message}`),
    );
  }

  /**
   * The claims this node held when its last session broke went with that session's lease; its
   * fetches go on, so it claims them again (unless another node took one meanwhile: then both
   * fetch it, once each).
   */
  private async reclaim(session: Session): Promise<void> {
    for (const digest of [...this.claims]) {
      if (this.session !== session) return;
      try {
        await session.createIfAbsent(this.keys.claim(digest), this.node);
      } catch (err) {
        return this.broken(session, `claiming ${digest} again: ${(err as Error).message}`);
      }
    }
  }

  /** Leases of earlier sessions: what is still on them (advertisements withdrawn meanwhile, old claims) goes now. */
  private async revokeStaleLeases(session: Session): Promise<void> {
    while (this.staleLeases.length > 0 && this.session === session) {
      const id = this.staleLeases[0];
      try {
        await session.revoke(id);
      } catch (err) {
        return this.broken(session, `revoking an earlier lease: ${(err as Error).message}`);
      }
      this.staleLeases.shift();
    }
  }

  private broken(session: Session, reason: string): void {
    if (this.session !== session) return; // an earlier session: already replaced
    this.session = undefined;
    this.staleLeases.push(session.leaseId);
    if (this.staleLeases.length > staleLeaseLimit) this.staleLeases.shift();
    this.adverts.detach();
    // Not revoked (etcd is likely out of reach): the lease expires within its TTL.
    void session.close({ revoke: false }).catch(() => {});
    this.view.clear();
    this.setState('alone', reason);
    this.scheduleRetry();
  }

  /** A request's deadline: half the TTL (the keepalive's margin), from 1 s to 5 s. */
  private callTimeoutMs(): number {
    return Math.max(1000, Math.min(5000, (this.o.leaseTtlS * 1000) / 2));
  }

  /** Exponential backoff from 200 ms to `maxBackoffMs`, with jitter so that a fleet does not retry in step. */
  private scheduleRetry(): void {
    if (this.closed || this.retryTimer) return;
    const max = this.o.maxBackoffMs ?? 5000;
    const base = Math.min(max, 200 * 2 ** Math.min(this.attempts, 16));
    this.attempts++;
    const delay = base / 2 + Math.random() * (base / 2);
    this.retryTimer = setTimeout(() => void this.connect(), delay);
    this.retryTimer.unref();
  }

  private setState(state: FleetState, reason: string | undefined): void {
    if (state === this.currentState && reason === this.currentReason) return;
    const was = this.currentState;
    this.currentState = state;
    this.currentReason = reason;
    // Logged when the state changes, not at every failed retry while alone.
    if (state === 'joined') {
      this.o.logger.info({ node: this.node, lease: this.lease, endpoints: this.o.endpoints }, 'fleet: joined');
    } else if (reason === 'stopped') {
      this.o.logger.info({ node: this.node }, 'fleet: left (lease revoked)');
    } else if (was === 'joined' || !this.loggedAlone) {
      this.loggedAlone = true;
      this.o.logger.warn({ node: this.node, reason }, 'fleet: working alone, retrying etcd in the background');
    }
    for (const fn of this.stateListeners) fn();
  }
}
