// Where a blob's bytes come from (issue 12): the upstream alone, or — on a node in a fleet — the
// peers first. For each attempt at a blob (the first, or a resume from the offset reached):
//
//   1. a peer that holds it: complete ones first, then one still fetching it that is further on
//      than this node (never one behind: two nodes can then never wait on each other);
//   2. otherwise the fleet-wide claim on fetching it: taken, this node fetches from the upstream
//      and holds the claim until the blob is done; held by another node, this node streams the
//      blob from that node's ingest as it arrives;
//   3. a claimant that cannot be reached: wait until its claim goes (released, or its lease
//      expired with its node) or a short while has passed, and choose again — for about 15 s
//      at most, then fetch from the upstream anyway.
//
// A peer that fails to answer within the client's connect timeout, or fails mid-blob, is not
// asked again for this blob in this download (the claimant excepted, once its backoff passed).
// Only pulls in the fleet's namespace claim: the registry listener serves that namespace, so
// peers can follow only those fetches. Pulls in other namespaces still read from peers.
import type { Readable } from 'node:stream';
import { errorCode } from '../../store/errors.js';
import type { OpContext } from '../metadata/context.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { PeerClient } from '../remotes/peer.js';
import type { ImageReference } from '../remotes/reference.js';
import type { Resolver } from '../remotes/resolver.js';
import type { Claim, Fleet } from './peers.js';

/** What berth says a blob's bytes came from: `upstream`, or `peer <node>`. */
export type SourceName = 'upstream' | `peer ${string}`;

/** Waits for an unreachable claimant (250 ms growing to 2 s each: about 15 s in all) before fetching anyway. */
const maxClaimWaits = 10;

export interface Peers {
  fleet: Fleet;
  client: PeerClient;
  /** The namespace this node serves to its peers (the registry listener's). */
  namespace: string;
}

/** One download's dealings with its sources: the claim it holds, the peers that failed it. */
export class SourceChoice {
  claim?: Extract<Claim, { mine: true }>;
  readonly failed = new Set<string>();
  /** Waits for an unreachable claimant so far (the backoff grows with them). */
  waits = 0;

  constructor(
    readonly ctx: OpContext,
    readonly ref: ImageReference,
    readonly desc: Descriptor,
    readonly signal: AbortSignal | undefined,
  ) {}

  /** Gives up the claim, if this download holds one. */
  async release(): Promise<void> {
    const claim = this.claim;
    this.claim = undefined;
    await claim?.release().catch(() => {});
  }
}

export class BlobSources {
  private peers?: Peers;

  constructor(private readonly resolver: Resolver) {}

  /** The fleet joins (or, with undefined, leaves): pulls then use peers. */
  usePeers(peers: Peers | undefined): void {
    this.peers = peers;
  }

  /** Does this download's node tell the fleet about it (advertise, claim)? */
  shares(ctx: OpContext): Fleet | undefined {
    return this.peers && ctx.namespace === this.peers.namespace ? this.peers.fleet : undefined;
  }

  /** The stream of the blob's bytes from `offset`, and where they come from. */
  async open(choice: SourceChoice, offset: number): Promise<{ source: SourceName; body: Readable }> {
    const { ref, desc, signal } = choice;
    const peers = this.peers;
    if (!peers || choice.claim) return { source: 'upstream', body: await this.resolver.fetch(ref, desc, offset, signal) };
    const { fleet, client } = peers;
    for (;;) {
      signal?.throwIfAborted();
      for (const holder of fleet.holders(desc.digest)) {
        if (holder.node === fleet.node || choice.failed.has(holder.node)) continue;
        if (!holder.complete && holder.offset <= offset) continue;
        const body = await this.fromPeer(choice, holder.node, holder.address, offset);
        if (body) return { source: `peer ${holder.node}`, body };
      }
      if (!this.shares(choice.ctx)) return { source: 'upstream', body: await this.resolver.fetch(ref, desc, offset, signal) };
      const claim = await fleet.claim(desc.digest);
      if (claim.mine) {
        choice.claim = claim;
        try {
          return { source: 'upstream', body: await this.resolver.fetch(ref, desc, offset, signal) };
        } catch (err) {
          await choice.release();
          throw err;
        }
      }
      // A claimant that has not served for this long is past waiting for: fetch it here too.
      if (choice.waits >= maxClaimWaits) return { source: 'upstream', body: await this.resolver.fetch(ref, desc, offset, signal) };
      const address = fleet.addressOf(claim.holder);
      if (address && claim.holder !== fleet.node && !choice.failed.has(claim.holder)) {
        const body = await this.fromPeer(choice, claim.holder, address, offset);
        if (body) return { source: `peer ${claim.holder}`, body };
      }
      // The claimant is fetching but cannot be reached from here: its claim goes with it when it
      // dies (within its lease's TTL); if it is alive, ask it again after a while.
      const backoffMs = Math.min(2000, 250 * 2 ** choice.waits++);
      await waitFor(fleet.claimReleased(desc.digest, signal), backoffMs);
      choice.failed.delete(claim.holder);
    }
  }

  /** The blob from one peer, or undefined (and the peer marked failed) when it cannot serve it. */
  private async fromPeer(choice: SourceChoice, node: string, address: string, offset: number): Promise<Readable | undefined> {
    try {
      return await this.peers!.client.blob(address, choice.ref, choice.desc, offset, choice.signal);
    } catch (err) {
      choice.signal?.throwIfAborted();
      if (errorCode(err) !== 'unavailable' && errorCode(err) !== 'not_found') throw err;
      choice.failed.add(node);
      return undefined;
    }
  }

  /**
   * What `ref`'s tag names, from the first peer whose image records have it: for when the
   * upstream does not answer. Undefined when no peer knows it (or there is no fleet).
   */
  async resolveFromPeers(ref: ImageReference, signal?: AbortSignal): Promise<Descriptor | undefined> {
    const peers = this.peers;
    if (!peers) return undefined;
    for (const node of peers.fleet.nodes()) {
      if (node.name === peers.fleet.node) continue;
      try {
        return await peers.client.resolve(node.address, ref, signal);
      } catch {
        signal?.throwIfAborted();
      }
    }
    return undefined;
  }
}

/** Resolves when `p` does or after `ms`, whichever is first (`p` rejects on the pull's abort). */
function waitFor(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]).finally(() => clearTimeout(timer));
}
