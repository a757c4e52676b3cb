// `berth plugins ls`
import type { Command } from 'commander';
import type { BerthClient } from '../client/http.js';
import type { PluginList } from '../client/types.js';
import { listVerb } from './list.js';

export function registerPlugins(program: Command, client: () => BerthClient): void {
  const plugins = program.command('plugins').description('list the server\'s components');
  listVerb(plugins.command('ls').alias('list').description('list plugins with their status and exports'), {
    fetch: () => client().json<PluginList>('GET', '/v1/plugins'),
    columns: ['TYPE', 'ID', 'STATUS', 'DETAIL'],
    row: (p) => [p.type, p.id, p.status, p.message ?? (p.exports.root ? `root=${p.exports.root}` : '')],
  });
}
