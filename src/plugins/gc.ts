// Plugin io.berth.gc.v1 "scheduler": the garbage collector and when it runs.
import type { EventBus } from '../events/bus.js';
import { GarbageCollector } from '../gc/collector.js';
import { GcScheduler } from '../gc/scheduler.js';
import { contentType } from './content.js';
import { eventsType } from './events.js';
import { metadataType, type Metadata } from './metadata.js';
import { defaultsOf } from '../settings.js';
import { numberOption } from './options.js';
import type { Registration } from './registry.js';
import type { LocalStore } from '../../store/index.js';

export const gcType = 'io.berth.gc.v1';

export interface Gc {
  collector: GarbageCollector;
  scheduler: GcScheduler;
}

export const gcPlugin: Registration<Gc> = {
  type: gcType,
  id: 'scheduler',
  requires: [metadataType, contentType, eventsType],
  async init(ctx) {
    const { db, snapshots } = ctx.get<Metadata>(metadataType);
    const collector = new GarbageCollector(db, ctx.get<LocalStore>(contentType), {
      snapshots,
      events: ctx.get<EventBus>(eventsType),
      logger: ctx.logger,
    });
    const c = ctx.config;
    const d = defaultsOf(`${gcType}.scheduler`) as Record<string, number>;
    const scheduler = new GcScheduler(
      collector,
      db,
      {
        pauseThreshold: numberOption(c, 'pause_threshold') ?? d.pause_threshold,
        deletionThreshold: numberOption(c, 'deletion_threshold') ?? d.deletion_threshold,
        mutationThreshold: numberOption(c, 'mutation_threshold') ?? d.mutation_threshold,
        scheduleDelayMs: numberOption(c, 'schedule_delay_ms') ?? d.schedule_delay_ms,
        startupDelayMs: numberOption(c, 'startup_delay_ms') ?? d.startup_delay_ms,
      },
      ctx.logger,
    );
    scheduler.start();
    return { collector, scheduler };
  },
  close: (gc) => gc.scheduler.stop(),
};
