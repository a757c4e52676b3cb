// A snapshotter served by another process (containerd's proxy plugins): berth's own snapshot API
// spoken over a unix socket to a server that runs the real snapshotter — for instance a second
// berth that serves only its snapshotter. This side is a backend like overlayfs or native: the
// metadata layer above it namespaces the keys as usual.
//
// The remote server namespaces what it keeps too, and collects what nothing holds: everything
// this proxy makes there carries `containerd.io/gc.root`, so only this side's GC decides.
import { BerthError, type ErrorCode } from '../../store/errors.js';
import type { Snapshot, SnapshotList, SnapshotMounts, SnapshotUsage } from '../client/types.js';
import type { Labels } from '../oci/labels.js';
import type { Mount, SnapshotInfo, SnapshotOptions, Snapshotter, Usage } from './types.js';

/** What the proxy needs of an HTTP client of the berth API (src/client's BerthClient has it). */
export interface ApiTransport {
  json<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, opts?: { json?: unknown; query?: Record<string, string[]> }): Promise<T>;
  close(): Promise<void>;
}

const keepLabel = 'containerd.io/gc.root';

export class ProxySnapshotter implements Snapshotter {
  private closed = false;

  constructor(
    private readonly api: ApiTransport,
    /** The snapshotter's name on the remote server. */
    private readonly remote: string,
    /** Where it is (for messages): `unix:///run/x.sock`. */
    private readonly address: string,
  ) {}

  private path(...parts: string[]): string {
    return ['/v1/snapshotters', encodeURIComponent(this.remote), 'snapshots', ...parts.map(encodeURIComponent)].join('/');
  }

  /** Remote errors keep their kind; an unreachable server is `unavailable`. */
  private async call<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, opts?: { json?: unknown; query?: Record<string, string[]> }): Promise<T> {
    try {
      return await this.api.json<T>(method, path, opts);
    } catch (err) {
      const code = (err as { code?: string }).code;
      const known: ErrorCode[] = ['not_found', 'already_exists', 'invalid_argument', 'failed_precondition', 'unavailable', 'not_implemented', 'internal'];
      // No code: the server was not reached (or did not answer in berth's error format).
      const kind = known.includes(code as ErrorCode) ? (code as ErrorCode) : 'unavailable';
      throw new BerthError(kind, `proxy snapshotter at ${this.address}: ${(err as Error).message}`, { cause: err });
    }
  }

  private info(j: Snapshot): SnapshotInfo {
    const { [keepLabel]: _, ...labels } = j.labels;
    return {
      kind: j.kind,
      name: j.name,
      ...(j.parent ? { parent: j.parent } : {}),
      labels,
      createdAt: new Date(j.createdAt),
      updatedAt: new Date(j.updatedAt),
    };
  }

  async stat(key: string): Promise<SnapshotInfo> {
    return this.info(await this.call<Snapshot>('GET', this.path(key)));
  }

  async update(info: { name: string; labels: Labels }, fieldpaths: string[] = []): Promise<SnapshotInfo> {
    const whole = fieldpaths.length === 0 || fieldpaths.includes('labels');
    const body = whole
      ? { labels: { ...info.labels, [keepLabel]: 'proxy' }, fieldpaths: ['labels'] }
      : { labels: info.labels, fieldpaths: fieldpaths.filter((p) => p !== `labels.${keepLabel}`) };
    return this.info(await this.call<Snapshot>('PATCH', this.path(info.name), { json: body }));
  }

  usage(key: string): Promise<Usage> {
    return this.call<SnapshotUsage>('GET', this.path(key, 'usage'));
  }

  async mounts(key: string): Promise<Mount[]> {
    return (await this.call<SnapshotMounts>('GET', this.path(key, 'mounts'))).mounts;
  }

  private async create(how: 'prepare' | 'view', key: string, parent: string, opts: SnapshotOptions = {}): Promise<Mount[]> {
    const json = { key, ...(parent ? { parent } : {}), labels: { ...opts.labels, [keepLabel]: 'proxy' } };
    return (await this.call<SnapshotMounts>('POST', this.path(how), { json })).mounts;
  }

  prepare(key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]> {
    return this.create('prepare', key, parent, opts);
  }

  view(key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]> {
    return this.create('view', key, parent, opts);
  }

  async commit(name: string, key: string, opts: SnapshotOptions = {}): Promise<void> {
    const json = { name, key, labels: { ...opts.labels, [keepLabel]: 'proxy' }, ...(opts.parent ? { parent: opts.parent } : {}) };
    await this.call('POST', this.path('commit'), { json });
  }

  async remove(key: string): Promise<void> {
    await this.call('DELETE', this.path(key));
  }

  async walk(fn: (info: SnapshotInfo) => void | Promise<void>, filters: readonly string[] = []): Promise<void> {
    const { items } = await this.call<SnapshotList>('GET', this.path(), { query: { filter: [...filters] } });
    // Only what this proxy made: the remote namespace may hold others' snapshots, which this
    // side's GC must never see as its own orphans.
    for (const item of items) if (item.labels[keepLabel] === 'proxy') await fn(this.info(item));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.api.close();
  }
}
