// The leases service: the lease manager plus events and synchronous deletes.
import type { EventBus } from '../events/bus.js';
import type { GcResult } from '../gc/collector.js';
import type { GcScheduler } from '../gc/scheduler.js';
import type { OpContext } from '../metadata/context.js';
import type { Lease, LeaseCreate, LeaseManager, Resource } from '../metadata/leases.js';

export class LeaseService {
  constructor(
    private readonly leases: LeaseManager,
    private readonly events: EventBus,
    private readonly gc: GcScheduler,
  ) {}

  list(ctx: OpContext, filters: string[]): Promise<Lease[]> {
    return this.leases.list(ctx, filters);
  }

  get(ctx: OpContext, id: string): Promise<Lease> {
    return this.leases.get(ctx, id);
  }

  async create(ctx: OpContext, opts: LeaseCreate): Promise<Lease> {
    const lease = await this.leases.create(ctx, opts);
    this.events.publish(ctx.namespace, '/leases/create', { id: lease.id, labels: lease.labels });
    return lease;
  }

  /** With `sync`, returns only after a GC has removed what only the lease kept. */
  async delete(ctx: OpContext, id: string, opts: { sync?: boolean } = {}): Promise<GcResult | undefined> {
    await this.leases.delete(ctx, id);
    this.events.publish(ctx.namespace, '/leases/delete', { id });
    return opts.sync ? this.gc.scheduleAndWait() : undefined;
  }

  listResources(ctx: OpContext, id: string): Promise<Resource[]> {
    return this.leases.listResources(ctx, id);
  }

  addResource(ctx: OpContext, id: string, r: Resource): Promise<void> {
    return this.leases.addResource(ctx, id, r);
  }

  deleteResource(ctx: OpContext, id: string, r: Resource): Promise<void> {
    return this.leases.deleteResource(ctx, id, r);
  }
}
