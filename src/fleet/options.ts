// The fleet's settings checked before anything connects: a typo in an endpoint, a node name or a
// prefix is a start-up error naming the value, never a node that silently works alone forever.
import { invalidArgument } from '../../store/errors.js';

/** What the gRPC client dials: `HOST:PORT` of each endpoint, and whether over TLS. */
export interface EtcdEndpoints {
  hosts: string[];
  tls: boolean;
}

/**
 * `http://HOST:PORT` or `https://HOST:PORT` (port 2379 when left out, as etcd's own clients
 * assume) → `HOST:PORT` and the scheme.
 */
export function parseEndpoint(value: unknown): { host: string; tls: boolean } {
  const what = `etcd_endpoints: ${JSON.stringify(value)}`;
  const expected = '(expected http://HOST:PORT or https://HOST:PORT)';
  if (typeof value !== 'string' || value === '') throw invalidArgument(`${what} is not an etcd URL ${expected}`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalidArgument(`${what} is not an etcd URL ${expected}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidArgument(`${what}: unsupported scheme ${url.protocol} ${expected}`);
  if (!url.hostname) throw invalidArgument(`${what}: no host ${expected}`);
  if (url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) {
    throw invalidArgument(`${what}: an etcd endpoint is only a scheme, a host and a port (no path, query or credentials)`);
  }
  return { host: `${url.hostname}:${url.port || '2379'}`, tls: url.protocol === 'https:' };
}

/** `etcd_endpoints`: a non-empty list of URLs, all `http://` or all `https://`. */
export function parseEndpoints(value: unknown): EtcdEndpoints {
  if (!Array.isArray(value)) {
    throw invalidArgument(`etcd_endpoints: ${JSON.stringify(value)} must be a list of URLs, e.g. ["http://10.0.0.5:2379"]`);
  }
  if (value.length === 0) throw invalidArgument('etcd_endpoints: the list is empty (leave it unset to work alone)');
  const parsed = value.map(parseEndpoint);
  const tls = parsed[0].tls;
  // One client, one kind of channel: a mixed list would send some requests in plain text.
  if (parsed.some((e) => e.tls !== tls)) throw invalidArgument('etcd_endpoints: mixes http:// and https:// (use one scheme for every endpoint)');
  return { hosts: parsed.map((e) => e.host), tls };
}

/** The files of `etcd_ca_file`, `etcd_cert_file` and `etcd_key_file`, read at start. */
export interface EtcdTlsFiles {
  /** PEM CAs that sign etcd's certificate (unset: the system's roots). */
  ca?: Buffer;
  /** This node's client certificate and key (etcd's `--client-cert-auth`). */
  cert?: Buffer;
  key?: Buffer;
}

/**
 * Reads the TLS files the configuration names: every one must be readable, a certificate needs
 * its key (and the other way round), and TLS files with `http://` endpoints are a mistake, not
 * something to ignore.
 */
export async function readTlsFiles(config: Record<string, unknown>, endpoints: EtcdEndpoints, read: (path: string) => Promise<Buffer>): Promise<EtcdTlsFiles | undefined> {
  const names = ['etcd_ca_file', 'etcd_cert_file', 'etcd_key_file'] as const;
  const given = names.filter((n) => config[n] !== undefined);
  if (!endpoints.tls) {
    if (given.length > 0) throw invalidArgument(`${given.join(', ')}: TLS files given, but etcd_endpoints are http:// (use https://HOST:PORT)`);
    return undefined;
  }
  if ((config.etcd_cert_file === undefined) !== (config.etcd_key_file === undefined)) {
    throw invalidArgument('etcd_cert_file and etcd_key_file go together: a client certificate needs its key');
  }
  const files: EtcdTlsFiles = {};
  for (const name of given) {
    const path = config[name];
    if (typeof path !== 'string' || path === '') throw invalidArgument(`${name}: ${JSON.stringify(path)} must be a file path`);
    let data: Buffer;
    try {
      data = await read(path);
    } catch (err) {
      throw invalidArgument(`${name} ${path}: ${(err as Error).message}`);
    }
    if (!data.includes('-----BEGIN ')) throw invalidArgument(`${name} ${path}: not a PEM file`);
    files[name === 'etcd_ca_file' ? 'ca' : name === 'etcd_cert_file' ? 'cert' : 'key'] = data;
  }
  return files;
}

// A node's name is one segment of its etcd keys: no `/`, and readable in `berth fleet nodes`.
// Host names fit (letters, digits, `.`, `_`, `-`).
const nodeNamePattern = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/;

export function validateNodeName(name: unknown): string {
  if (typeof name !== 'string' || !nodeNamePattern.test(name)) {
    throw invalidArgument(`node_name ${JSON.stringify(name)} must match ${nodeNamePattern.source} (it is one segment of the fleet's etcd keys)`);
  }
  return name;
}

/** `/berth/fleet` (one leading `/`, no trailing one): every key of the fleet lives under it. */
export function normalisePrefix(prefix: unknown): string {
  if (typeof prefix !== 'string' || !/^\/[^\s]*$/.test(prefix) || /\/\//.test(prefix)) {
    throw invalidArgument(`prefix ${JSON.stringify(prefix)} must be a key path such as /berth/fleet`);
  }
  const trimmed = prefix.replace(/\/+$/, '');
  if (trimmed === '') throw invalidArgument('prefix "/" would put the fleet at the root of etcd: name a folder such as /berth/fleet');
  return trimmed;
}

/**
 * The lease's TTL in whole seconds. etcd silently raises a TTL under its minimum (1.5 × the
 * election timeout: 2 s with the defaults), so a smaller one is refused rather than pretended.
 */
export function validateLeaseTtl(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 2 || value > 3600) {
    throw invalidArgument(`lease_ttl_s ${JSON.stringify(value)} must be a whole number of seconds from 2 to 3600 (etcd's minimum TTL is 2 s)`);
  }
  return value;
}
