// The OCI bundle of a task (containerd core/runtime/v2/bundle.go): `<stateDir>/<ns>/<id>` holding
// `config.json` (the spec) and `rootfs` (where the container's root file system is mounted),
// plus what runc and the shim add (init.pid, log.json, exit — see runc.ts).
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import { alreadyExists, isMissingFile } from '../../store/errors.js';
import { validateIdentifier } from '../metadata/validate.js';
import { unmountAll } from '../snapshots/mount.js';
import type { Spec } from './spec.js';

export interface Bundle {
  /** `<stateDir>/<ns>/<id>`: runc's `--bundle`. */
  path: string;
  /** `<path>/rootfs`. */
  rootfs: string;
  /** `<path>/config.json`. */
  configPath: string;
  /** Unmounts everything under rootfs, then removes the bundle (atomically: renamed away first). */
  delete(): Promise<void>;
}

export interface BundleOptions {
  stateDir: string;
  namespace: string;
  id: string;
  spec: Spec;
}

/** Creates the bundle folder of task `id`: already_exists when there is one. */
export async function createBundle({ stateDir, namespace, id, spec }: BundleOptions): Promise<Bundle> {
  validateIdentifier(namespace, 'namespace');
  validateIdentifier(id, `invalid task id ${JSON.stringify(id)}`);
  const path = join(stateDir, namespace, id);
  await mkdir(dirname(path), { recursive: true, mode: 0o711 });
  try {
    await mkdir(path, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw alreadyExists(`bundle ${path} already exists`, err);
    throw err;
  }
  const bundle = openBundle(path);
  try {
    await mkdir(bundle.rootfs, { mode: 0o711 });
    const file = await open(bundle.configPath, 'wx', 0o666);
    try {
      await file.writeFile(JSON.stringify(spec));
      await file.sync();
    } finally {
      await file.close();
    }
  } catch (err) {
    await bundle.delete();
    throw err;
  }
  return bundle;
}

/** The bundle at `path` (one made earlier, e.g. found again after a restart). */
export function openBundle(path: string): Bundle {
  const rootfs = join(path, 'rootfs');
  return {
    path,
    rootfs,
    configPath: join(path, 'config.json'),
    async delete() {
      // Nothing may stay mounted: the removal below would delete through a mount into its source.
      await unmountAll(rootfs);
      await atomicDelete(path);
    },
  };
}

/**
 * containerd's atomicDelete: rename to `.<name>` in the same folder, then remove. A crash in
 * between leaves a hidden folder, never a half-removed bundle that looks like a live one.
 */
async function atomicDelete(path: string): Promise<void> {
  const hidden = join(dirname(path), `.${basename(path)}`);
  // A leftover of an interrupted delete would block the rename (it was unmounted before).
  await rm(hidden, { recursive: true, force: true });
  try {
    await rename(path, hidden);
  } catch (err) {
    if (isMissingFile(err)) return;
    throw err;
  }
  await rm(hidden, { recursive: true, force: true });
}
