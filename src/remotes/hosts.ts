// Which hosts serve a registry (containerd core/remotes/docker/config/hosts.go): containerd's
// `hosts.toml` directory layout and keys — mirrors tried in file order with their capabilities,
// then the upstream `server` — and its defaults: docker.io is served by registry-1.docker.io,
// and a loopback registry speaks plain HTTP.
import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { parse } from 'smol-toml';
import { invalidArgument, isMissingFile } from '../../store/errors.js';

export type Capability = 'pull' | 'resolve' | 'push' | 'referrers';
const allCapabilities: Capability[] = ['pull', 'resolve', 'push', 'referrers'];

export interface RegistryHost {
  /** `host[:port]` as requests address it. */
  host: string;
  scheme: 'http' | 'https';
  /** The API root, normally `/v2`. */
  path: string;
  capabilities: Set<Capability>;
  /** Extra request headers. */
  headers: Record<string, string[]>;
  skipVerify: boolean;
  /** PEM bundles of CAs to trust for this host. */
  ca: string[];
}

/** localhost, ::1 and 127.0.0.0/8, with any port (containerd's MatchLocalhost). */
export function isLoopback(host: string): boolean {
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return name === 'localhost' || name === '::1' || /^127(?:\.\d{1,3}){3}$/.test(name);
}

/** The upstream host for a reference's domain when nothing is configured. */
export function defaultHost(domain: string): RegistryHost {
  const host = domain === 'docker.io' ? 'registry-1.docker.io' : domain;
  return {
    host,
    scheme: isLoopback(host) ? 'http' : 'https',
    path: '/v2',
    capabilities: new Set(allCapabilities),
    headers: {},
    skipVerify: false,
    ca: [],
  };
}

/** The hosts folders to look in for `domain`, first existing wins (containerd's order). */
function candidateDirs(root: string, domain: string): string[] {
  const out: string[] = [];
  const port = /:(\d+)$/.exec(domain);
  if (port) out.push(join(root, `${domain.slice(0, port.index)}_${port[1]}_`));
  out.push(join(root, domain), join(root, '_default'));
  return out;
}

/**
 * The hosts to try for `domain`, in order: the mirrors of its `hosts.toml` (from `hostsDir`),
 * then the upstream. Without a hosts folder: the default upstream alone.
 */
export async function registryHosts(domain: string, hostsDir?: string): Promise<RegistryHost[]> {
  if (!hostsDir) return [defaultHost(domain)];
  for (const dir of candidateDirs(hostsDir, domain)) {
    let text: string;
    try {
      text = await readFile(join(dir, 'hosts.toml'), 'utf8');
    } catch (err) {
      if (isMissingFile(err) || (err as NodeJS.ErrnoException).code === 'ENOTDIR') continue;
      throw err;
    }
    return parseHostsToml(text, domain, dir);
  }
  return [defaultHost(domain)];
}

/** Parses a `hosts.toml`; hosts in file order, then `server` (or the default upstream). */
export async function parseHostsToml(text: string, domain: string, dir: string): Promise<RegistryHost[]> {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    throw invalidArgument(`${join(dir, 'hosts.toml')}: ${(err as Error).message}`, err);
  }
  const where = join(dir, 'hosts.toml');
  const hosts: RegistryHost[] = [];
  const tables = (doc.host ?? {}) as Record<string, Record<string, unknown>>;
  for (const [url, table] of Object.entries(tables)) hosts.push(await hostFrom(url, table, dir, where));
  const server = doc.server;
  if (typeof server === 'string' && server) hosts.push(await hostFrom(server, doc, dir, where));
  else hosts.push(defaultHost(domain));
  return hosts;
}

async function hostFrom(url: string, table: Record<string, unknown>, dir: string, where: string): Promise<RegistryHost> {
  const parsed = new URL(url.includes('://') ? url : `https://${url}`);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw invalidArgument(`${where}: host ${url}: scheme must be http or https`);
  }
  let path = parsed.pathname.replace(/\/+$/, '');
  if (!table.override_path && !path.endsWith('/v2')) path = `${path}/v2`;
  const caps = table.capabilities === undefined ? allCapabilities : (table.capabilities as string[]);
  for (const c of caps) {
    if (!allCapabilities.includes(c as Capability)) throw invalidArgument(`${where}: host ${url}: unknown capability ${c}`);
  }
  const headers: Record<string, string[]> = {};
  for (const [k, v] of Object.entries((table.header ?? {}) as Record<string, string | string[]>)) headers[k.toLowerCase()] = [v].flat();
  const ca: string[] = [];
  for (const file of [table.ca ?? []].flat() as string[]) ca.push(await readFile(isAbsolute(file) ? file : join(dir, file), 'utf8'));
  return {
    host: parsed.host,
    scheme: parsed.protocol === 'http:' ? 'http' : 'https',
    path,
    capabilities: new Set(caps as Capability[]),
    headers,
    skipVerify: table.skip_verify === true,
    ca,
  };
}
