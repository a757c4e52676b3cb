// `berth namespaces ...`: list, create, label, remove namespaces.
import type { Command } from 'commander';
import { BerthClient, seg } from '../client/http.js';
import type { Namespace, NamespaceCreate, NamespaceList } from '../client/types.js';
import { labelPatch, parseLabelArgs } from './args.js';
import { listVerb } from './list.js';
import { age, formatLabels, printJson } from './table.js';

export function registerNamespaces(program: Command, client: () => BerthClient): void {
  const namespaces = program
    .command('namespaces')
    .alias('ns')
    .description('manage namespaces (what --namespace chooses among)');

  listVerb(namespaces.command('ls').alias('list').description('list namespaces'), {
    fetch: (filter) => client().json<NamespaceList>('GET', '/v1/namespaces', { query: { filter } }),
    filterHelp: 'containerd filter on name or labels.<key>, e.g. labels.team==infra (repeat for OR)',
    quiet: { help: 'print only names', key: (n) => n.name },
    columns: ['NAME', 'CREATED', 'LABELS'],
    row: (n) => [n.name, age(n.createdAt), formatLabels(n.labels)],
  });

  namespaces
    .command('create <name> [labels...]')
    .description('create a namespace, optionally with labels k=v')
    .option('--json', 'print the namespace as JSON')
    .action(async (name: string, labels: string[], opts: { json?: boolean }) => {
      const ns = await client().json<Namespace>('POST', '/v1/namespaces', { json: { name, labels: parseLabelArgs(labels) } satisfies NamespaceCreate });
      if (opts.json) printJson(ns);
      else process.stdout.write(ns.name + '\n');
    });

  namespaces
    .command('rm <name...>')
    .alias('remove')
    .description('remove namespaces; one that still has images or content is refused, naming what is left')
    .action(async (names: string[]) => {
      for (const name of names) {
        await client().json('DELETE', `/v1/namespaces/${seg(name)}`);
        process.stdout.write(name + '\n');
      }
    });

  namespaces
    .command('label <name> [labels...]')
    .description('set labels (k=v) or remove them (k=) on a namespace; others stay')
    .option('--replace', 'replace all labels with the given ones')
    .option('--json', 'print the namespace as JSON')
    .action(async (name: string, args: string[], opts: { replace?: boolean; json?: boolean }) => {
      const ns = await client().json<Namespace>('PATCH', `/v1/namespaces/${seg(name)}`, { json: labelPatch(args, opts.replace) });
      if (opts.json) printJson(ns);
      else process.stdout.write(`${ns.name} ${formatLabels(ns.labels)}\n`);
    });
}
