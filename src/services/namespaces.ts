// The namespaces service: the namespace store plus events.
import type { EventBus } from '../events/bus.js';
import type { Namespace, NamespaceStore } from '../metadata/namespaces.js';
import type { Labels } from '../oci/labels.js';

export class NamespaceService {
  constructor(
    private readonly namespaces: NamespaceStore,
    private readonly events: EventBus,
  ) {}

  list(filters: string[]): Promise<Namespace[]> {
    return this.namespaces.list(filters);
  }

  get(name: string): Promise<Namespace> {
    return this.namespaces.get(name);
  }

  async create(name: string, labels?: Labels): Promise<Namespace> {
    const ns = await this.namespaces.create(name, labels);
    this.events.publish(name, '/namespaces/create', { name, labels: ns.labels });
    return ns;
  }

  async update(name: string, labels: Labels, fieldpaths: string[]): Promise<Namespace> {
    const ns = await this.namespaces.update(name, labels, fieldpaths);
    this.events.publish(name, '/namespaces/update', { name, labels: ns.labels });
    return ns;
  }

  async delete(name: string): Promise<void> {
    await this.namespaces.delete(name);
    this.events.publish(name, '/namespaces/delete', { name });
  }
}
