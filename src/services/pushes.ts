// The pushes service: the push manager as the API sees it — pushes belong to the namespace that
// started them (another namespace gets not_found), lists take filters, and a follower gets the
// push as it is now, then its events until the final one.
import { notFound } from '../../store/errors.js';
import { objectAdaptor, parseFilters } from '../../store/filters/index.js';
import { checkNamespace, type OpContext } from '../metadata/context.js';
import { followTransfer, type TransferEvent } from './follow.js';
import type { PushManager, PushRequest, PushView } from '../push/manager.js';

/** One event of a push, as the manager emits it: `{type, ...}`. */
export type PushEvent = TransferEvent;

const finalStates: ReadonlySet<string> = new Set(['done', 'failed', 'cancelled']);

/** True for the event that ends a push's stream (a blob's events carry a `digest`; the push's own do not). */
export function isFinalPushEvent(e: PushEvent): boolean {
  return finalStates.has(e.type) && !('digest' in e);
}

/** The final event of a push that has ended, as the manager sent it. */
function finalPushEvent(view: PushView): PushEvent {
  return { type: view.state, ...(view.error ? { error: view.error } : {}), image: view.image, ...(view.digest ? { target: view.digest } : {}) };
}

export class PushService {
  constructor(private readonly manager: PushManager) {}

  start(ctx: OpContext, request: PushRequest): Promise<PushView> {
    checkNamespace(ctx);
    return this.manager.start(ctx, request);
  }

  /** The namespace's pushes, oldest first; filter fields `id`, `ref`, `image`, `state`. */
  list(ctx: OpContext, filters: string[] = []): PushView[] {
    const filter = parseFilters(filters);
    return this.manager
      .list(checkNamespace(ctx))
      .filter((p) => filter(objectAdaptor({ id: p.id, ref: p.ref, image: p.image, state: p.state })))
      .sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime());
  }

  get(ctx: OpContext, id: string): PushView {
    return this.own(ctx, id);
  }

  async wait(ctx: OpContext, id: string): Promise<PushView> {
    this.own(ctx, id);
    return this.manager.wait(id);
  }

  async cancel(ctx: OpContext, id: string): Promise<PushView> {
    this.own(ctx, id);
    return this.manager.cancel(id);
  }

  /**
   * Listens to a push: `onView` gets it as it is now, then `onEvent` every event until the final
   * one (at once for a push that has ended). Returns the unsubscribe function.
   */
  follow(ctx: OpContext, id: string, onView: (view: PushView) => void, onEvent: (e: PushEvent) => void): () => void {
    this.own(ctx, id);
    return followTransfer(this.manager, { isFinal: isFinalPushEvent, finalEvent: finalPushEvent }, id, onView, onEvent);
  }

  private own(ctx: OpContext, id: string): PushView {
    const ns = checkNamespace(ctx);
    const view = this.manager.get(id);
    if (view.namespace !== ns) throw notFound(`push ${JSON.stringify(id)}: not found in namespace ${ns}`);
    return view;
  }
}
