// Following a transfer (a pull or a push) as its service offers it: the transfer as it is now,
// then its manager's events — each blob's with the blob's media type — until the final one.
/** One event of a transfer, as its manager emits it: `{type, ...}`. */
export interface TransferEvent {
  type: string;
  [key: string]: unknown;
}

/** What following needs of a transfer's view: its state and its blobs' media types. */
export interface FollowedView {
  state: string;
  blobs: ReadonlyArray<{ digest: string; mediaType: string }>;
}

/** What following needs of a transfer's manager. */
export interface FollowedManager<V extends FollowedView> {
  get(id: string): V;
  subscribe(id: string, fn: (event: { type: string }) => void): () => void;
}

/** How a kind of transfer tells its final event, and the final event of one that has ended. */
export interface TransferEnd<V> {
  isFinal(e: TransferEvent): boolean;
  finalEvent(view: V): TransferEvent;
}

/**
 * Listens to transfer `id`: `onView` gets it as it is now, then `onEvent` every event until the
 * final one — at once for a transfer that has ended. Returns the unsubscribe function (the
 * subscription ends by itself after the final event).
 */
export function followTransfer<V extends FollowedView>(
  manager: FollowedManager<V>,
  end: TransferEnd<V>,
  id: string,
  onView: (view: V) => void,
  onEvent: (e: TransferEvent) => void,
): () => void {
  let ended = false;
  let unsubscribe = () => {};
  const stop = () => {
    ended = true;
    unsubscribe();
  };
  // A blob's events carry its media type as well (the manager's have only the digest): looked
  // up in the transfer's view once per blob.
  const mediaTypes = new Map<string, string>();
  const withMediaType = (e: TransferEvent): TransferEvent => {
    if (typeof e.digest !== 'string' || e.mediaType !== undefined) return e;
    let mediaType = mediaTypes.get(e.digest);
    if (mediaType === undefined) {
      for (const b of manager.get(id).blobs) mediaTypes.set(b.digest, b.mediaType);
      mediaType = mediaTypes.get(e.digest);
    }
    return mediaType === undefined ? e : { ...e, mediaType };
  };
  // Subscribed first, then the view: nothing the manager emits in between can be missed (both
  // happen in this turn of the event loop).
  unsubscribe = manager.subscribe(id, (raw) => {
    if (ended) return;
    const e = withMediaType(raw as TransferEvent);
    onEvent(e);
    if (end.isFinal(e)) stop();
  });
  const view = manager.get(id);
  for (const b of view.blobs) mediaTypes.set(b.digest, b.mediaType);
  onView(view);
  if (!ended && view.state !== 'running') {
    onEvent(end.finalEvent(view));
    stop();
  }
  return stop;
}
