// What the API shows of each object: camelCase JSON with RFC 3339 nanosecond times.
import { formatTimestamp } from '../src/oci/time.js';
import type { Info, Status } from '../store/types.js';
import type { GarbageCollector, GcResult } from '../src/gc/collector.js';
import type { Descriptor } from '../src/oci/descriptor.js';
import type { Image } from '../src/metadata/images.js';
import type { Lease, Resource } from '../src/metadata/leases.js';
import type { Namespace } from '../src/metadata/namespaces.js';
import type { PullView } from '../src/pull/manager.js';
import type { SnapshotInfo } from '../src/snapshots/types.js';
import type { Container } from '../src/metadata/containers.js';
import type { ExitStatus } from '../src/runtime/task.js';
import type { TaskView } from '../src/services/tasks.js';

export function infoView(info: Info) {
  return {
    digest: info.digest,
    size: info.size,
    createdAt: formatTimestamp(info.createdAt),
    updatedAt: formatTimestamp(info.updatedAt),
    labels: info.labels,
  };
}

export function statusView(status: Status) {
  return {
    ref: status.ref,
    offset: status.offset,
    total: status.total,
    ...(status.expected ? { expected: status.expected } : {}),
    startedAt: formatTimestamp(status.startedAt),
    updatedAt: formatTimestamp(status.updatedAt),
  };
}

export function namespaceView(ns: Namespace) {
  return { name: ns.name, labels: ns.labels, createdAt: formatTimestamp(ns.createdAt) };
}

export function descriptorView(d: Descriptor) {
  return {
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
    ...(d.annotations && Object.keys(d.annotations).length > 0 ? { annotations: d.annotations } : {}),
  };
}

export function imageView(image: Image) {
  return {
    name: image.name,
    target: descriptorView(image.target),
    labels: image.labels,
    createdAt: formatTimestamp(image.createdAt),
    updatedAt: formatTimestamp(image.updatedAt),
  };
}

export function leaseView(lease: Lease) {
  return { id: lease.id, createdAt: formatTimestamp(lease.createdAt), labels: lease.labels };
}

export function resourceView(r: Resource) {
  return { id: r.id, type: r.type };
}

export function gcResultView(r: GcResult) {
  return {
    removed: { ...r.removed },
    backend: { ...r.backend },
    bytesFreed: r.bytesFreed,
    ...(r.nextExpiry ? { nextExpiry: formatTimestamp(r.nextExpiry) } : {}),
    markMs: r.markMs,
    sweepMs: r.sweepMs,
    durationMs: r.durationMs,
  };
}

type Explanation = Awaited<ReturnType<GarbageCollector['explain']>>;

export function gcExplanationView(e: Explanation) {
  return {
    digest: e.digest,
    collectable: e.collectable,
    namespaces: e.namespaces.map((n) => ({
      namespace: n.namespace,
      kept: n.kept,
      ...(n.path ? { path: n.path.map((p) => ({ type: p.type, flat: p.flat, key: p.key, via: p.via })) } : {}),
    })),
  };
}

export function pullView(p: PullView) {
  return {
    id: p.id,
    ref: p.ref,
    namespace: p.namespace,
    state: p.state,
    ...(p.error ? { error: { code: p.error.code, message: p.error.message } } : {}),
    ...(p.image ? { image: p.image } : {}),
    lease: p.lease,
    bytesFetched: p.bytesFetched,
    startedAt: formatTimestamp(p.startedAt),
    ...(p.finishedAt ? { finishedAt: formatTimestamp(p.finishedAt) } : {}),
    blobs: p.blobs.map((b) => ({ digest: b.digest, mediaType: b.mediaType, size: b.size, offset: b.offset, state: b.state })),
    unpacks: p.unpacks.map((u) => ({ snapshotter: u.snapshotter, chainId: u.chainId, unpacked: u.unpacked, existing: u.existing })),
  };
}

export function snapshotView(info: SnapshotInfo) {
  return {
    kind: info.kind,
    name: info.name,
    ...(info.parent ? { parent: info.parent } : {}),
    labels: info.labels,
    createdAt: formatTimestamp(info.createdAt),
    updatedAt: formatTimestamp(info.updatedAt),
  };
}

export function containerView(c: Container) {
  return {
    id: c.id,
    image: c.image,
    runtime: c.runtime,
    ...(c.snapshotter ? { snapshotter: c.snapshotter } : {}),
    ...(c.snapshotKey ? { snapshotKey: c.snapshotKey } : {}),
    spec: c.spec,
    labels: c.labels,
    createdAt: formatTimestamp(c.createdAt),
    updatedAt: formatTimestamp(c.updatedAt),
  };
}

export function taskView(t: TaskView) {
  return {
    id: t.id,
    status: t.status,
    pid: t.pid,
    ...(t.exitCode !== undefined ? { exitCode: t.exitCode } : {}),
    ...(t.startedAt ? { startedAt: formatTimestamp(t.startedAt) } : {}),
    ...(t.exitedAt ? { exitedAt: formatTimestamp(t.exitedAt) } : {}),
  };
}

export function exitView(e: ExitStatus) {
  return { exitCode: e.exitCode, exitedAt: formatTimestamp(e.exitedAt) };
}
