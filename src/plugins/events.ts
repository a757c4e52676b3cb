// Plugin io.berth.events.v1 "exchange": the server's event bus.
import { EventBus } from '../events/bus.js';
import type { Registration } from './registry.js';

export const eventsType = 'io.berth.events.v1';

export const eventsPlugin: Registration<EventBus> = {
  type: eventsType,
  id: 'exchange',
  init: async () => new EventBus(),
};
