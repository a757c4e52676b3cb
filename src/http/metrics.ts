// berth's Prometheus metrics (GET /metrics): prom-client's default process metrics in a private
// registry, and berth's own. They come from what is already there: ended pulls, GC runs from the
// event bus; the store's blobs, ingests and leases, and the registry listener's counters, read at
// scrape time; HTTP requests from a hook, labelled by route pattern (never the raw URL).
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry as PromRegistry } from 'prom-client';
import type { LocalStore } from '../../store/index.js';
import type { EventBus } from '../events/bus.js';
import { contentType } from '../plugins/content.js';
import { eventsType } from '../plugins/events.js';
import { metadataType, type Metadata } from '../plugins/metadata.js';
import type { Pulls } from '../plugins/pull.js';
import type { Registry } from '../plugins/registry-listener.js';
import type { PluginSet } from '../plugins/registry.js';
import { serviceType } from '../plugins/services.js';
import type { PullView } from '../pull/manager.js';

export interface Metrics {
  /** The exposition format's content type. */
  contentType: string;
  /** The metrics now, in the text exposition format. */
  scrape(): Promise<string>;
}

/** A plugin's instance, or undefined when it did not load. */
function optional<T>(plugins: PluginSet, type: string, id?: string): T | undefined {
  try {
    return plugins.get<T>(type, id);
  } catch {
    return undefined;
  }
}

/**
 * Makes the registry and counts every request answered from now on: call it before the routes
 * are registered (a hook applies to the scopes registered after it).
 */
export function registerMetrics(app: FastifyInstance, plugins: PluginSet): Metrics {
  const registry = new PromRegistry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

  const httpRequests = new Counter({
    name: 'berth_http_requests_total',
    help: 'HTTP requests answered by the management API, by route pattern, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers,
  });
  const httpDuration = new Histogram({
    name: 'berth_http_request_duration_seconds',
    help: 'Time to answer a management API request, by route pattern and method',
    labelNames: ['route', 'method'] as const,
    registers,
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    httpRequests.inc({ route, method: req.method, status: String(reply.statusCode) });
    httpDuration.observe({ route, method: req.method }, reply.elapsedTime / 1000);
  });

  const pullsTotal = new Counter({
    name: 'berth_pulls_total',
    help: 'Pulls that ended, by final state (done, failed, cancelled)',
    labelNames: ['state'] as const,
    registers,
  });
  const pullBytes = new Counter({
    name: 'berth_pull_bytes_total',
    help: 'Bytes fetched by ended pulls, by source (upstream registry or fleet peer)',
    labelNames: ['source'] as const,
    registers,
  });
  // Every series from the start, at zero: a rate over a series that appears late misses its first value.
  for (const state of ['done', 'failed', 'cancelled']) pullsTotal.inc({ state }, 0);
  for (const source of ['upstream', 'peer']) pullBytes.inc({ source }, 0);
  const gcRuns = new Counter({ name: 'berth_gc_runs_total', help: 'Garbage collections run (not dry runs)', registers });
  const gcFreed = new Counter({ name: 'berth_gc_bytes_freed_total', help: 'Bytes the garbage collector freed', registers });
  const gcDuration = new Histogram({
    name: 'berth_gc_duration_seconds',
    help: 'Duration of garbage collections',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60],
    registers,
  });

  const pulls = plugins.getAll<Pulls>(serviceType).get('pulls');
  const bus = optional<EventBus>(plugins, eventsType);
  const unsubscribe = bus?.subscribe([], (e) => {
    if (e.topic === '/pulls/done' || e.topic === '/pulls/failed') {
      // Published as the pull ends, before it can be pruned: its view has the state and bytes.
      let view: PullView | undefined;
      try {
        view = pulls?.manager.get(String(e.event.id));
      } catch {
        view = undefined;
      }
      pullsTotal.inc({ state: view?.state ?? (e.topic === '/pulls/done' ? 'done' : 'failed') });
      if (view) {
        pullBytes.inc({ source: 'upstream' }, view.bytesFromUpstream);
        pullBytes.inc({ source: 'peer' }, view.bytesFromPeers);
      }
    } else if (e.topic === '/gc/run') {
      gcRuns.inc();
      gcFreed.inc(Number(e.event.bytesFreed) || 0);
      gcDuration.observe((Number(e.event.durationMs) || 0) / 1000);
    }
  });
  if (unsubscribe) app.addHook('onClose', async () => unsubscribe());

  const contentBytes = new Gauge({ name: 'berth_content_bytes', help: 'Bytes of the committed blobs in the content store', registers });
  const contentBlobs = new Gauge({ name: 'berth_content_blobs', help: 'Committed blobs in the content store', registers });
  const ingests = new Gauge({ name: 'berth_ingests_in_progress', help: 'Ingests (uploads and downloads) not committed yet', registers });
  const leases = new Gauge({ name: 'berth_leases', help: 'Leases, in every namespace', registers });
  const store = optional<LocalStore>(plugins, contentType);
  const metadata = optional<Metadata>(plugins, metadataType);

  const listener = plugins.getAll<Registry>(serviceType).get('registry');
  if (listener) {
    new Counter({
      name: 'berth_registry_served_total',
      help: 'Manifests and blobs the registry listener served, by how (hit, pull-through, follower)',
      labelNames: ['from'] as const,
      registers,
      collect() {
        const s = listener.stats();
        this.reset();
        this.inc({ from: 'hit' }, s.hits);
        this.inc({ from: 'pull-through' }, s.pullThroughs);
        this.inc({ from: 'follower' }, s.followers);
      },
    });
    new Counter({
      name: 'berth_registry_bytes_served_total',
      help: 'Bytes the registry listener served',
      registers,
      collect() {
        this.reset();
        this.inc(listener.stats().bytesServed);
      },
    });
  }

  return {
    contentType: registry.contentType,
    async scrape() {
      if (store) {
        let bytes = 0;
        let blobs = 0;
        await store.walk((info) => {
          bytes += info.size;
          blobs++;
        });
        contentBytes.set(bytes);
        contentBlobs.set(blobs);
        ingests.set((await store.listStatuses()).length);
      }
      if (metadata) leases.set(metadata.db.cached(metadata.db.leases).size);
      return registry.metrics();
    },
  };
}
