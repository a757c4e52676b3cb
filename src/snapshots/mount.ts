// Mounting a snapshotter's Mounts onto a folder and taking them down again, with mount(8) and
// umount(8) (containerd core/mount: All, Unmount, UnmountAll). Needs root.
import { execFile } from 'node:child_process';
import { readFile, realpath } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { BerthError, isMissingFile } from '../../store/errors.js';
import type { Mount } from './types.js';

/**
 * mount(2) takes at most a page of option data; containerd shortens an overlay's lowerdir list
 * (128 layers of `<root>/snapshots/<id>/fs` exceed it) once the options come within 512 bytes
 * of that, by mounting from their common parent folder with relative paths.
 */
const pageSize = 4096;
const compactAbove = pageSize - 512;

/** umount retries while the target is busy (a process leaving it), then detaches it lazily. */
const busyRetries = 5;
const busyDelayMs = 50;

/** Mounts each mount onto `target` in order; if one fails, those already mounted come off again. */
export async function mountAll(mounts: Mount[], target: string): Promise<void> {
  let mounted = 0;
  try {
    for (const m of mounts) {
      await mountOne(m, target);
      mounted++;
    }
  } catch (err) {
    for (; mounted > 0; mounted--) await unmount(target).catch(() => undefined);
    throw err;
  }
}

async function mountOne(m: Mount, target: string): Promise<void> {
  const isBind = m.type === 'bind' || m.options.includes('bind') || m.options.includes('rbind');
  if (!isBind) {
    const { options, cwd } = compacted(m);
    await run('mount', ['-t', m.type, '-o', options.join(','), m.source, target], `mount ${m.type} ${m.source} on ${target}`, cwd);
    return;
  }
  // A bind mount ignores `ro` when it is made: read-only takes a second, remounting call.
  const readOnly = m.options.includes('ro');
  const extra = m.options.filter((o) => !['bind', 'rbind', 'ro', 'rw'].includes(o));
  const bindFlag = m.options.includes('rbind') ? '--rbind' : '--bind';
  const what = `bind mount ${m.source} on ${target}`;
  await run('mount', [bindFlag, ...(extra.length ? ['-o', extra.join(',')] : []), m.source, target], what);
  if (!readOnly) return;
  try {
    await run('mount', ['-o', ['remount', 'bind', 'ro', ...extra].join(','), target], `${what}: read-only remount`);
  } catch (err) {
    await unmount(target).catch(() => undefined);
    throw err;
  }
}

/**
 * containerd's compactLowerdirOption: when the options are too long for mount(2), the lowerdirs
 * become relative to their longest common parent folder, which mount runs in.
 */
function compacted(m: Mount): { options: string[]; cwd?: string } {
  const i = m.options.findIndex((o) => o.startsWith('lowerdir='));
  if (m.type !== 'overlay' || i < 0 || m.options.join(',').length < compactAbove) return { options: m.options };
  const dirs = m.options[i].slice('lowerdir='.length).split(':');
  if (dirs.length < 2) return { options: m.options };
  const split = dirs.map((d) => d.split('/'));
  let common = 0;
  while (split.every((parts) => common < parts.length - 1 && parts[common] === split[0][common])) common++;
  const parent = split[0].slice(0, common).join('/');
  if (!parent.startsWith('/') || parent === '/') return { options: m.options };
  const relative = split.map((parts) => parts.slice(common).join('/'));
  const options = [...m.options];
  options[i] = `lowerdir=${relative.join(':')}`;
  return { options, cwd: parent };
}

/** Unmounts the top mount at `target`; while busy, retries a few times, then detaches lazily. */
export async function unmount(target: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await run('umount', [target], `unmount ${target}`);
      return;
    } catch (err) {
      if (!/busy/i.test((err as Error).message)) throw err;
      if (attempt === busyRetries) break;
      await sleep(busyDelayMs * (attempt + 1));
    }
  }
  await run('umount', ['-l', target], `lazy unmount ${target}`);
}

/** Unmounts every mount at or under `target`, deepest (and most recent) first. */
export async function unmountAll(target: string): Promise<void> {
  let real: string;
  try {
    real = await realpath(target);
  } catch (err) {
    if (isMissingFile(err)) return;
    throw err;
  }
  // One unmount at a time, then read again: a lazy unmount takes a whole subtree with it, and a
  // mount stacked on an ancestor hides the deeper ones until it is gone (their umount then
  // fails as "not mounted"), so each round unmounts the deepest mount that can be reached.
  for (let before = Infinity; ; ) {
    const points = (await mountPoints()).filter((p) => p === real || p.startsWith(real === '/' ? '/' : `${real}/`));
    if (points.length === 0) return;
    if (points.length >= before) throw new BerthError('internal', `unmount ${target}: ${points.length} mounts remain under it`);
    before = points.length;
    const depth = (p: string) => p.split('/').length;
    // Deepest first; at the same point, the later entry of mountinfo is the one on top.
    const order = points.map((p, i) => ({ p, i })).sort((x, y) => depth(y.p) - depth(x.p) || y.i - x.i);
    let firstError: unknown;
    let unmounted = false;
    for (const { p } of order) {
      try {
        await unmount(p);
        unmounted = true;
        break;
      } catch (err) {
        firstError ??= err;
      }
    }
    if (!unmounted) throw firstError;
  }
}

/** Mount points of this process, in /proc/self/mountinfo order (field 5, octal escapes decoded). */
async function mountPoints(): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' ')[4].replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))));
}

function run(cmd: string, args: string[], what: string, cwd?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const detail = stderr.trim() || err.message;
      reject(new BerthError('internal', `${what}: ${detail}`, { cause: err }));
    });
  });
}
