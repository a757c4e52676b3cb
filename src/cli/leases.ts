// `berth leases ...`: leases in the namespace and the resources they keep.
import type { Command } from 'commander';
import { BerthClient, seg } from '../client/http.js';
import type { Lease, LeaseCreate, LeaseList, Resource, ResourceList } from '../client/types.js';
import { collect, parseLabelArgs } from './args.js';
import { listVerb } from './list.js';
import { age, formatLabels, printJson, printTable, until } from './table.js';

const expireLabel = 'containerd.io/gc.expire';

/** `TYPE:ID` → a resource; the type has no `:` (`snapshots/overlayfs`), the id may (`sha256:...`). */
function parseResource(arg: string): Resource {
  const i = arg.indexOf(':');
  if (i <= 0 || i === arg.length - 1) {
    throw new Error(`resource ${JSON.stringify(arg)}: expected TYPE:ID, e.g. content:sha256:... or snapshots/overlayfs:KEY`);
  }
  return { type: arg.slice(0, i), id: arg.slice(i + 1) };
}

export function registerLeases(program: Command, client: () => BerthClient): void {
  const leases = program
    .command('leases')
    .alias('lease')
    .description('manage leases: what a lease lists (and what that references) is kept by the garbage collector');

  listVerb(leases.command('ls').alias('list').description('list leases'), {
    fetch: (filter) => client().json<LeaseList>('GET', '/v1/leases', { query: { filter } }),
    filterHelp: 'containerd filter on id or labels.<key> (repeat for OR)',
    quiet: { help: 'print only ids', key: (l) => l.id },
    columns: ['ID', 'CREATED', 'EXPIRES', 'LABELS'],
    row: (l) => {
      const { [expireLabel]: expires, ...rest } = l.labels;
      return [l.id, age(l.createdAt), expires ? until(expires) : 'never', formatLabels(rest)];
    },
  });

  leases
    .command('create')
    .description('create a lease and print its id')
    .option('--id <id>', 'the lease\'s id (default: generated)')
    .option('--expires-in <duration>', 'Go duration after which the lease expires, e.g. 24h, 90m, 1h30m; 0 = never', '24h')
    .option('--label <k=v>', 'label the lease (repeatable), e.g. containerd.io/gc.flat=true', collect)
    .option('--json', 'print the lease as JSON')
    .action(async (opts: { id?: string; expiresIn: string; label?: string[]; json?: boolean }) => {
      const never = /^[+-]?0+(\.0*)?([a-zµμ]+)?$/.test(opts.expiresIn);
      const lease = await client().json<Lease>('POST', '/v1/leases', {
        json: {
          id: opts.id || undefined,
          labels: parseLabelArgs(opts.label ?? []),
          expiresIn: never ? undefined : opts.expiresIn,
        } satisfies LeaseCreate,
      });
      if (opts.json) printJson(lease);
      else process.stdout.write(lease.id + '\n');
    });

  leases
    .command('rm <id...>')
    .alias('remove')
    .description('remove leases; what only they kept is collected')
    .option('--sync', 'return only after the garbage collection has removed what they held')
    .action(async (ids: string[], opts: { sync?: boolean }) => {
      for (const id of ids) {
        await client().json('DELETE', `/v1/leases/${seg(id)}`, { query: { sync: opts.sync ? 'true' : undefined } });
        process.stdout.write(id + '\n');
      }
    });

  leases
    .command('resources <id>')
    .description('list what a lease keeps; --add and --remove change it first')
    .option('--add <type:id>', 'add a resource: content:DIGEST, ingests:REF, images:NAME, snapshots/SNAPSHOTTER:KEY (repeatable)', collect)
    .option('--remove <type:id>', 'remove a resource, written as for --add (repeatable)', collect)
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { add?: string[]; remove?: string[]; json?: boolean }) => {
      const add = (opts.add ?? []).map(parseResource);
      const remove = (opts.remove ?? []).map(parseResource);
      for (const r of add) await client().json('POST', `/v1/leases/${seg(id)}/resources`, { json: r });
      for (const r of remove) await client().json('DELETE', `/v1/leases/${seg(id)}/resources/${seg(r.type)}/${seg(r.id)}`);
      const { items } = await client().json<ResourceList>('GET', `/v1/leases/${seg(id)}/resources`);
      if (opts.json) return printJson(items);
      printTable(['TYPE', 'ID'], items.map((r) => [r.type, r.id]));
    });
}
