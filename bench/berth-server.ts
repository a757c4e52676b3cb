// The berth server as the benchmarks run it (`node bin/berth.js serve` on a free port, a root of
// its own), and the few API calls they make of it: pull, list the stores, delete an image.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseToml } from 'smol-toml';
import { request } from 'undici';
import { freePort } from '../test/fixtures/registry.js';
import { onCleanup, SetupError, stopProcess, waitReady } from './harness.js';

const projectDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const berthBin = join(projectDir, 'bin', 'berth.js');

/** The server runs from dist/: stops the bench with a SetupError when it has not been compiled. */
export function requireBuilt(): void {
  if (!existsSync(join(projectDir, 'dist', 'src', 'cli', 'main.js'))) {
    throw new SetupError('dist/ is missing: compile first with `npx tsc -p .`');
  }
}

export interface Berth {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

export interface BerthOptions {
  /** Run node with `--cpu-prof` into this folder. */
  cpuProfDir?: string;
  /** The server's `--config` file. */
  config?: string;
  /** How long to wait for `/healthz` (default 20 s). */
  readyMs?: number;
}

/** Starts the server from dist/ (`--log-level warn`) and waits for `/healthz`; stopped at cleanup. */
export async function startBerth(root: string, state: string, opts: BerthOptions = {}): Promise<Berth> {
  const port = await freePort();
  const nodeArgs = opts.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir] : [];
  const child = spawn(
    process.execPath,
    [
      ...nodeArgs,
      berthBin,
      // --address is the program's option: before the command, so that it holds with positional options too
      '--address', `127.0.0.1:${port}`,
      'serve',
      '--root', root,
      '--state', state,
      '--log-level', 'warn',
      ...(opts.config ? ['--config', opts.config] : []),
    ],
    { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, NODE_OPTIONS: '' } },
  );
  const stop = () => stopProcess(child, 'berth'); // SIGTERM: berth closes its store; --cpu-prof writes its profile
  onCleanup(stop);
  const url = `http://127.0.0.1:${port}`;
  await waitReady(child, 'berth', async () => {
    const res = await request(`${url}/healthz`);
    await res.body.dump();
    return res.statusCode === 200;
  }, () => '(its output is above)', opts.readyMs);
  return { url, pid: child.pid!, stop };
}

export async function api(url: string, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await request(`${url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  return { status: res.statusCode, json };
}

export interface UnpackResult {
  snapshotter: string;
  chainId: string;
  unpacked: number;
  existing: number;
}

export interface PullResult {
  id: string;
  state: string;
  error?: { code: string; message: string };
  image?: string;
  bytesFetched: number;
  blobs: Array<{ digest: string; size: number; state: string }>;
  unpacks?: UnpackResult[];
}

export interface PullRequest {
  ref: string;
  unpack?: boolean;
  snapshotter?: string;
}

/** One `POST /v1/pulls?wait=true`: answers when the pull has ended; it must have succeeded. */
export async function berthPull(url: string, pull: PullRequest): Promise<PullResult> {
  const { status, json } = await api(url, 'POST', '/v1/pulls?wait=true', pull);
  if (status !== 200) throw new Error(`POST /v1/pulls?wait=true ${pull.ref}: HTTP ${status}: ${JSON.stringify(json)}`);
  const result = json as PullResult;
  if (result.state !== 'done') throw new Error(`pull ${result.id} of ${pull.ref} ended ${result.state}: ${JSON.stringify(result.error)}`);
  return result;
}

/** The digests (and sizes) in berth's content store, and the number of open ingests. */
export async function berthStore(url: string): Promise<{ blobs: Map<string, number>; ingests: number }> {
  const content = await api(url, 'GET', '/v1/content');
  if (content.status !== 200) throw new Error(`GET /v1/content: HTTP ${content.status}`);
  const ingests = await api(url, 'GET', '/v1/ingests');
  if (ingests.status !== 200) throw new Error(`GET /v1/ingests: HTTP ${ingests.status}`);
  const items = (content.json as { items: Array<{ digest: string; size: number }> }).items;
  return { blobs: new Map(items.map((i) => [i.digest, i.size])), ingests: (ingests.json as { items: unknown[] }).items.length };
}

/** The snapshots of one snapshotter: key, kind and parent. */
export async function berthSnapshots(url: string, snapshotter: string): Promise<Array<{ name: string; kind: string; parent?: string }>> {
  const res = await api(url, 'GET', `/v1/snapshotters/${encodeURIComponent(snapshotter)}/snapshots`);
  if (res.status !== 200) throw new Error(`GET snapshots of ${snapshotter}: HTTP ${res.status}: ${JSON.stringify(res.json)}`);
  return (res.json as { items: Array<{ name: string; kind: string; parent?: string }> }).items;
}

/**
 * Deletes the image (`?sync=true`: what it held is collected before the answer); the content
 * store must be empty then, and so must `snapshotter`, when one is named.
 */
export async function berthReset(url: string, name: string, snapshotter?: string): Promise<void> {
  const del = await api(url, 'DELETE', `/v1/images/${encodeURIComponent(name)}?sync=true`);
  if (del.status !== 204 && del.status !== 404) throw new Error(`DELETE image ${name}: HTTP ${del.status}: ${JSON.stringify(del.json)}`);
  const left = await berthStore(url);
  if (left.blobs.size > 0 || left.ingests > 0) {
    throw new Error(`berth's store is not empty after deleting ${name} with ?sync=true: ${left.blobs.size} blob(s), ${left.ingests} ingest(s)`);
  }
  if (snapshotter) {
    const snapshots = await berthSnapshots(url, snapshotter);
    if (snapshots.length > 0) throw new Error(`berth's ${snapshotter} snapshotter is not empty after deleting ${name} with ?sync=true: ${snapshots.map((s) => s.name).join(' ')}`);
  }
}

/** After a pull: the store holds exactly the image's blobs, at their sizes. */
export async function checkBerthHas(url: string, expected: Map<string, number>): Promise<void> {
  const { blobs } = await berthStore(url);
  for (const [digest, size] of expected) {
    if (blobs.get(digest) !== size) throw new Error(`berth's store: ${digest} is ${blobs.has(digest) ? `${blobs.get(digest)} bytes, expected ${size}` : 'missing'}`);
  }
  if (blobs.size !== expected.size) throw new Error(`berth's store holds ${blobs.size} blobs, expected ${expected.size}`);
}

/** The user's berth config file (`--berth-config`), parsed; {} without one. */
export async function readBerthConfig(file: string | undefined): Promise<Record<string, any>> {
  if (!file) return {};
  try {
    return parseToml(await readFile(file, 'utf8')) as Record<string, any>;
  } catch (err) {
    throw new SetupError(`--berth-config ${file}: ${(err as Error).message}`);
  }
}
