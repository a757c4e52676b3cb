// `berth plugins ls`
import type { Command } from 'commander';
import type { PluginInfo } from '../plugins/registry.js';
import { BerthClient } from './client.js';
import { printJson, printTable } from './table.js';

export function registerPlugins(program: Command, client: () => BerthClient): void {
  const plugins = program.command('plugins').description('list the server\'s components');
  plugins
    .command('ls')
    .alias('list')
    .description('list plugins with their status and exports')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const { items } = await client().json<{ items: PluginInfo[] }>('GET', '/v1/plugins');
      if (opts.json) return printJson(items);
      printTable(
        ['TYPE', 'ID', 'STATUS', 'DETAIL'],
        items.map((p) => [p.type, p.id, p.status, p.message ?? (p.exports.root ? `root=${p.exports.root}` : '')]),
      );
    });
}
