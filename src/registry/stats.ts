// What the registry listener has served since it started: requests, bytes out, bytes fetched
// upstream and from peers, and how each blob or manifest was served — from the store (hit), by
// starting an upstream fetch (pull-through), or by following another client's fetch (follower);
// what other nodes of the fleet asked for is counted apart as well (peer requests).

export type ServedFrom = 'hit' | 'pull-through' | 'follower';

export interface RegistryStats {
  address: string;
  namespace: string;
  requests: number;
  hits: number;
  pullThroughs: number;
  followers: number;
  peerRequests: number;
  bytesServed: number;
  bytesServedToPeers: number;
  bytesFetchedUpstream: number;
  bytesFetchedFromPeers: number;
  /** hits / (hits + pullThroughs + followers); 0 before any was served. */
  hitRatio: number;
  startedAt: string;
}

export class RegistryCounters {
  requests = 0;
  bytesServed = 0;
  bytesFetchedUpstream = 0;
  bytesFetchedFromPeers = 0;
  peerRequests = 0;
  bytesServedToPeers = 0;
  private readonly served: Record<ServedFrom, number> = { hit: 0, 'pull-through': 0, follower: 0 };
  private readonly startedAt = new Date();

  count(from: ServedFrom): void {
    this.served[from]++;
  }

  snapshot(address: string, namespace: string): RegistryStats {
    const { hit, 'pull-through': pullThroughs, follower } = this.served;
    const all = hit + pullThroughs + follower;
    return {
      address,
      namespace,
      requests: this.requests,
      hits: hit,
      pullThroughs,
      followers: follower,
      peerRequests: this.peerRequests,
      bytesServed: this.bytesServed,
      bytesServedToPeers: this.bytesServedToPeers,
      bytesFetchedUpstream: this.bytesFetchedUpstream,
      bytesFetchedFromPeers: this.bytesFetchedFromPeers,
      hitRatio: all === 0 ? 0 : hit / all,
      startedAt: this.startedAt.toISOString(),
    };
  }
}
