// `berth registry stats` and `berth registry hosts-toml`: what the registry listener served, and
// the containerd hosts.toml that makes containerd pull through it.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { BerthClient } from '../client/http.js';
import type { RegistryStats } from '../client/types.js';
import { defaultHost } from '../remotes/hosts.js';
import { humanSize, printJson } from './table.js';

export interface HostsTomlOptions {
  /** The upstream registry as images name it (`docker.io`, `registry.example:5000`). */
  registry: string;
  /** Where berth's registry listener is reached, e.g. `http://127.0.0.1:5050`. */
  mirror: string;
  /** containerd's `server`: the upstream itself, tried after berth. */
  server: string;
  /** Sent as `Authorization: Bearer <token>` to berth (only to berth). */
  token?: string;
}

/** The upstream's own URL as a pull reaches it (`docker.io` → registry-1.docker.io; loopback over http). */
export function upstreamServer(registry: string): string {
  const { scheme, host } = defaultHost(registry);
  return `${scheme}://${host}`;
}

/**
 * containerd's hosts.toml: berth first, for pulls and tag resolution (containerd adds `ns` so
 * berth knows the upstream), then the upstream `server` — which containerd falls through to
 * whenever berth is down or answers an error.
 */
export function hostsToml(o: HostsTomlOptions): string {
  const q = (s: string) => JSON.stringify(s);
  const lines = [
    `# Written by \`berth registry hosts-toml ${o.registry}\`: containerd pulls ${o.registry} images`,
    '# through berth first and falls back to the registry itself when berth does not answer.',
    `server = ${q(o.server)}`,
    '',
    `[host.${q(o.mirror)}]`,
    '  capabilities = ["pull", "resolve"]',
  ];
  if (o.token !== undefined) lines.push(`  [host.${q(o.mirror)}.header]`, `    Authorization = ${q(`Bearer ${o.token}`)}`);
  return lines.join('\n') + '\n';
}

/** `http://host:port` of a listener bound to `address`; a wildcard address means this machine. */
export function mirrorUrl(address: string): string {
  const local = address.replace(/^0\.0\.0\.0:/, '127.0.0.1:').replace(/^\[::\]:/, '[::1]:');
  return `http://${local}`;
}

export function describeStats(s: RegistryStats): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  return [
    `address        ${s.address} (namespace ${s.namespace}, since ${s.startedAt})`,
    `requests       ${s.requests}`,
    `served         ${s.hits} hits, ${s.pullThroughs} pull-throughs, ${s.followers} followers (hit ratio ${pct(s.hitRatio)})`,
    `bytes served   ${humanSize(s.bytesServed)}${s.bytesServedToPeers > 0 ? ` (${humanSize(s.bytesServedToPeers)} to ${s.peerRequests} peer requests)` : ''}`,
    `bytes upstream ${humanSize(s.bytesFetchedUpstream)}`,
    ...(s.bytesFetchedFromPeers > 0 ? [`bytes peers    ${humanSize(s.bytesFetchedFromPeers)} (pull-through fetched from peers instead of the upstream)`] : []),
  ].join('\n') + '\n';
}

export function registerRegistry(program: Command, client: () => BerthClient): void {
  const registry = program
    .command('registry')
    .description("the registry listener: berth's store served as an OCI registry (see `berth serve --registry-address`)");

  registry
    .command('stats')
    .description('what the registry listener has served since it started: hits, pull-throughs, followers, bytes')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const stats = await client().json<RegistryStats>('GET', '/v1/registry/stats');
      if (opts.json) printJson(stats);
      else process.stdout.write(describeStats(stats));
    });

  registry
    .command('hosts-toml')
    .description('write (or print) the containerd hosts.toml that makes containerd pull REGISTRY through this berth first')
    .argument('<registry>', 'the upstream registry as image names spell it, e.g. docker.io or registry.example:5000')
    .option('--dir <dir>', "containerd's hosts folder (e.g. /etc/containerd/certs.d): writes DIR/REGISTRY/hosts.toml; without it, prints")
    .option('--server <url>', "the upstream's URL, tried after berth (default https://REGISTRY, http:// on loopback; docker.io: https://registry-1.docker.io)")
    .option('--mirror <url>', "berth's registry listener as containerd reaches it (default http://ADDRESS from the server)")
    // Not --token-file: that is berth's global option, the management API's token.
    .option('--registry-token-file <file>', "the listener's auth_token_file: containerd then sends the token to berth (only to berth)")
    .action(async (name: string, opts: { dir?: string; server?: string; mirror?: string; registryTokenFile?: string }) => {
      if (!/^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9a-fA-F:.]+\](:\d+)?$/.test(name)) {
        throw new Error(`registry ${JSON.stringify(name)}: expected a registry host such as docker.io or registry.example:5000`);
      }
      const mirror = opts.mirror ?? mirrorUrl((await client().json<RegistryStats>('GET', '/v1/registry/stats')).address);
      const token = opts.registryTokenFile === undefined ? undefined : (await readFile(opts.registryTokenFile, 'utf8')).trim();
      const text = hostsToml({ registry: name, mirror, server: opts.server ?? upstreamServer(name), token });
      if (!opts.dir) {
        process.stdout.write(text);
        return;
      }
      const folder = join(opts.dir, name);
      await mkdir(folder, { recursive: true });
      const file = join(folder, 'hosts.toml');
      // Written whole or not at all: containerd may read the folder at any moment.
      await writeFile(`${file}.tmp`, text, { mode: token === undefined ? 0o644 : 0o600 });
      await rename(`${file}.tmp`, file);
      process.stdout.write(`${file}\n`);
    });
}
