// The event bus inside the server (containerd's events exchange): services publish what changed
// under a topic like `/images/create`; subscribers (the SSE route) receive what matches their
// filters. Delivery is in process and best effort: a slow subscriber never blocks a publisher.
import { EventEmitter } from 'node:events';
import { formatTimestamp } from '../oci/time.js';
import { parseFilters, type Filter } from '../../store/filters/index.js';

export interface BerthEvent {
  timestamp: string;
  namespace: string;
  topic: string;
  event: Record<string, unknown>;
}

export class EventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  publish(namespace: string, topic: string, event: Record<string, unknown>): void {
    const e: BerthEvent = { timestamp: formatTimestamp(new Date()), namespace, topic, event };
    this.emitter.emit('event', e);
  }

  /**
   * Calls `fn` with each event matching any of `filters` (fields `topic`, `namespace`,
   * `event.<field>`); returns the unsubscribe function. Bad filters throw invalid_argument.
   */
  subscribe(filters: string[], fn: (e: BerthEvent) => void): () => void {
    const filter: Filter = parseFilters(filters);
    const listener = (e: BerthEvent) => {
      const match = filter((path) => {
        if (path.length === 1 && (path[0] === 'topic' || path[0] === 'namespace')) {
          return { value: e[path[0]], present: true };
        }
        if (path[0] === 'event' && path.length > 1) {
          const v = e.event[path.slice(1).join('.')];
          return v === undefined ? { value: '', present: false } : { value: String(v), present: true };
        }
        return { value: '', present: false };
      });
      if (match) fn(e);
    };
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }
}
