// Plugin io.berth.runtime.v1 "runc": containers (metadata records made from images) and their
// tasks, run by runc (`binary`, default `runc` on PATH; skipped with the reason when there is
// none). Bundles and runc's state live in the plugin's state folder (they do not outlive a
// reboot; the containers do).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import type { EventBus } from '../events/bus.js';
import { ContainerStore } from '../metadata/containers.js';
import { ContainerService } from '../services/containers.js';
import type { ImageService } from '../services/images.js';
import type { SnapshotService } from '../services/snapshots.js';
import { TaskService } from '../services/tasks.js';
import { eventsType } from './events.js';
import { metadataType, type Metadata } from './metadata.js';
import type { Pulls } from './pull.js';
import { defaultsOf } from '../settings.js';
import { SkipPlugin, type Registration } from './registry.js';
import { serviceType } from './services.js';

export const runtimeType = 'io.berth.runtime.v1';

export interface Runtime {
  containers: ContainerService;
  tasks: TaskService;
}

export const runtimePlugin: Registration<Runtime> = {
  type: runtimeType,
  id: 'runc',
  requires: [metadataType, eventsType, serviceType],
  async init(ctx) {
    const binary = ctx.config.binary ?? defaultsOf(`${runtimeType}.runc`).binary;
    if (typeof binary !== 'string') throw new Error('binary must be the path or name of runc');
    let version: string;
    try {
      version = (await promisify(execFile)(binary, ['--version'])).stdout.split('\n')[0];
    } catch (err) {
      throw new SkipPlugin(`runc (${binary}) cannot be run: ${(err as Error).message.split('\n')[0]} (Debian: apt-get install runc)`);
    }
    const metadata = ctx.get<Metadata>(metadataType);
    const events = ctx.get<EventBus>(eventsType);
    const images = ctx.get<ImageService>(serviceType, 'images');
    const snapshots = ctx.get<SnapshotService>(serviceType, 'snapshots');
    const pulls = ctx.get<Pulls>(serviceType, 'pulls');
    const unpack = pulls.unpack;
    if (!unpack) throw new Error('no unpacker (no snapshotter loaded): containers need unpacked images');
    const store = new ContainerStore(metadata.db);
    const tasks = new TaskService(store, snapshots, events, {
      stateDir: join(ctx.state, 'tasks'),
      runcRoot: join(ctx.state, 'runc'),
      runcBinary: binary,
      logger: ctx.logger,
    });
    await tasks.recover();
    const containers = new ContainerService(store, images, unpack, snapshots, metadata.leases, events, (c, id) => tasks.has(c, id));
    ctx.exports.runc = version;
    ctx.exports.state = ctx.state;
    return { containers, tasks };
  },
};
