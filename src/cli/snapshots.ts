// `berth snapshots ...`: the snapshots of one snapshotter in the namespace (ctr snapshots).
import type { Command } from 'commander';
import { BerthClient, seg } from '../client/http.js';
import type {
  Mount,
  Snapshot,
  SnapshotCommit,
  SnapshotCreate,
  SnapshotList,
  SnapshotMounts,
  SnapshotterList,
  SnapshotUpdate,
  SnapshotUsage,
} from '../client/types.js';
import { collect, labelPatch, parseLabelArgs } from './args.js';
import { listVerb } from './list.js';
import { age, formatLabels, humanSize, printJson, printTable } from './table.js';

/** `mount -t TYPE SOURCE TARGET -o OPTIONS`, as ctr snapshots mounts prints them. */
export function mountCommand(m: Mount, target: string): string {
  return `mount -t ${m.type} ${m.source} ${target}${m.options.length ? ` -o ${m.options.join(',')}` : ''}`;
}

export function registerSnapshots(program: Command, client: () => BerthClient): void {
  const snapshots = program
    .command('snapshots')
    .alias('snapshot')
    .description('manage snapshots: layers unpacked into file systems, and the writable ones on top')
    .option('--snapshotter <name>', 'the snapshotter (default: the server\'s default, overlayfs where it works)');
  const base = (cmd: Command) => {
    const sn = cmd.optsWithGlobals<{ snapshotter?: string }>().snapshotter;
    return sn ? Promise.resolve(sn) : defaultSnapshotter(client());
  };
  const path = async (cmd: Command, ...rest: string[]) =>
    ['/v1/snapshotters', seg(await base(cmd)), 'snapshots', ...rest.map(seg)].join('/');
  const list = async (cmd: Command, filter?: string[]) => client().json<SnapshotList>('GET', await path(cmd), { query: { filter } });

  listVerb(snapshots.command('ls').alias('list').description('list snapshots'), {
    fetch: (filter, cmd) => list(cmd, filter),
    filterHelp: 'containerd filter on kind, name, parent, labels.<key> (repeat for OR)',
    quiet: { help: 'print only keys', key: (s) => s.name },
    columns: ['KEY', 'PARENT', 'KIND', 'CREATED'],
    row: (s) => [s.name, s.parent ?? '', s.kind, age(s.createdAt)],
  });

  snapshots
    .command('tree')
    .description('show snapshots as a tree of parents and children')
    .action(async (_opts: unknown, cmd: Command) => {
      const { items } = await list(cmd);
      const children = new Map<string, Snapshot[]>();
      for (const s of items) children.set(s.parent ?? '', [...(children.get(s.parent ?? '') ?? []), s]);
      const print = (parent: string, indent: string) => {
        for (const s of children.get(parent) ?? []) {
          process.stdout.write(`${indent}\\_ ${s.name} (${s.kind})\n`);
          print(s.name, indent + '   ');
        }
      };
      print('', '');
    });

  snapshots
    .command('info <key>')
    .description('show one snapshot as JSON')
    .action(async (key: string, _opts: unknown, cmd: Command) => printJson(await client().json<Snapshot>('GET', await path(cmd, key))));

  snapshots
    .command('usage [key...]')
    .description('disk use of snapshots (all when no key is given)')
    .option('--json', 'print JSON')
    .action(async (keys: string[], opts: { json?: boolean }, cmd: Command) => {
      const names = keys.length ? keys : (await list(cmd)).items.map((s) => s.name);
      const rows: Array<SnapshotUsage & { key: string }> = [];
      for (const key of names) {
        rows.push({ key, ...(await client().json<SnapshotUsage>('GET', await path(cmd, key, 'usage'))) });
      }
      if (opts.json) return printJson(rows);
      printTable(['KEY', 'SIZE', 'INODES'], rows.map((r) => [r.key, humanSize(r.size), String(r.inodes)]));
    });

  snapshots
    .command('rm <key...>')
    .alias('remove')
    .description('remove snapshots (a snapshot others sit on cannot be removed)')
    .action(async (keys: string[], _opts: unknown, cmd: Command) => {
      for (const key of keys) {
        await client().json('DELETE', await path(cmd, key));
        process.stdout.write(key + '\n');
      }
    });

  snapshots
    .command('mounts <target> <key>')
    .description('print the mount command that shows an active snapshot or view at TARGET')
    .option('--json', 'print the mounts as JSON')
    .action(async (target: string, key: string, opts: { json?: boolean }, cmd: Command) => {
      const { mounts } = await client().json<SnapshotMounts>('GET', await path(cmd, key, 'mounts'));
      if (opts.json) return printJson(mounts);
      for (const m of mounts) process.stdout.write(mountCommand(m, target) + '\n');
    });

  for (const [how, what] of [
    ['prepare', 'make a writable snapshot on PARENT (none: empty) and print its mount command'],
    ['view', 'make a read-only view of PARENT and print its mount command'],
  ] as const) {
    snapshots
      .command(`${how} <key> [parent]`)
      .description(what)
      .option('--target <dir>', 'the folder the printed mount command mounts on', '/tmp/mnt')
      .option('--label <k=v>', 'label the snapshot (repeatable)', collect)
      .option('--json', 'print the mounts as JSON')
      .action(async (key: string, parent: string | undefined, opts: { target: string; label?: string[]; json?: boolean }, cmd: Command) => {
        const { mounts } = await client().json<SnapshotMounts>('POST', await path(cmd, how), {
          json: { key, parent: parent || undefined, labels: parseLabelArgs(opts.label ?? []) } satisfies SnapshotCreate,
        });
        if (opts.json) return printJson(mounts);
        for (const m of mounts) process.stdout.write(mountCommand(m, opts.target) + '\n');
      });
  }

  snapshots
    .command('commit <name> <key>')
    .description('freeze the active snapshot KEY as the committed snapshot NAME')
    .option('--label <k=v>', 'label the committed snapshot (repeatable)', collect)
    .action(async (name: string, key: string, opts: { label?: string[] }, cmd: Command) => {
      await client().json('POST', await path(cmd, 'commit'), { json: { name, key, labels: parseLabelArgs(opts.label ?? []) } satisfies SnapshotCommit });
      process.stdout.write(name + '\n');
    });

  snapshots
    .command('label <key> [labels...]')
    .description('set (k=v) or remove (k=) labels of a snapshot')
    .option('--replace', 'replace all labels with the ones given')
    .action(async (key: string, labels: string[], opts: { replace?: boolean }, cmd: Command) => {
      const info = await client().json<Snapshot>('PATCH', await path(cmd, key), { json: labelPatch(labels, opts.replace) satisfies SnapshotUpdate });
      process.stdout.write(formatLabels(info.labels) + '\n');
    });
}

/** The server's default snapshotter. */
export async function defaultSnapshotter(client: BerthClient): Promise<string> {
  const { items } = await client.json<SnapshotterList>('GET', '/v1/snapshotters');
  const found = items.find((s) => s.default);
  if (!found) throw new Error('the server has no snapshotter loaded (see berth plugins ls)');
  return found.name;
}
