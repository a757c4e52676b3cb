// The API's wire types by name: openapi.yaml's schemas as `npm run generate` turns them into
// TypeScript (openapi.d.ts, not kept in git). The CLI, the proxy snapshotter and the routes'
// views take their types from here (the routes' generics come from the same file, through
// routes/route-types.ts), so a schema changed in openapi.yaml without the code that reads or
// writes it fails to compile. Each is named as its schema is, except Error and Event, which
// would shadow the globals.
import type { components } from './openapi.js';

type Schemas = components['schemas'];

export type ErrorBody = Schemas['Error'];
export type PluginList = Schemas['PluginList'];
export type Info = Schemas['Info'];
export type InfoList = Schemas['InfoList'];
export type LabelsUpdate = Schemas['LabelsUpdate'];
export type CommitRequest = Schemas['CommitRequest'];
export type Status = Schemas['Status'];
export type StatusList = Schemas['StatusList'];
export type VerifyReport = Schemas['VerifyReport'];
export type Namespace = Schemas['Namespace'];
export type NamespaceList = Schemas['NamespaceList'];
export type NamespaceCreate = Schemas['NamespaceCreate'];
export type Descriptor = Schemas['Descriptor'];
export type Image = Schemas['Image'];
export type ImageList = Schemas['ImageList'];
export type ImageCreate = Schemas['ImageCreate'];
export type ImageUpdate = Schemas['ImageUpdate'];
export type ImageUnpackRequest = Schemas['ImageUnpackRequest'];
export type ImageInspection = Schemas['ImageInspection'];
export type UnpackResult = Schemas['UnpackResult'];
export type Lease = Schemas['Lease'];
export type LeaseList = Schemas['LeaseList'];
export type LeaseCreate = Schemas['LeaseCreate'];
export type Resource = Schemas['Resource'];
export type ResourceList = Schemas['ResourceList'];
export type GcResult = Schemas['GcResult'];
export type GcExplanation = Schemas['GcExplanation'];
export type RegistryStats = Schemas['RegistryStats'];
export type FleetNode = Schemas['FleetNode'];
export type FleetNodeList = Schemas['FleetNodeList'];
export type FleetHolder = Schemas['FleetHolder'];
export type FleetBlob = Schemas['FleetBlob'];
/** One step of a chain from a GC root to a blob. */
export type GcPathStep = NonNullable<GcExplanation['namespaces'][number]['path']>[number];
export type Pull = Schemas['Pull'];
export type PullList = Schemas['PullList'];
export type PullRequest = Schemas['PullRequest'];
export type SnapshotterList = Schemas['SnapshotterList'];
export type Snapshot = Schemas['Snapshot'];
export type SnapshotList = Schemas['SnapshotList'];
export type SnapshotCreate = Schemas['SnapshotCreate'];
export type SnapshotCommit = Schemas['SnapshotCommit'];
export type SnapshotUpdate = Schemas['SnapshotUpdate'];
export type Mount = Schemas['Mount'];
export type SnapshotMounts = Schemas['SnapshotMounts'];
export type SnapshotUsage = Schemas['SnapshotUsage'];
export type Container = Schemas['Container'];
export type ContainerList = Schemas['ContainerList'];
export type ContainerCreate = Schemas['ContainerCreate'];
export type Task = Schemas['Task'];
export type TaskList = Schemas['TaskList'];
export type TaskKill = Schemas['TaskKill'];
export type ExitStatus = Schemas['ExitStatus'];
export type ServerEvent = Schemas['Event'];

export type PullEvent = Schemas['PullEvent'];
