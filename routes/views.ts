// What the API shows of each object: camelCase JSON with RFC 3339 nanosecond times. Each view
// answers the wire type generated from its schema in openapi.yaml, so the two cannot drift apart.
import type * as wire from '../src/client/types.js';
import { formatTimestamp } from '../src/oci/time.js';
import type { Info, Status } from '../store/types.js';
import type { GarbageCollector, GcResult } from '../src/gc/collector.js';
import type { Descriptor } from '../src/oci/descriptor.js';
import type { Image } from '../src/metadata/images.js';
import type { Lease, Resource } from '../src/metadata/leases.js';
import type { Namespace } from '../src/metadata/namespaces.js';
import type { PullView } from '../src/pull/manager.js';
import type { RegistryStats } from '../src/registry/stats.js';
import type { SnapshotInfo } from '../src/snapshots/types.js';
import type { Container } from '../src/metadata/containers.js';
import type { FleetNode } from '../src/fleet/fleet.js';
import type { BlobHolder } from '../src/pull/peers.js';
import type { ExitStatus } from '../src/runtime/task.js';
import type { ImageInspection } from '../src/services/inspect.js';
import type { TaskView } from '../src/services/tasks.js';
import type { UnpackResult } from '../src/unpack/unpacker.js';

export function infoView(info: Info): wire.Info {
  return {
    digest: info.digest,
    size: info.size,
    createdAt: formatTimestamp(info.createdAt),
    updatedAt: formatTimestamp(info.updatedAt),
    labels: info.labels,
  };
}

export function statusView(status: Status): wire.Status {
  return {
    ref: status.ref,
    offset: status.offset,
    total: status.total,
    ...(status.expected ? { expected: status.expected } : {}),
    startedAt: formatTimestamp(status.startedAt),
    updatedAt: formatTimestamp(status.updatedAt),
  };
}

export function namespaceView(ns: Namespace): wire.Namespace {
  return { name: ns.name, labels: ns.labels, createdAt: formatTimestamp(ns.createdAt) };
}

export function descriptorView(d: Descriptor): wire.Descriptor {
  return {
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
    ...(d.annotations && Object.keys(d.annotations).length > 0 ? { annotations: d.annotations } : {}),
  };
}

export function imageView(image: Image): wire.Image {
  return {
    name: image.name,
    target: descriptorView(image.target),
    labels: image.labels,
    createdAt: formatTimestamp(image.createdAt),
    updatedAt: formatTimestamp(image.updatedAt),
  };
}

export function inspectionView(i: ImageInspection): wire.ImageInspection {
  // The config's history as stored: its entries are objects in any image that follows the image
  // spec; one that is not (a malformed config) has no place in the answer.
  const history = i.history.filter((h): h is Record<string, unknown> => typeof h === 'object' && h !== null && !Array.isArray(h));
  return { ...i, history };
}

export function leaseView(lease: Lease): wire.Lease {
  return { id: lease.id, createdAt: formatTimestamp(lease.createdAt), labels: lease.labels };
}

export function resourceView(r: Resource): wire.Resource {
  return { id: r.id, type: r.type };
}

export function fleetNodeView(n: FleetNode): wire.FleetNode {
  return { name: n.name, address: n.address, startedAt: n.startedAt, self: n.self };
}

export function fleetBlobView(digest: string, holders: BlobHolder[], claim: string | undefined): wire.FleetBlob {
  return {
    digest,
    holders: holders.map((h) => ({ node: h.node, address: h.address, size: h.size, offset: h.offset, complete: h.complete })),
    ...(claim !== undefined ? { claim } : {}),
  };
}

export function registryStatsView(s: RegistryStats): wire.RegistryStats {
  return { ...s };
}

export function gcResultView(r: GcResult): wire.GcResult {
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

export function gcExplanationView(e: Explanation): wire.GcExplanation {
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

export function pullView(p: PullView): wire.Pull {
  return {
    id: p.id,
    ref: p.ref,
    namespace: p.namespace,
    state: p.state,
    ...(p.error ? { error: { code: p.error.code, message: p.error.message } } : {}),
    ...(p.image ? { image: p.image } : {}),
    lease: p.lease,
    bytesFetched: p.bytesFetched,
    bytesFromUpstream: p.bytesFromUpstream,
    bytesFromPeers: p.bytesFromPeers,
    startedAt: formatTimestamp(p.startedAt),
    ...(p.finishedAt ? { finishedAt: formatTimestamp(p.finishedAt) } : {}),
    ...(p.resumedAt ? { resumedAt: formatTimestamp(p.resumedAt) } : {}),
    blobs: p.blobs.map((b) => ({ digest: b.digest, mediaType: b.mediaType, size: b.size, offset: b.offset, state: b.state, sources: b.sources })),
    unpacks: p.unpacks.map(unpackResultView),
  };
}

export function unpackResultView(u: UnpackResult): wire.UnpackResult {
  return { snapshotter: u.snapshotter, chainId: u.chainId, unpacked: u.unpacked, existing: u.existing };
}

export function snapshotView(info: SnapshotInfo): wire.Snapshot {
  return {
    kind: info.kind,
    name: info.name,
    ...(info.parent ? { parent: info.parent } : {}),
    labels: info.labels,
    createdAt: formatTimestamp(info.createdAt),
    updatedAt: formatTimestamp(info.updatedAt),
  };
}

export function containerView(c: Container): wire.Container {
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

export function taskView(t: TaskView): wire.Task {
  return {
    id: t.id,
    status: t.status,
    pid: t.pid,
    ...(t.exitCode !== undefined ? { exitCode: t.exitCode } : {}),
    ...(t.startedAt ? { startedAt: formatTimestamp(t.startedAt) } : {}),
    ...(t.exitedAt ? { exitedAt: formatTimestamp(t.exitedAt) } : {}),
  };
}

export function exitView(e: ExitStatus): wire.ExitStatus {
  return { exitCode: e.exitCode, exitedAt: formatTimestamp(e.exitedAt) };
}
