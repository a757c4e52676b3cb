// containerd as the benchmarks' peer: a daemon with its own root, state, socket and a minimal
// config, driven with `ctr`, and emptied between rounds.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { onCleanup, run, stopProcess, waitReady, which } from './harness.js';
import { writeContainerdConfig } from '../test/fixtures/containerd.js';

const SETPRIV = '/usr/bin/setpriv';

export interface Containerd {
  pid: number;
  address: string;
  ctr(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/** Starts containerd in `dir` (writeContainerdConfig) and waits until `ctr version` answers. */
export async function startContainerd(dir: string): Promise<Containerd> {
  const { address, configPath } = await writeContainerdConfig(dir);
  const bin = which('containerd')!;
  // setpriv --pdeathsig: containerd dies with this process, even when it is SIGKILLed.
  const [cmd, args] = existsSync(SETPRIV)
    ? [SETPRIV, ['--pdeathsig', 'KILL', '--', bin, '--config', configPath, '--log-level', 'warn']]
    : [bin, ['--config', configPath, '--log-level', 'warn']];
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    log += s;
    if (log.length > 64 * 1024) log = log.slice(-64 * 1024);
  });
  const stop = () => stopProcess(child, 'containerd');
  onCleanup(stop);
  const ctr = (a: string[]) => run(which('ctr')!, ['--address', address, ...a]);
  await waitReady(child, 'containerd', async () => existsSync(address) && (await ctr(['version']), true), () => log, 20_000, 100);
  return { pid: child.pid!, address, ctr, stop };
}

/** Digests in containerd's content store (namespace default). */
export async function ctrContent(c: Containerd): Promise<Set<string>> {
  const out = await c.ctr(['content', 'ls', '-q']);
  return new Set(out.split('\n').map((l) => l.trim()).filter(Boolean));
}

/** Keys and parents of `snapshotter`'s snapshots (namespace default). */
export async function ctrSnapshots(c: Containerd, snapshotter: string): Promise<Array<{ key: string; parent: string }>> {
  const out = await c.ctr(['snapshots', '--snapshotter', snapshotter, 'ls']);
  // KEY PARENT KIND; a snapshot without parent leaves that column empty.
  return out.split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f[0]).map((f) => ({ key: f[0], parent: f.length > 2 ? f[1] : '' }));
}

/**
 * Removes the image and, through `--sync`, its content (and its snapshots in `snapshotter`, when
 * named); removes what is left by hand. The stores must be empty then.
 */
export async function ctrReset(c: Containerd, ref: string, snapshotter?: string): Promise<void> {
  const images = (await c.ctr(['images', 'ls', '-q'])).trim().split('\n').filter(Boolean);
  if (images.includes(ref)) await c.ctr(['images', 'rm', '--sync', ref]);
  if (snapshotter) {
    // Children before parents: a snapshot with children cannot be removed.
    for (let left = await ctrSnapshots(c, snapshotter); left.length > 0; left = await ctrSnapshots(c, snapshotter)) {
      const parents = new Set(left.map((s) => s.parent));
      const leaves = left.filter((s) => !parents.has(s.key));
      if (leaves.length === 0) throw new Error(`containerd's ${snapshotter} snapshots form a cycle: ${left.map((s) => s.key).join(' ')}`);
      await c.ctr(['snapshots', '--snapshotter', snapshotter, 'rm', ...leaves.map((s) => s.key)]);
    }
  }
  const left = await ctrContent(c);
  if (left.size > 0) {
    await c.ctr(['content', 'rm', ...left]);
    const still = await ctrContent(c);
    if (still.size > 0) throw new Error(`containerd's store is not empty after images rm --sync and content rm: ${[...still].join(' ')}`);
  }
}
