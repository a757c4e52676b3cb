// The pulls service: the pull manager as the API sees it — pulls belong to the namespace that
// started them (another namespace gets not_found), lists take filters, and the manager's events
// are told apart from the final one that ends a pull's stream.
import { BerthError, invalidArgument, notFound } from '../../store/errors.js';
import { objectAdaptor, parseFilters } from '../../store/filters/index.js';
import { checkNamespace, type OpContext } from '../metadata/context.js';
import { followTransfer, type TransferEvent } from './follow.js';
import type { PullManager, PullRequest, PullState, PullView } from '../pull/manager.js';

/** One event of a pull, as the manager emits it: `{type, ...}`. */
export type PullEvent = TransferEvent;

export interface StartOptions extends Omit<PullRequest, 'unpack'> {
  /** Unpack the layers into a snapshotter while they download. */
  unpack?: boolean;
  /** With `unpack`: the snapshotter (default: the server's default). */
  snapshotter?: string;
}

/** The states a follower's stream ends in (`interrupted`: not resumed after a restart). */
const finalStates: ReadonlySet<string> = new Set<PullState>(['done', 'failed', 'cancelled', 'interrupted']);

/**
 * True for the event that ends a pull's stream. A blob's `done` carries its `digest`; the pull's
 * own `done`, `failed`, `cancelled` or `interrupted` (which share those names) does not.
 */
export function isFinalEvent(e: PullEvent): boolean {
  return finalStates.has(e.type) && !('digest' in e);
}

/** The final event of a pull that has ended, as the manager sent it. */
export function finalEvent(view: PullView): PullEvent {
  return {
    type: view.state,
    ...(view.error ? { error: view.error } : {}),
    ...(view.image ? { image: view.image } : {}),
  };
}

export class PullService {
  constructor(
    private readonly manager: PullManager,
    /** The snapshotter pulls unpack into when they name none (none loaded: undefined). */
    private readonly defaultSnapshotter?: string,
  ) {}

  async start(ctx: OpContext, opts: StartOptions): Promise<PullView> {
    checkNamespace(ctx);
    if (opts.platform !== undefined && opts.allPlatforms) {
      throw invalidArgument(`pull ${JSON.stringify(opts.ref)}: give platform or allPlatforms, not both`);
    }
    if (opts.snapshotter !== undefined && !opts.unpack) {
      throw invalidArgument(`pull ${JSON.stringify(opts.ref)}: snapshotter is for unpack: true`);
    }
    const snapshotter = opts.snapshotter ?? this.defaultSnapshotter;
    if (opts.unpack && !snapshotter) {
      throw new BerthError('not_implemented', `pull ${JSON.stringify(opts.ref)}: no snapshotter is loaded to unpack into`);
    }
    return this.manager.start(ctx, {
      ref: opts.ref,
      ...(opts.unpack ? { unpack: { snapshotter: snapshotter! } } : {}),
      ...(opts.platform !== undefined ? { platform: opts.platform } : {}),
      ...(opts.allPlatforms ? { allPlatforms: true } : {}),
    });
  }

  /** The namespace's pulls, oldest first; filter fields `id`, `ref`, `state`, `image`, `lease`. */
  list(ctx: OpContext, filters: string[] = []): PullView[] {
    const filter = parseFilters(filters);
    return this.manager
      .list(checkNamespace(ctx))
      .filter((p) => filter(objectAdaptor({ id: p.id, ref: p.ref, state: p.state, image: p.image, lease: p.lease })))
      .sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime());
  }

  get(ctx: OpContext, id: string): PullView {
    return this.own(ctx, id);
  }

  /** Waits for the pull to end; its final view. */
  async wait(ctx: OpContext, id: string): Promise<PullView> {
    this.own(ctx, id);
    return this.manager.wait(id);
  }

  /** Cancels a running or interrupted pull (an ended one is left as it is); its final view. */
  async cancel(ctx: OpContext, id: string): Promise<PullView> {
    this.own(ctx, id);
    return this.manager.cancel(id);
  }

  /**
   * Listens to a pull: `onView` gets the view as it is now, then `onEvent` every event until the
   * final one — at once for a pull that has ended. Returns the unsubscribe function (the
   * subscription ends by itself after the final event).
   */
  follow(ctx: OpContext, id: string, onView: (view: PullView) => void, onEvent: (e: PullEvent) => void): () => void {
    this.own(ctx, id);
    return followTransfer(this.manager, { isFinal: isFinalEvent, finalEvent }, id, onView, onEvent);
  }

  private own(ctx: OpContext, id: string): PullView {
    const ns = checkNamespace(ctx);
    const view = this.manager.get(id); // not_found naming the id
    if (view.namespace !== ns) throw notFound(`pull ${JSON.stringify(id)}: not found in namespace ${ns}`);
    return view;
  }
}
