// What a pull needs from the fleet (issue 12): which other nodes hold a blob, and a fleet-wide
// claim on fetching a blob from the upstream, so that one node fetches it and the others stream
// it from that node. Types only: the pull (rank 5) depends on this interface, and src/fleet
// (rank 6, over etcd) implements it — the pull never imports etcd or the fleet's room.

/** One node's advertisement of a blob: complete, or still arriving (`offset` bytes so far). */
export interface BlobHolder {
  /** The node's name, unique in the fleet. */
  node: string;
  /** Where its registry listener is reached, `host:port`. */
  address: string;
  /** The blob is committed there (verified); false while it is still being fetched. */
  complete: boolean;
  /** Bytes it has so far (= size once complete). */
  offset: number;
  /** The blob's size. */
  size: number;
}

/**
 * The answer to `claim(digest)`. `mine`: this node fetches the blob from the upstream and calls
 * `release()` when done (or when it gives up). Otherwise `holder` is fetching it: stream it from
 * that node, and wait with `claimReleased` if that node goes away.
 */
export type Claim = { mine: true; release(): Promise<void> } | { mine: false; holder: string };

export interface Fleet {
  /** This node's name. */
  readonly node: string;
  /**
   * The nodes that advertise `digest` (this node included), complete ones first, then by how far
   * they have got. Read from memory (the fleet's watch): no round trip. Empty while the node
   * works alone (etcd unreachable).
   */
  holders(digest: string): BlobHolder[];
  /** The nodes in the fleet (this one included), by name, with their registry addresses. */
  nodes(): Array<{ name: string; address: string }>;
  /** The registry address of node `name`, if it is in the fleet. */
  addressOf(name: string): string | undefined;
  /**
   * Takes the fleet-wide claim on fetching `digest` from the upstream, if no node holds it. It
   * never fails for want of etcd: a node working alone gets `mine: true` (nobody to share with).
   */
  claim(digest: string): Promise<Claim>;
  /**
   * Resolves when no node holds the claim on `digest` any more (released, or its node's lease
   * expired), or when this node starts working alone; rejects with the signal's reason on abort.
   */
  claimReleased(digest: string, signal?: AbortSignal): Promise<void>;
  /**
   * Says this node holds `digest` (`offset` of `size` bytes so far; `complete` once committed).
   * Progress is written at a bounded rate; the complete state at once. Never fails: while etcd
   * is unreachable it is written on re-join. A fetch that stops short (failed, cancelled) must
   * `withdraw`: a partial advertisement is kept, and written again at every re-join, until then.
   */
  advertise(digest: string, size: number, offset: number, complete: boolean): void;
  /** Takes back this node's advertisement of `digest` (before the blob is removed). */
  withdraw(digest: string): Promise<void>;
}
