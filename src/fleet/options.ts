// The fleet's settings checked before anything connects: a typo in an endpoint, a node name or a
// prefix is a start-up error naming the value, never a node that silently works alone forever.
import { invalidArgument } from '../../store/errors.js';

/**
 * `http://HOST:PORT` (port 2379 when left out, as etcd's own clients assume) → `HOST:PORT`, what
 * the gRPC client dials. TLS (`https://`) needs certificates the configuration cannot give yet,
 * so it is refused rather than dialled in plain text.
 */
export function parseEndpoint(value: unknown): string {
  const what = `etcd_endpoints: ${JSON.stringify(value)}`;
  if (typeof value !== 'string' || value === '') throw invalidArgument(`${what} is not an etcd URL (expected http://HOST:PORT)`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalidArgument(`${what} is not an etcd URL (expected http://HOST:PORT)`);
  }
  if (url.protocol === 'https:') throw invalidArgument(`${what}: TLS endpoints are not supported yet (use http://HOST:PORT)`);
  if (url.protocol !== 'http:') throw invalidArgument(`${what}: unsupported scheme ${url.protocol} (expected http://HOST:PORT)`);
  if (!url.hostname) throw invalidArgument(`${what}: no host (expected http://HOST:PORT)`);
  if (url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) {
    throw invalidArgument(`${what}: an etcd endpoint is only http://HOST:PORT (no path, query or credentials)`);
  }
  return `${url.hostname}:${url.port || '2379'}`;
}

/** `etcd_endpoints`: a non-empty list of URLs. */
export function parseEndpoints(value: unknown): string[] {
  if (!Array.isArray(value)) {
    throw invalidArgument(`etcd_endpoints: ${JSON.stringify(value)} must be a list of URLs, e.g. ["http://10.0.0.5:2379"]`);
  }
  if (value.length === 0) throw invalidArgument('etcd_endpoints: the list is empty (leave it unset to work alone)');
  return value.map(parseEndpoint);
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
