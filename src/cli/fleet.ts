// `berth fleet nodes` and `berth fleet where DIGEST`: the fleet of berth nodes this server belongs
// to (through etcd), as the server sees it.
import type { Command } from 'commander';
import type { BerthClient } from '../client/http.js';
import type { FleetBlob, FleetNodeList, PluginList } from '../client/types.js';
import { listVerb } from './list.js';
import { age, humanSize, printJson, printTable } from './table.js';

/** `berth fleet where`'s answer for people: each holder, complete ones first, and the claim if a node holds it. */
function printHolders(blob: FleetBlob): void {
  if (blob.holders.length === 0) process.stdout.write(`no node of the fleet advertises ${blob.digest}\n`);
  else {
    printTable(
      ['NODE', 'ADDRESS', 'STATE', 'SIZE'],
      blob.holders.map((h) => [
        h.node,
        h.address,
        h.complete ? 'complete' : `arriving: ${humanSize(h.offset)} (${h.size > 0 ? Math.floor((h.offset / h.size) * 100) : 0}%)`,
        humanSize(h.size),
      ]),
    );
  }
  if (blob.claim) process.stdout.write(`claimed by ${blob.claim}: it fetches the blob from the upstream for the fleet\n`);
}

export function registerFleet(program: Command, client: () => BerthClient): void {
  const fleet = program
    .command('fleet')
    .description('the fleet of berth nodes this server finds content on, through etcd (plugin io.berth.service.v1.fleet)')
    .addHelpText(
      'after',
      '\nThe answers come from the server\'s watch of etcd, in memory. While the server cannot reach etcd it\n' +
        'works alone (see `berth plugins ls`: the fleet plugin\'s state and reason) and lists only itself.',
    );

  listVerb(fleet.command('nodes').alias('ls').description('the nodes of the fleet: name, registry address, when each started'), {
    fetch: async () => {
      const [nodes, plugins] = await Promise.all([
        client().json<FleetNodeList>('GET', '/v1/fleet/nodes'),
        client().json<PluginList>('GET', '/v1/plugins'),
      ]);
      // A node cut off from etcd lists only itself: say why, where people read it (not in --json's stdout).
      const p = plugins.items.find((i) => i.type === 'io.berth.service.v1' && i.id === 'fleet');
      if (p?.exports.state === 'alone') process.stderr.write(`berth: this node works alone, it sees no peers: ${p.exports.reason ?? 'etcd unreachable'}\n`);
      return nodes;
    },
    columns: ['NAME', 'ADDRESS', 'STARTED', 'SELF'],
    row: (n) => [n.name, n.address, age(n.startedAt), n.self ? 'yes' : ''],
  });

  fleet
    .command('where')
    .description('which nodes hold a blob (complete, or how far along a fetch is) and which node claims its upstream fetch')
    .argument('<digest>', 'the blob, sha256:<hex>')
    .option('--json', 'print JSON')
    .action(async (digest: string, opts: { json?: boolean }) => {
      const blob = await client().json<FleetBlob>('GET', `/v1/fleet/blobs/${encodeURIComponent(digest)}`);
      if (opts.json) printJson(blob);
      else printHolders(blob);
    });
}
