// Requests to another berth node's registry listener (issue 12): a blob, or what a tag names, from
// the peer's own store only. Every request says it comes from a peer (`Berth-Peer: <node>`), and
// the peer then answers from what it holds or is fetching itself — never by fetching from its
// upstream or from its own peers — so requests cannot loop between nodes. A peer that is slow to
// answer is given up quickly (`connectTimeoutMs`, ≈200 ms): the pull has other sources.
import type { Readable } from 'node:stream';
import type { Agent } from 'undici';
import { BerthError, notFound } from '../../store/errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { loadUndici } from './client.js';
import { repository, type ImageReference } from './reference.js';
import { manifestAccept } from './resolver.js';

/** The header that marks a request from a peer (the registry listener serves it from its store only). */
export const peerHeader = 'berth-peer';

export interface PeerClientOptions {
  /** This node's name, sent with every request. */
  node: string;
  /** The fleet's registry token (`Authorization: Bearer`), when the listeners require one. */
  token?: string;
  /** Connection and response headers, each within this (default 200 ms). */
  connectTimeoutMs?: number;
  /** A body that sends nothing for this long is cut (default 15 s). */
  idleTimeoutMs?: number;
}

export class PeerClient {
  private agent?: Promise<Agent>;
  private readonly connectTimeoutMs: number;
  private readonly idleTimeoutMs: number;

  constructor(private readonly o: PeerClientOptions) {
    this.connectTimeoutMs = o.connectTimeoutMs ?? 200;
    this.idleTimeoutMs = o.idleTimeoutMs ?? 15_000;
  }

  /** The bytes of `desc` from `offset` on, from the peer at `address` (`host:port`). */
  async blob(address: string, ref: ImageReference, desc: Descriptor, offset: number, signal?: AbortSignal): Promise<Readable> {
    const res = await this.send(address, 'GET', `${repository(ref)}/blobs/${desc.digest}`, ref, offset > 0 ? { range: `bytes=${offset}-` } : {}, signal);
    if (res.statusCode === 200 && offset === 0) return res.body;
    if (res.statusCode === 206 && String(res.headers['content-range'] ?? '').startsWith(`bytes ${offset}-`)) return res.body;
    await res.body.dump().catch(() => {});
    if (res.statusCode === 404) throw notFound(`peer ${address}: blob ${desc.digest}: not held`);
    throw new BerthError('unavailable', `peer ${address}: blob ${desc.digest} from ${offset}: status ${res.statusCode}`);
  }

  /** What `ref`'s tag names in the peer's image records. */
  async resolve(address: string, ref: ImageReference, signal?: AbortSignal): Promise<Descriptor> {
    const object = ref.digest ?? ref.tag;
    const res = await this.send(address, 'HEAD', `${repository(ref)}/manifests/${object}`, ref, { accept: manifestAccept }, signal);
    await res.body.dump().catch(() => {});
    if (res.statusCode === 404) throw notFound(`peer ${address}: ${ref}: not found`);
    if (res.statusCode !== 200) throw new BerthError('unavailable', `peer ${address}: ${ref}: status ${res.statusCode}`);
    const mediaType = String(res.headers['content-type'] ?? '').split(';')[0].trim();
    const digest = res.headers['docker-content-digest'];
    const size = Number(res.headers['content-length']);
    if (typeof digest !== 'string' || !mediaType || !Number.isSafeInteger(size) || size <= 0) {
      throw new BerthError('unavailable', `peer ${address}: ${ref}: the answer lacks a digest, a media type or a size`);
    }
    return { mediaType, digest, size };
  }

  async close(): Promise<void> {
    const agent = this.agent;
    this.agent = undefined;
    if (agent) await (await agent).close();
  }

  private async send(address: string, method: 'GET' | 'HEAD', path: string, ref: ImageReference, headers: Record<string, string>, signal?: AbortSignal) {
    const undici = await loadUndici();
    this.agent ??= Promise.resolve(
      new undici.Agent({ connect: { timeout: this.connectTimeoutMs }, headersTimeout: this.connectTimeoutMs, bodyTimeout: this.idleTimeoutMs }),
    );
    const url = `http://${address}/v2/${path}?ns=${encodeURIComponent(ref.domain)}`;
    try {
      return await undici.request(url, {
        method,
        dispatcher: await this.agent,
        headers: {
          ...headers,
          [peerHeader]: this.o.node,
          'user-agent': 'berth-peer/0.1',
          ...(this.o.token ? { authorization: `Bearer ${this.o.token}` } : {}),
        },
        signal,
      });
    } catch (err) {
      signal?.throwIfAborted();
      throw new BerthError('unavailable', `peer ${address}: ${(err as Error).message}`, { cause: err });
    }
  }
}
