// `berth namespaces ...`: list, create, label, remove namespaces.
import type { Command } from 'commander';
import { collect, labelPatch, parseLabelArgs } from './args.js';
import { BerthClient, seg } from './client.js';
import { age, formatLabels, printJson, printTable } from './table.js';

interface NamespaceJson {
  name: string;
  labels: Record<string, string>;
  createdAt: string;
}

export function registerNamespaces(program: Command, client: () => BerthClient): void {
  const namespaces = program
    .command('namespaces')
    .alias('ns')
    .description('manage namespaces (what --namespace chooses among)');

  namespaces
    .command('ls')
    .alias('list')
    .description('list namespaces')
    .option('--filter <expr>', 'containerd filter on name or labels.<key>, e.g. labels.team==infra (repeat for OR)', collect)
    .option('-q, --quiet', 'print only names')
    .option('--json', 'print JSON')
    .action(async (opts: { filter?: string[]; quiet?: boolean; json?: boolean }) => {
      const { items } = await client().json<{ items: NamespaceJson[] }>('GET', '/v1/namespaces', { query: { filter: opts.filter } });
      if (opts.json) return printJson(items);
      if (opts.quiet) return items.forEach((n) => process.stdout.write(n.name + '\n'));
      printTable(['NAME', 'CREATED', 'LABELS'], items.map((n) => [n.name, age(n.createdAt), formatLabels(n.labels)]));
    });

  namespaces
    .command('create <name> [labels...]')
    .description('create a namespace, optionally with labels k=v')
    .option('--json', 'print the namespace as JSON')
    .action(async (name: string, labels: string[], opts: { json?: boolean }) => {
      const ns = await client().json<NamespaceJson>('POST', '/v1/namespaces', { json: { name, labels: parseLabelArgs(labels) } });
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
      const ns = await client().json<NamespaceJson>('PATCH', `/v1/namespaces/${seg(name)}`, { json: labelPatch(args, opts.replace) });
      if (opts.json) printJson(ns);
      else process.stdout.write(`${ns.name} ${formatLabels(ns.labels)}\n`);
    });
}
