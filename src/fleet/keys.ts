// The fleet's layout in etcd, under one prefix (default `/berth/fleet`), every key on the lease of
// the node that wrote it, so that a node that dies takes all of its keys with it:
//
//   <prefix>/nodes/<node>           {"name", "address", "startedAt"}    a member of the fleet
//   <prefix>/blobs/<digest>/<node>  {"size", "offset", "complete"}      <node> holds (part of) <digest>
//   <prefix>/claims/<digest>        <node>                              <node> fetches <digest> upstream
//
// Digests (`sha256:<hex>`) and node names contain no `/`, so each key splits unambiguously.
import { parseTimestamp } from '../oci/time.js';

export interface NodeRecord {
  name: string;
  /** Where the node's registry listener is reached, `host:port`. */
  address: string;
  /** RFC 3339: when the node's fleet service started. */
  startedAt: string;
}

export interface Advertisement {
  size: number;
  /** Bytes held so far (= size once complete). */
  offset: number;
  complete: boolean;
}

export type ParsedKey =
  | { kind: 'node'; node: string }
  | { kind: 'blob'; digest: string; node: string }
  | { kind: 'claim'; digest: string };

export class FleetKeys {
  /** `<prefix>/`: the range every node lists and watches. */
  readonly dir: string;

  constructor(prefix: string) {
    this.dir = `${prefix}/`;
  }

  node(name: string): string {
    return `${this.dir}nodes/${name}`;
  }

  blob(digest: string, node: string): string {
    return `${this.dir}blobs/${digest}/${node}`;
  }

  claim(digest: string): string {
    return `${this.dir}claims/${digest}`;
  }

  /** What a key under the prefix is; undefined for anything else (another tool's key, a later layout). */
  parse(key: string): ParsedKey | undefined {
    if (!key.startsWith(this.dir)) return undefined;
    const parts = key.slice(this.dir.length).split('/');
    if (parts[0] === 'nodes' && parts.length === 2 && parts[1]) return { kind: 'node', node: parts[1] };
    if (parts[0] === 'blobs' && parts.length === 3 && parts[1] && parts[2]) return { kind: 'blob', digest: parts[1], node: parts[2] };
    if (parts[0] === 'claims' && parts.length === 2 && parts[1]) return { kind: 'claim', digest: parts[1] };
    return undefined;
  }
}

/** A node record's value, or undefined when it is not one this node can use (no address to reach). */
export function parseNodeRecord(value: string): NodeRecord | undefined {
  const v = parseJson(value);
  if (typeof v?.name !== 'string' || typeof v.address !== 'string' || !v.address) return undefined;
  if (typeof v.startedAt !== 'string' || !parseTimestamp(v.startedAt)) return undefined;
  return { name: v.name, address: v.address, startedAt: v.startedAt };
}

/** An advertisement's value, or undefined when malformed (never trusted as a source of bytes). */
export function parseAdvertisement(value: string): Advertisement | undefined {
  const v = parseJson(value);
  const count = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (!count(v?.size) || !count(v.offset) || typeof v.complete !== 'boolean' || v.offset > v.size) return undefined;
  return { size: v.size, offset: v.offset, complete: v.complete };
}

function parseJson(value: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(value);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
