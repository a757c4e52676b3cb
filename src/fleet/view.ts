// The fleet as this node last saw it: every node record, advertisement and claim under the
// prefix, kept in memory from a list and the watch that follows it (session.ts feeds it). Lookups
// — who holds a digest, who claims it — read these maps and cost no round trip to etcd.
import type { BlobHolder } from '../pull/peers.js';
import { parseAdvertisement, parseNodeRecord, type Advertisement, type FleetKeys, type NodeRecord } from './keys.js';

export class FleetView {
  private readonly nodeRecords = new Map<string, NodeRecord>();
  /** digest → node → what it advertises. */
  private readonly blobs = new Map<string, Map<string, Advertisement>>();
  /** digest → the node holding the claim. */
  private readonly claims = new Map<string, string>();
  /** digest → callbacks waiting for its claim to go. */
  private readonly claimWaiters = new Map<string, Set<() => void>>();
  /** The etcd revision this view reflects (the list's, then each watched event's). */
  private revision = 0n;

  constructor(private readonly keys: FleetKeys) {}

  /** Replaces everything with a list taken at `revision` (at a join, or after the watch was compacted away). */
  reset(entries: Iterable<[string, string]>, revision = 0n): void {
    const before = new Set(this.claims.keys());
    this.nodeRecords.clear();
    this.blobs.clear();
    this.claims.clear();
    for (const [key, value] of entries) this.set(key, value);
    this.revision = revision;
    for (const digest of before) if (!this.claims.has(digest)) this.claimGone(digest);
  }

  /**
   * Forgets the fleet: a node that cannot reach etcd cannot tell who is still there, and a stale
   * peer or claim would send a pull to wait on a node that may be gone. Claim waiters are woken:
   * with nobody to coordinate with, they fetch by themselves.
   */
  clear(): void {
    this.reset([]);
  }

  /** A put seen by the watch (at `revision`) or listed. */
  set(key: string, value: string, revision?: string): void {
    if (revision !== undefined) this.revision = BigInt(revision);
    const k = this.keys.parse(key);
    if (!k) return;
    if (k.kind === 'node') {
      const record = parseNodeRecord(value);
      // A record whose name disagrees with its key is not trusted: the key is what the node's lease owns.
      if (record && record.name === k.node) this.nodeRecords.set(k.node, record);
      else this.nodeRecords.delete(k.node);
    } else if (k.kind === 'blob') {
      const ad = parseAdvertisement(value);
      if (!ad) return this.deleteBlob(k.digest, k.node);
      let holders = this.blobs.get(k.digest);
      if (!holders) this.blobs.set(k.digest, (holders = new Map()));
      holders.set(k.node, ad);
    } else if (value) {
      this.claims.set(k.digest, value);
    }
  }

  /** A delete seen by the watch (at `revision`): a key removed, or its lease expired or revoked. */
  delete(key: string, revision?: string): void {
    if (revision !== undefined) this.revision = BigInt(revision);
    const k = this.keys.parse(key);
    if (!k) return;
    if (k.kind === 'node') this.nodeRecords.delete(k.node);
    else if (k.kind === 'blob') this.deleteBlob(k.digest, k.node);
    else if (this.claims.delete(k.digest)) this.claimGone(k.digest);
  }

  nodes(): NodeRecord[] {
    return [...this.nodeRecords.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  nodeRecord(name: string): NodeRecord | undefined {
    return this.nodeRecords.get(name);
  }

  /**
   * Nodes advertising `digest` that have a node record (the address to reach them): complete
   * first, then the furthest along, then by name so that the order is stable.
   */
  holders(digest: string): BlobHolder[] {
    const out: BlobHolder[] = [];
    for (const [node, ad] of this.blobs.get(digest) ?? []) {
      const record = this.nodeRecords.get(node);
      if (record) out.push({ node, address: record.address, ...ad });
    }
    return out.sort((a, b) => Number(b.complete) - Number(a.complete) || b.offset - a.offset || a.node.localeCompare(b.node));
  }

  claim(digest: string): string | undefined {
    return this.claims.get(digest);
  }

  /**
   * A claim this node read in a transaction (put at `revision`) before its watch delivered it.
   * Taken into the view only if the view is older than that put: then the watch has yet to
   * deliver it and whatever follows it (a release), in order; otherwise the view knows better.
   */
  noteClaim(digest: string, holder: string, revision: string): void {
    if (BigInt(revision) > this.revision) this.claims.set(digest, holder);
  }

  /** Calls `fn` once when `digest` has no claim any more; returns the function that stops waiting. */
  onClaimGone(digest: string, fn: () => void): () => void {
    let waiters = this.claimWaiters.get(digest);
    if (!waiters) this.claimWaiters.set(digest, (waiters = new Set()));
    waiters.add(fn);
    return () => {
      waiters.delete(fn);
      if (waiters.size === 0 && this.claimWaiters.get(digest) === waiters) this.claimWaiters.delete(digest);
    };
  }

  private claimGone(digest: string): void {
    const waiters = this.claimWaiters.get(digest);
    if (!waiters) return;
    this.claimWaiters.delete(digest);
    for (const fn of waiters) fn();
  }

  private deleteBlob(digest: string, node: string): void {
    const holders = this.blobs.get(digest);
    if (!holders) return;
    holders.delete(node);
    if (holders.size === 0) this.blobs.delete(digest);
  }
}
