// The snapshotter interface (containerd core/snapshots): snapshots are folders of a file system,
// in parent chains. An active snapshot is writable, a view is read-only, a committed snapshot is
// a frozen layer other snapshots may take as parent. Keys and committed names share one space.
import type { Labels } from '../oci/labels.js';

export type Kind = 'view' | 'active' | 'committed';

export interface SnapshotInfo {
  kind: Kind;
  /** The key (active, view) or name (committed). */
  name: string;
  /** The committed snapshot this one sits on; absent for a base. */
  parent?: string;
  labels: Labels;
  createdAt: Date;
  updatedAt: Date;
}

export interface Usage {
  /** Inodes used by this snapshot's own layer. */
  inodes: number;
  /** Bytes used by this snapshot's own layer. */
  size: number;
}

/** One mount as `mount(8)` takes it: `mount -t <type> -o <options> <source> <target>`. */
export interface Mount {
  type: string;
  source: string;
  options: string[];
}

export interface SnapshotOptions {
  /** Labels of the new snapshot (Prepare/View) or of the committed one (Commit). */
  labels?: Labels;
  /** Commit only: the parent of an active snapshot that had none (containerd's rebase). */
  parent?: string;
  /**
   * Commit only: the active snapshot's usage as its writer counted it (an unpack into an empty
   * folder); taken as it is instead of measuring the folder again. Never from the API.
   */
  usage?: Usage;
}

export interface Snapshotter {
  /**
   * What it can do beyond the interface: `rebase` — an active snapshot made without a parent
   * may get one at commit (overlayfs: layers can be extracted side by side).
   */
  readonly capabilities?: readonly string[];
  /** Info of any snapshot by key or name: not_found when there is none. */
  stat(key: string): Promise<SnapshotInfo>;
  /**
   * Only labels change: no field paths (or `labels`) replace them, `labels.<k>` sets or removes
   * one; any other path is invalid_argument. `updatedAt` = now; kind, parent, createdAt stay.
   */
  update(info: { name: string; labels: Labels }, fieldpaths?: string[]): Promise<SnapshotInfo>;
  /** Active: measured now; committed: as measured at commit; view: zero. */
  usage(key: string): Promise<Usage>;
  /** The mounts of an active snapshot or view; a committed one is failed_precondition. */
  mounts(key: string): Promise<Mount[]>;
  prepare(key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]>;
  view(key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]>;
  /** Active `key` → committed `name`; the committed snapshot's labels are only `opts.labels`. */
  commit(name: string, key: string, opts?: SnapshotOptions): Promise<void>;
  /** Any kind; a snapshot with children is failed_precondition. */
  remove(key: string): Promise<void>;
  /** Every snapshot matching the filters (containerd's filter language: kind, name, parent, labels.*). */
  walk(fn: (info: SnapshotInfo) => void | Promise<void>, filters?: readonly string[]): Promise<void>;
  /** Removes folders no snapshot owns any more (left by removals and crashes). */
  cleanup?(): Promise<void>;
  /** Idempotent. */
  close(): Promise<void>;
}

/** Labels a backend snapshotter receives from the metadata layer (containerd's FilterInheritedLabels). */
export function inheritedLabels(labels: Labels | undefined): Labels | undefined {
  if (!labels) return undefined;
  return Object.fromEntries(
    Object.entries(labels).filter(([k]) => k === 'containerd.io/snapshot.ref' || k.startsWith('containerd.io/snapshot/')),
  );
}
