// Fleet benchmark (issue 12): N berth nodes on this machine — separate `berth serve` processes,
// each with its own root, state, management API and registry listener on loopback, all joined to
// ONE real etcd (Debian's etcd-server, test/fixtures/etcd.ts) — pull one image at once from ONE
// upstream (Debian's docker-registry) that they reach through a loopback link capped at
// `--rate` MB/s (a throttle of this file's own, shared by every connection) and a counting proxy
// (test/fixtures/proxy.ts) that counts what the upstream sent. Beside each fleet step, the same
// number of nodes with the fleet switched off (no `[plugins."io.berth.service.v1.fleet"]`).
// Cases, on fresh roots every round:
//   1. N = 1, 4, 8 nodes (`--nodes`) start their pull (`POST /v1/pulls`) together — upstream
//      bytes per image (goal 1.00x with the fleet at every N; without it about Nx) and the
//      slowest node's wall time over one node alone without the fleet (T1; goal <= 1.25x at
//      N = 8);
//   2. a fresh node pulls the image one node holds (a warm peer) — goal: at least 85% faster
//      than T1, the pull from the capped upstream;
//   3. a node of the largest fleet is SIGKILLed: the time until it has left every other node's
//      `GET /v1/fleet/nodes` (goal: TTL + 1 s at most);
//   4. switching away from a dead peer: a fresh node pulls from two nodes that hold the image,
//      and the peer serving it most is SIGKILLed when `--kill-at` of the image has arrived — the
//      time added to an undisturbed pull from the same two peers (goal <= 300 ms).
// Prints medians, min/max, the upstream bytes, ratios, where the pulls say their bytes came from
// (when berth reports it) and a verdict per goal. It asserts nothing.
//
//   npx tsc -p . && node --import tsx bench/fleet.ts [--size-mib 256] [--layers 4] [--rounds 3]
//       [--nodes 1,4,8] [--rate 25] [--ttl 2] [--kill-at 0.4] [--berth-config FILE]
//
// It installs nothing: docker-registry and etcd must be there (Debian: `apt-get install
// docker-registry etcd-server`); it says so and stops when one is missing.
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify as stringifyToml } from 'smol-toml';
import { api, berthPull, berthStore, readBerthConfig, requireBuilt, startBerth, type PullResult } from './berth-server.js';
import { benchArgs, onCleanup, positiveIntegers, requireTools, run, runBench, SetupError, settle, sleep } from './harness.js';
import { clkTck, median, noiseLine, printRatio, printVerdict, procCpuSeconds, ratio, startNoise, upstreamSent } from './measure.js';
import { BENCH_IMAGE, pushBenchImages } from './big-image.js';
import { startEtcd, type Etcd } from '../test/fixtures/etcd.js';
import { startProxy, type Proxy } from '../test/fixtures/proxy.js';
import { freePort, REGISTRY_BIN, startRegistry, type Registry } from '../test/fixtures/registry.js';

const MB = 1e6;
const targets = { upstream: 1.0, slowestRatio: 1.25, warmFaster: 0.85, goneExtraS: 1, switchMs: 300 };
const { repo: REPO, warmRepo: WARM_REPO, tag: TAG } = BENCH_IMAGE;
const REGISTRY_PLUGIN = 'io.berth.service.v1.registry';
const FLEET_PLUGIN = 'io.berth.service.v1.fleet';
const ETCD_BIN = '/usr/bin/etcd';

type Mode = 'on' | 'off';

// ---- the capped link to the upstream ------------------------------------------------------------

interface Throttle {
  /** '127.0.0.1:PORT' */
  host: string;
  stop(): Promise<void>;
}

/**
 * A TCP forwarder to `target` whose responses (target → client) share one link of
 * `bytesPerSecond`: each chunk the target sends takes the link's next free slot (first come, first
 * served over every connection) and is passed on when its slot ends; the connection's reads pause
 * meanwhile, so nothing piles up here. Requests pass unthrottled. A burst of 64 KiB is allowed.
 */
async function startThrottle(target: string, bytesPerSecond: number): Promise<Throttle> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const msPerByte = 1000 / bytesPerSecond;
  const burstMs = 64 * 1024 * msPerByte;
  let free = 0; // performance.now() at which the link has sent everything given to it
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => sockets.delete(s));
    }
    const destroy = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', destroy);
    upstream.on('error', destroy);
    client.pipe(upstream);
    let held = 0; // chunks waiting for their slot
    let ended = false;
    const deliver = (b: Buffer) => {
      held--;
      if (client.destroyed) return;
      if (client.write(b)) upstream.resume();
      else client.once('drain', () => upstream.resume());
      if (ended && held === 0) client.end();
    };
    upstream.on('data', (b: Buffer) => {
      const now = performance.now();
      free = Math.max(free, now - burstMs) + b.length * msPerByte;
      held++;
      upstream.pause();
      const wait = free - now;
      if (wait >= 1) setTimeout(deliver, wait, b);
      else deliver(b);
    });
    upstream.on('end', () => {
      ended = true;
      if (held === 0) client.end();
    });
    upstream.on('close', () => {
      if (!ended) client.destroy();
    });
  });
  await new Promise<void>((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolvePromise());
  });
  return {
    host: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    stop: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

// ---- nodes --------------------------------------------------------------------------------------

interface Node {
  name: string;
  /** The management API. */
  url: string;
  pid: number;
  /** host:port of its registry listener (what peers fetch from). */
  registry: string;
  /** SIGKILL, no word to anyone. */
  kill(): void;
  /** Stops it (if still running) and removes its root and state. */
  stop(): Promise<void>;
}

/** What a pull says once the fleet's pull side is in (issue 12 part 2); absent before. */
interface FleetPull extends PullResult {
  startedAt: string;
  finishedAt?: string;
  bytesFromUpstream?: number;
  bytesFromPeers?: number;
  blobs: Array<PullResult['blobs'][number] & { offset?: number; sources?: Record<string, number> }>;
}

/** Seconds from the server's `startedAt` to its `finishedAt` (ms resolution, the server's clock). */
const serverSeconds = (p: FleetPull): number => (Date.parse(p.finishedAt!) - Date.parse(p.startedAt)) / 1000;

async function fleetView(node: Node): Promise<string[]> {
  const res = await api(node.url, 'GET', '/v1/fleet/nodes');
  if (res.status !== 200) throw new Error(`${node.name}: GET /v1/fleet/nodes: HTTP ${res.status}: ${JSON.stringify(res.json)}`);
  return (res.json as { items: Array<{ name: string }> }).items.map((i) => i.name).sort();
}

/** Waits until every node of `nodes` sees exactly `nodes` in its fleet view. */
async function waitJoined(nodes: Node[], ms = 30_000): Promise<void> {
  const want = nodes.map((n) => n.name).sort().join(' ');
  const deadline = Date.now() + ms;
  for (const node of nodes) {
    for (;;) {
      const seen = (await fleetView(node)).join(' ');
      if (seen === want) break;
      if (Date.now() > deadline) throw new Error(`${node.name} sees [${seen}] in its fleet ${ms / 1000} s after start, expected [${want}]`);
      await sleep(50);
    }
  }
}

/** The fleet plugin's etcd lease as `GET /v1/plugins` exports it (a new one means the node joined afresh). */
async function fleetLease(node: Node): Promise<string> {
  const res = await api(node.url, 'GET', '/v1/plugins');
  if (res.status !== 200) throw new Error(`${node.name}: GET /v1/plugins: HTTP ${res.status}`);
  const items = (res.json as { items: Array<{ type: string; id: string; exports?: Record<string, unknown> }> }).items;
  const fleet = items.find((i) => i.id === 'fleet');
  return `${fleet?.exports?.state ?? '-'}:${fleet?.exports?.lease ?? '-'}`;
}

/**
 * Records each node's lease now, and says (in `odd`) which nodes hold another one than at the
 * previous call, naming the phase in between: a node whose lease expired under load joined afresh.
 */
function leaseWatch(nodes: Node[], tag: string, odd: string[]): (phase: string) => Promise<void> {
  let last: string[] | undefined;
  return async (phase) => {
    const now = await Promise.all(nodes.map(fleetLease));
    if (last) {
      for (const [i, n] of nodes.entries()) {
        if (now[i] !== last[i]) odd.push(`${tag}: ${n.name}'s fleet lease changed during ${phase} (state:lease ${last[i]} -> ${now[i]})`);
      }
    }
    last = now;
  };
}

/** What the node's registry listener served to peers (`bytesServedToPeers`; all it served where berth does not count that apart). */
async function bytesServedToPeers(node: Node): Promise<number> {
  const res = await api(node.url, 'GET', '/v1/registry/stats');
  if (res.status !== 200) throw new Error(`${node.name}: GET /v1/registry/stats: HTTP ${res.status}`);
  const stats = res.json as { bytesServed: number; bytesServedToPeers?: number };
  return stats.bytesServedToPeers ?? stats.bytesServed;
}

/** Every one of `want` (digest → size) committed in the node's store. */
async function checkHolds(node: Node, want: Map<string, number>, what: string): Promise<void> {
  const { blobs } = await berthStore(node.url);
  for (const [digest, size] of want) {
    if (blobs.get(digest) !== size) throw new Error(`${node.name} after ${what}: ${digest} is ${blobs.has(digest) ? `${blobs.get(digest)} bytes, expected ${size}` : 'missing'}`);
  }
}

/** Waits until the upstream has sent nothing for `quietMs`; the bytes that came after the call. */
async function waitQuiet(proxy: Proxy, quietMs = 500, ms = 60_000): Promise<number> {
  const start = proxy.bytesFromUpstream;
  let last = start;
  let since = Date.now();
  const deadline = Date.now() + ms;
  while (Date.now() - since < quietMs && Date.now() < deadline) {
    await sleep(50);
    if (proxy.bytesFromUpstream !== last) {
      last = proxy.bytesFromUpstream;
      since = Date.now();
    }
  }
  return last - start;
}

/** Where pulls say their bytes came from, summed: `bytesFromUpstream`, `bytesFromPeers` and per-blob `sources`. */
function sourcesOf(pulls: FleetPull[]): { upstream?: number; peers?: number; bySource: Map<string, number> } {
  const bySource = new Map<string, number>();
  let upstream: number | undefined;
  let peers: number | undefined;
  for (const p of pulls) {
    if (typeof p.bytesFromUpstream === 'number') upstream = (upstream ?? 0) + p.bytesFromUpstream;
    if (typeof p.bytesFromPeers === 'number') peers = (peers ?? 0) + p.bytesFromPeers;
    for (const b of p.blobs) {
      for (const [source, n] of Object.entries(b.sources ?? {})) {
        // "peer node-3" → "peer": one line per kind of source, not per node
        const kind = source.split(' ')[0];
        bySource.set(kind, (bySource.get(kind) ?? 0) + n);
      }
    }
  }
  return { upstream, peers, bySource };
}

/** A pull's bytes by source name, over all its blobs: "peer holder-a 12.3 MB, upstream 0.0 MB". */
const peerSources = (p: FleetPull): string => {
  const by = new Map<string, number>();
  for (const b of p.blobs) for (const [k, v] of Object.entries(b.sources ?? {})) by.set(k, (by.get(k) ?? 0) + v);
  return by.size > 0 ? [...by].map(([k, v]) => `${k} ${(v / MB).toFixed(1)} MB`).join(', ') : '(not reported)';
};

const showSources = (s: ReturnType<typeof sourcesOf>, total: number): string => {
  const parts: string[] = [];
  if (s.upstream !== undefined) parts.push(`bytesFromUpstream ${(s.upstream / total).toFixed(2)}x`);
  if (s.peers !== undefined) parts.push(`bytesFromPeers ${(s.peers / total).toFixed(2)}x`);
  if (s.bySource.size > 0) parts.push(`sources {${[...s.bySource].map(([k, v]) => `${k}: ${(v / total).toFixed(2)}x`).join(', ')}}`);
  return parts.length > 0 ? parts.join(', ') : 'no source figures in the pull results (bytesFromUpstream/bytesFromPeers/sources absent)';
};

// ---- CPU of processes that come and go ------------------------------------------------------------

/** CPU seconds of this process and of its reaped children (user + system), from /proc/self/stat. */
function selfAndChildrenCpu(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / clkTck;
}

/** The pid of the etcd whose data lives in `dir` (the fixture does not say). */
function etcdPid(dir: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.startsWith(ETCD_BIN) && cmd.includes(dir)) return Number(entry);
    } catch {
      // gone
    }
  }
  return undefined;
}

const cpuOf = (pid: number | undefined): number => {
  if (pid === undefined) return 0;
  try {
    return procCpuSeconds(pid);
  } catch {
    return 0; // gone
  }
};

// ---- the benchmark ------------------------------------------------------------------------------

interface Row {
  name: string;
  seconds: number[];
  /** Body bytes the upstream sent during the step, over the image size, per round. */
  upstream: number[];
}

const newRow = (name: string): Row => ({ name, seconds: [], upstream: [] });

async function main(): Promise<void> {
  const values = benchArgs(
    'usage: node --import tsx bench/fleet.ts [--size-mib 256] [--layers 4] [--rounds 3] [--nodes 1,4,8]\n' +
      '                                      [--rate 25] [--ttl 2] [--kill-at 0.4] [--berth-config FILE]\n' +
      '  --rate MB/s of the link to the upstream (all connections together); --ttl the fleet\'s lease_ttl_s;\n' +
      '  --kill-at the share of the image a node has pulled from its peers when the one serving it is SIGKILLed',
    {
      'size-mib': { type: 'string', default: '256' },
      layers: { type: 'string', default: '4' },
      rounds: { type: 'string', default: '3' },
      nodes: { type: 'string', default: '1,4,8' },
      rate: { type: 'string', default: '25' },
      ttl: { type: 'string', default: '2' },
      'kill-at': { type: 'string', default: '0.4' },
      'berth-config': { type: 'string' },
    },
  );
  if (!values) return;
  const { 'size-mib': sizeMiB, layers: layerCount, rounds, rate, ttl } = positiveIntegers(values, ['size-mib', 'layers', 'rounds', 'rate', 'ttl']);
  const killAt = Number(values['kill-at']);
  if (!(killAt > 0 && killAt < 1)) throw new SetupError('--kill-at must be a number between 0 and 1');
  const counts = values.nodes!.split(',').map((s) => Number(s.trim()));
  if (counts.some((n) => !Number.isInteger(n) || n <= 0)) throw new SetupError('--nodes must be positive integers separated by commas, e.g. 1,4,8');
  // One node alone without the fleet is T1, the reference of every ratio: always measured.
  const ns = [...new Set([1, ...counts])].sort((a, b) => a - b);
  const maxN = ns.at(-1)!;
  const baseConfig = await readBerthConfig(values['berth-config'] ? resolve(values['berth-config']) : undefined);
  requireBuilt();
  requireTools([[REGISTRY_BIN, 'docker-registry'], [ETCD_BIN, 'etcd-server']], "The fleet benchmark needs Debian's docker-registry and etcd-server");

  const dir = await mkdtemp(join(tmpdir(), 'berth-bench-fleet-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  const scratchDir = join(dir, 'scratch');
  await mkdir(scratchDir);

  console.log(
    `berth fleet benchmark: ${sizeMiB} MiB in ${layerCount} layer(s), ${rounds} round(s), N = ${ns.join(', ')} node(s), ` +
      `the upstream capped at ${rate} MB/s, lease_ttl_s ${ttl}; each N with the fleet on and off; MB = 10^6 bytes`,
  );
  console.log(`node ${process.version}, ${availableParallelism()} CPU(s); the upstream, etcd, the nodes, the bench and its proxies share them`);
  console.log(`  ${(await run(REGISTRY_BIN, ['--version'])).trim()}`);
  console.log(`  ${(await run(ETCD_BIN, ['--version'])).trim().split('\n')[0]}`);

  // ---- etcd, the upstream, the image, the capped and counted link ----
  const etcd: Etcd = await startEtcd();
  onCleanup(() => etcd.destroy());
  const upstream: Registry = await startRegistry();
  onCleanup(() => upstream.stop());
  console.log("file systems (temp folder: the nodes' roots; the registry's storage):");
  for (const line of (await run('df', ['-PT', dir, upstream.storageDir])).trimEnd().split('\n')) console.log(`  ${line}`);
  const { image, expected, total, warmImage } = await pushBenchImages(upstream, BENCH_IMAGE, sizeMiB, layerCount);
  const warmExpected = new Map<string, number>([[warmImage.digest, warmImage.size], ...warmImage.blobs.map((b) => [b.digest, b.size] as [string, number])]);
  await run('sync', []);
  // nodes → counting proxy → throttle (the capped link) → docker-registry
  const throttle = await startThrottle(upstream.host, rate * MB);
  onCleanup(() => throttle.stop());
  const proxy = await startProxy(throttle.host);
  onCleanup(() => proxy.stop());
  const ref = `${proxy.host}/${REPO}:${TAG}`;
  const warmRef = `${proxy.host}/${WARM_REPO}:${TAG}`;
  console.log(`nodes pull ${ref} (plain HTTP on loopback); etcd at ${etcd.endpoint}`);

  // ---- nodes ----
  let serial = 0;
  const startNode = async (name: string, fleetPrefix?: string): Promise<Node> => {
    const home = join(dir, `node-${++serial}`);
    await mkdir(home);
    const port = await freePort();
    const plugins: Record<string, unknown> = {
      ...baseConfig.plugins,
      [REGISTRY_PLUGIN]: { ...baseConfig.plugins?.[REGISTRY_PLUGIN], address: `127.0.0.1:${port}` },
    };
    if (fleetPrefix) {
      plugins[FLEET_PLUGIN] = {
        ...baseConfig.plugins?.[FLEET_PLUGIN],
        etcd_endpoints: [etcd.endpoint],
        node_name: name,
        lease_ttl_s: ttl,
        prefix: fleetPrefix,
      };
    } else {
      delete plugins[FLEET_PLUGIN];
    }
    const config = join(home, 'berth.toml');
    await writeFile(config, stringifyToml({ ...baseConfig, plugins }));
    const server = await startBerth(join(home, 'root'), join(home, 'state'), { config, readyMs: 120_000 });
    let stopped = false;
    return {
      name,
      url: server.url,
      pid: server.pid,
      registry: `127.0.0.1:${port}`,
      kill() {
        try {
          process.kill(server.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await server.stop();
        await rm(home, { recursive: true, force: true });
      },
    };
  };
  /** `count` nodes named `<prefix>-1`..., started side by side; in a fleet of their own (joined) when `fleetPrefix` is given. */
  const startNodes = async (names: string[], fleetPrefix?: string): Promise<Node[]> => {
    // As many at a time as there are CPUs: a start is CPU-bound, and all at once on a small
    // machine only makes each slower (and starves the first ones' etcd keep-alives).
    const nodes: Node[] = [];
    const width = availableParallelism();
    for (let i = 0; i < names.length; i += width) nodes.push(...(await Promise.all(names.slice(i, i + width).map((name) => startNode(name, fleetPrefix)))));
    if (fleetPrefix) await waitJoined(nodes);
    return nodes;
  };
  const stopNodes = (nodes: Node[]) => Promise.all(nodes.map((n) => n.stop()));
  let fleets = 0;
  const newPrefix = (what: string) => `/bench/${process.pid}/${++fleets}-${what}`;
  /** The untimed first pull of fresh nodes: the small image, all at once; then the upstream is quiet. */
  const warmUp = async (nodes: Node[]) => {
    await Promise.all(nodes.map((n) => berthPull(n.url, { ref: warmRef })));
    for (const n of nodes) await checkHolds(n, warmExpected, 'the warm-up pull');
    await waitQuiet(proxy);
  };

  /** All `nodes` start pulling the image at once (`POST /v1/pulls?wait=true`); each one's seconds from the common start. */
  const pullTogether = async (nodes: Node[]): Promise<{ each: number[]; pulls: FleetPull[]; spreadMs: number }> => {
    const each: number[] = [];
    const t0 = performance.now();
    const pulls = await Promise.all(
      nodes.map(async (n, i) => {
        const p = (await berthPull(n.url, { ref })) as FleetPull;
        each[i] = (performance.now() - t0) / 1000;
        return p;
      }),
    );
    const starts = pulls.map((p) => Date.parse(p.startedAt));
    for (const n of nodes) await checkHolds(n, expected, `pulling ${ref}`);
    return { each, pulls, spreadMs: Math.max(...starts) - Math.min(...starts) };
  };

  /**
   * One pull started with `POST /v1/pulls` and followed with `GET /v1/pulls/{id}` every 20 ms;
   * `onProgress` sees it each time with the bytes arrived so far (blobs done at their size).
   */
  const pullWatched = async (node: Node, onProgress: (p: FleetPull, arrived: number) => Promise<void>): Promise<FleetPull> => {
    const post = await api(node.url, 'POST', '/v1/pulls', { ref });
    if (post.status !== 202) throw new Error(`POST /v1/pulls ${ref} on ${node.name}: HTTP ${post.status}: ${JSON.stringify(post.json)}`);
    const id = (post.json as FleetPull).id;
    for (;;) {
      const res = await api(node.url, 'GET', `/v1/pulls/${encodeURIComponent(id)}`);
      if (res.status !== 200) throw new Error(`GET /v1/pulls/${id} on ${node.name}: HTTP ${res.status}: ${JSON.stringify(res.json)}`);
      const p = res.json as FleetPull;
      if (p.state !== 'running') return p;
      await onProgress(p, p.blobs.reduce((sum, x) => sum + (x.state === 'done' || x.state === 'exists' ? x.size : (x.offset ?? 0)), 0));
      await sleep(20);
    }
  };

  // ---- the rounds ----
  const rows = new Map<string, Row>();
  const row = (n: number, mode: Mode) => {
    const key = `${n}-${mode}`;
    if (!rows.has(key)) rows.set(key, newRow(`${n} node${n > 1 ? 's' : ''}, fleet ${mode}${n > 1 ? ' (slowest)' : n === 1 && mode === 'off' ? ' (T1)' : ''}`));
    return rows.get(key)!;
  };
  for (const n of ns) for (const mode of ['on', 'off'] as Mode[]) row(n, mode);
  const warmRow = newRow('fresh node from 1 warm peer');
  const undisturbedRow = newRow('fresh node from 2 peers, undisturbed *');
  const switchRow = newRow('fresh node from 2 peers, one SIGKILLed *');
  /** The fastest node of N, per step (info). */
  const fastest = new Map<string, number[]>();
  const spreads: number[] = [];
  const gone: number[] = [];
  const sourceLines: string[] = [];
  const oddities: string[] = [];
  /** Upstream GETs per blob in each N-node step: the smallest and largest count, per round. */
  const blobGets = new Map<string, Array<[number, number]>>();
  const switchNotes: string[] = [];
  /** Per round where both pulls completed: the SIGKILLed pull's seconds less the undisturbed one's, in ms. */
  const added: number[] = [];

  const ownCpu = () => selfAndChildrenCpu() + cpuOf(upstream.process.pid) + cpuOf(etcdPid(etcd.dir));
  const noise = startNoise(ownCpu);
  for (let r = 0; r < rounds; r++) {
    process.stdout.write(`round ${r + 1}/${rounds} (s):`);
    for (const [i, n] of ns.entries()) {
      // The order turns each round and each N: neither mode always goes first.
      const modes: Mode[] = (r + i) % 2 === 0 ? ['on', 'off'] : ['off', 'on'];
      for (const mode of modes) {
        const tag = `r${r + 1}-n${n}-${mode}`;
        const names = Array.from({ length: n }, (_, j) => `node-${j + 1}`);
        const nodes = await startNodes(names, mode === 'on' ? newPrefix(`n${n}`) : undefined);
        const leases = mode === 'on' ? leaseWatch(nodes, tag, oddities) : async () => {};
        await leases('start');
        await warmUp(nodes);
        await leases('the warm-up pull');
        await settle(scratchDir, total);
        await leases('the page-cache settling');
        proxy.reset();
        const { each, pulls, spreadMs } = await pullTogether(nodes);
        await leases('the timed pull');
        const late = await waitQuiet(proxy);
        if (late > 0) oddities.push(`${tag}: the upstream sent ${late} bytes after every pull had ended`);
        const sent = upstreamSent(proxy);
        const rw = row(n, mode);
        rw.seconds.push(Math.max(...each));
        rw.upstream.push(sent.body / total);
        spreads.push(spreadMs);
        if (spreadMs > 100) oddities.push(`${tag}: the pulls' startedAt were ${spreadMs} ms apart (the goal's setting is within 100 ms)`);
        const key = `${n}-${mode}`;
        fastest.set(key, [...(fastest.get(key) ?? []), Math.min(...each)]);
        const gets = image.blobs.map((b) => sent.blobGets.get(b.digest) ?? 0);
        blobGets.set(key, [...(blobGets.get(key) ?? []), [Math.min(...gets), Math.max(...gets)]]);
        sourceLines.push(`  ${tag}: ${showSources(sourcesOf(pulls), total)}`);
        process.stdout.write(` n${n}-${mode} ${Math.max(...each).toFixed(2)}`);
        if (mode === 'on') {
          // Nobody left the fleet during the pull (a lease that expired under load would show here).
          for (const node of nodes) {
            const seen = await fleetView(node);
            if (seen.length !== n) oddities.push(`${tag}: after the pull ${node.name} sees ${seen.length} node(s) [${seen.join(' ')}], expected ${n}`);
          }
          // 3. A node of the largest fleet SIGKILLed: how long until no other node lists it.
          if (n === maxN && n >= 2) {
            const victim = nodes.at(-1)!;
            const others = nodes.slice(0, -1);
            const t0 = performance.now();
            victim.kill();
            const times = await Promise.all(
              others.map(async (o) => {
                for (;;) {
                  const seen = await fleetView(o);
                  const t = (performance.now() - t0) / 1000;
                  if (!seen.includes(victim.name)) return t;
                  if (t > ttl + 30) return Infinity;
                  await sleep(20);
                }
              }),
            );
            gone.push(Math.max(...times));
            process.stdout.write(` gone ${Math.max(...times).toFixed(2)}`);
          }
        }
        await stopNodes(nodes);
      }
    }

    // 2 and 4. Peers: holder-a pulls from the upstream; holder-b from holder-a (the warm peer);
    // fresh-1 from both, undisturbed; fresh-2 from both, the one serving it SIGKILLed mid-pull.
    {
      const nodes = await startNodes(['holder-a', 'holder-b', 'fresh-1', 'fresh-2'], newPrefix('peers'));
      const [a, b, f1, f2] = nodes;
      const leases = leaseWatch(nodes, `r${r + 1}-peers`, oddities);
      await leases('start');
      await warmUp(nodes);
      await leases('the warm-up pull');
      await settle(scratchDir, total);
      await leases('the page-cache settling');
      await berthPull(a.url, { ref });
      await checkHolds(a, expected, `pulling ${ref}`);
      await waitQuiet(proxy);

      await settle(scratchDir, total);
      proxy.reset();
      const t0 = performance.now();
      const warm = (await berthPull(b.url, { ref })) as FleetPull;
      warmRow.seconds.push((performance.now() - t0) / 1000);
      await checkHolds(b, expected, `pulling ${ref} from a warm peer`);
      await waitQuiet(proxy);
      warmRow.upstream.push(upstreamSent(proxy).body / total);
      await leases("holder-a's pull and holder-b's pull from it");
      sourceLines.push(`  r${r + 1}-warm-peer: ${showSources(sourcesOf([warm]), total)}`);
      process.stdout.write(` warm-peer ${warmRow.seconds.at(-1)!.toFixed(2)}`);

      await settle(scratchDir, total);
      proxy.reset();
      // Followed as fresh-2's pull is below (the same polling load on the node).
      const undisturbed = await pullWatched(f1, async () => {});
      if (undisturbed.state !== 'done') throw new Error(`pull ${undisturbed.id} of ${ref} on ${f1.name} ended ${undisturbed.state}: ${JSON.stringify(undisturbed.error)}`);
      await checkHolds(f1, expected, `pulling ${ref} from two peers`);
      await waitQuiet(proxy);
      undisturbedRow.seconds.push(serverSeconds(undisturbed));
      undisturbedRow.upstream.push(upstreamSent(proxy).body / total);
      sourceLines.push(`  r${r + 1}-two-peers: ${showSources(sourcesOf([undisturbed]), total)}`);
      process.stdout.write(` peers ${serverSeconds(undisturbed).toFixed(2)}`);
      await leases("fresh-1's pull");
      // fresh-1 leaves (SIGTERM: its lease is revoked), so that fresh-2 has the same two holders.
      await f1.stop();
      for (const deadline = Date.now() + 10_000; (await fleetView(f2)).includes(f1.name); ) {
        if (Date.now() > deadline) throw new Error(`${f2.name} still lists ${f1.name} 10 s after it stopped cleanly`);
        await sleep(20);
      }

      await settle(scratchDir, total);
      proxy.reset();
      const served0 = await Promise.all([a, b].map(bytesServedToPeers));
      let killed: { node: Node; arrived: number; atS: number; servedA: number; servedB: number; fromPeer: string } | undefined;
      const t2 = performance.now();
      const final = await pullWatched(f2, async (p, arrived) => {
        if (killed || arrived < killAt * total) return;
        // The holder it streams the most from right now, by the pull's own per-blob sources
        // ("peer <name>": bytes) over the blobs still downloading; else by the holders' counters
        // of bytes served to peers since the pull began.
        const fromPeer = new Map<string, number>();
        for (const x of p.blobs) {
          if (x.state !== 'downloading') continue;
          for (const [source, bytes] of Object.entries(x.sources ?? {})) {
            if (source.startsWith('peer ')) fromPeer.set(source.slice(5), (fromPeer.get(source.slice(5)) ?? 0) + bytes);
          }
        }
        const served = await Promise.all([a, b].map(bytesServedToPeers));
        const [da, db] = [served[0] - served0[0], served[1] - served0[1]];
        const bySources = [a, b].filter((h) => fromPeer.has(h.name)).sort((x, y) => fromPeer.get(y.name)! - fromPeer.get(x.name)!);
        const node = bySources[0] ?? (da >= db ? a : b);
        node.kill();
        killed = {
          node,
          arrived,
          atS: (performance.now() - t2) / 1000,
          servedA: da,
          servedB: db,
          fromPeer: [...fromPeer].map(([k, v]) => `${k} ${(v / MB).toFixed(1)} MB`).join(', ') || 'none',
        };
      });
      if (final.state !== 'done') {
        switchNotes.push(`r${r + 1}: the pull ended ${final.state} after ${killed?.node.name} was SIGKILLed: ${JSON.stringify(final.error)}`);
        process.stdout.write(' switch FAILED');
      } else {
        await checkHolds(f2, expected, `pulling ${ref} from two peers, one SIGKILLed`);
        await waitQuiet(proxy);
        switchRow.seconds.push(serverSeconds(final));
        added.push((serverSeconds(final) - serverSeconds(undisturbed)) * 1000);
        switchRow.upstream.push(upstreamSent(proxy).body / total);
        sourceLines.push(`  r${r + 1}-peer-killed: ${showSources(sourcesOf([final]), total)}`);
        process.stdout.write(` peer-killed ${serverSeconds(final).toFixed(2)}`);
        if (killed) {
          switchNotes.push(
            `r${r + 1}: SIGKILLed ${killed.node.name} ${killed.atS.toFixed(2)} s into the pull, with ${(killed.arrived / MB).toFixed(1)} of ${(total / MB).toFixed(1)} MB arrived ` +
              `(blobs downloading then, by their sources: ${killed.fromPeer}; served to peers since the pull began: holder-a ${(killed.servedA / MB).toFixed(1)} MB, ` +
              `holder-b ${(killed.servedB / MB).toFixed(1)} MB${killed.servedA + killed.servedB === 0 ? ' — the pull was not streaming from a peer' : ''}); ` +
              `it ended ${(serverSeconds(final) - killed.atS).toFixed(2)} s after the kill; bytesFetched ${(final.bytesFetched / total).toFixed(3)}x the image; ` +
              `its sources: ${peerSources(final)}`,
          );
        } else {
          switchNotes.push(`r${r + 1}: the pull ended before ${(killAt * 100).toFixed(0)}% of the image had been seen arriving: nobody was killed`);
        }
      }
      await stopNodes(nodes);
    }
    console.log();
  }
  const roundsNoise = noise.stop();

  // ---- report -----------------------------------------------------------------------------------
  const num = (s: number, w = 9) => s.toFixed(2).padStart(w);
  const t1 = row(1, 'off').seconds;
  const all = [...rows.values(), warmRow, undisturbedRow, switchRow];
  console.log(
    `\n${'step'.padEnd(42)}${'median s'.padStart(9)}${'min s'.padStart(9)}${'max s'.padStart(9)}${'MB/s'.padStart(7)}` +
      `${'/ T1'.padStart(8)}   upstream bytes / image (median, min..max)`,
  );
  for (const rw of all) {
    if (rw.seconds.length === 0) {
      console.log(`${rw.name.padEnd(42)}${'-'.padStart(9)}  (no successful run)`);
      continue;
    }
    const m = median(rw.seconds);
    const up = `${num(median(rw.upstream), 8)}x  (${Math.min(...rw.upstream).toFixed(2)}x..${Math.max(...rw.upstream).toFixed(2)}x)`;
    console.log(
      `${rw.name.padEnd(42)}${num(m)}${num(Math.min(...rw.seconds))}${num(Math.max(...rw.seconds))}${(total / MB / m).toFixed(0).padStart(7)}` +
        `${`${(m / median(t1)).toFixed(2)}x`.padStart(8)}${up}`,
    );
  }
  console.log(
    `MB/s: the image (${(total / MB).toFixed(1)} MB: manifest, config, layers) over the seconds, per node. Slowest: from the common start ` +
      `(all POST /v1/pulls?wait=true sent together) to the last node's answer; the pulls' startedAt were at most ${Math.max(...spreads)} ms apart ` +
      `(median ${median(spreads)} ms). T1: one node alone, fleet off, the median of its rounds. Upstream bytes: response body bytes the ` +
      `upstream sent through the counting proxy during the step (headers not counted). * server time (finishedAt - startedAt of the pull).`,
  );
  console.log('fastest node of N (median s): ' + [...fastest].filter(([k]) => !k.startsWith('1-')).map(([k, v]) => `${k.replace('-', ' nodes, fleet ')} ${median(v).toFixed(2)}`).join('; '));
  const getsLine = (k: string) => (blobGets.get(k) ?? []).map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}..${hi}`)).join(', ');
  console.log(`upstream GETs per layer, per round: ${ns.flatMap((n) => (['on', 'off'] as Mode[]).map((m) => `N=${n} fleet ${m}: ${getsLine(`${n}-${m}`)}`)).join('; ')}`);
  console.log('\nwhere the pulls say their bytes came from (summed over the nodes of a step, over the image size):');
  for (const line of sourceLines) console.log(line);
  console.log('\nswitching away from a dead peer:');
  for (const line of switchNotes) console.log(`  ${line}`);
  // etcd's own warnings (zap JSON lines at --log-level warn), counted by message: slow disk syncs
  // and slow applies are what expire short leases on a busy machine.
  const etcdWarnings = new Map<string, number>();
  for (const l of etcd.logs().split('\n')) {
    try {
      const j = JSON.parse(l) as { level?: string; msg?: string; took?: string };
      if (j.msg) etcdWarnings.set(j.msg, (etcdWarnings.get(j.msg) ?? 0) + 1);
    } catch {
      // not a log line
    }
  }
  if (etcdWarnings.size > 0) {
    console.log(`\netcd's warnings (of its last 64 KiB of output): ${[...etcdWarnings].map(([m, c]) => `${c}x "${m}"`).join(', ')}`);
  }
  if (oddities.length > 0) {
    console.log('\nodd:');
    for (const line of oddities) console.log(`  ${line}`);
  }

  console.log('\nratios (of the medians):');
  for (const n of ns) {
    if (n === 1) {
      printRatio('1 node, fleet on / T1', ratio(row(1, 'on').seconds, t1));
      continue;
    }
    for (const mode of ['on', 'off'] as Mode[]) printRatio(`slowest of ${n}, fleet ${mode} / T1`, ratio(row(n, mode).seconds, t1));
  }
  if (warmRow.seconds.length > 0) printRatio('fresh node from a warm peer / T1', ratio(warmRow.seconds, t1.slice(0, warmRow.seconds.length)));
  if (added.length > 0) {
    console.log(
      `  ${'peer SIGKILLed: time added to an undisturbed pull'.padEnd(52)}${median(added).toFixed(0)} ms   ` +
        `(per round ${added.map((a) => a.toFixed(0)).join(', ')} ms)`,
    );
  }
  if (gone.length > 0) console.log(`  ${'SIGKILLed node gone from every view'.padEnd(52)}${median(gone).toFixed(2)} s   (per round ${gone.map((g) => g.toFixed(2)).join(', ')} s; TTL ${ttl} s)`);
  console.log(noiseLine(roundsNoise));

  // 1.00x at two decimals: the manifest and config are in the image size, so anything fetched twice shows.
  for (const n of ns) {
    const up = row(n, 'on').upstream;
    printVerdict(
      `upstream bytes, fleet on, N=${n}: ${median(up).toFixed(2)}x the image (worst round ${Math.max(...up).toFixed(3)}x; target ${targets.upstream.toFixed(2)}x)`,
      Math.max(...up) < targets.upstream + 0.005,
    );
  }
  console.log(`info: upstream bytes, fleet off: ${ns.map((n) => `N=${n} ${median(row(n, 'off').upstream).toFixed(2)}x`).join(', ')} (expected about Nx)`);
  const slow = ratio(row(maxN, 'on').seconds, t1);
  printVerdict(`slowest of ${maxN} with the fleet ${slow.median.toFixed(2)}x T1 (target <= ${targets.slowestRatio.toFixed(2)}x${maxN === 8 ? '' : '; the goal is set at N=8'})`, slow.median <= targets.slowestRatio);
  console.log(`info: slowest of ${maxN} without the fleet ${ratio(row(maxN, 'off').seconds, t1).median.toFixed(2)}x T1 (expected about ${maxN}x)`);
  if (warmRow.seconds.length > 0) {
    const faster = 1 - median(warmRow.seconds) / median(t1);
    printVerdict(`a fresh node from a warm peer ${(100 * faster).toFixed(1)}% faster than from the capped upstream (T1) (target >= ${(100 * targets.warmFaster).toFixed(0)}%)`, faster >= targets.warmFaster);
  }
  if (gone.length > 0) {
    printVerdict(`a SIGKILLed node gone from every other node's view in ${Math.max(...gone).toFixed(2)} s, worst round (target <= TTL + 1 s = ${ttl + targets.goneExtraS} s)`, Math.max(...gone) <= ttl + targets.goneExtraS);
  }
  if (added.length > 0) {
    printVerdict(`switching away from a dead peer: ${median(added).toFixed(0)} ms added to the pull (target <= ${targets.switchMs} ms)`, median(added) <= targets.switchMs && added.length === rounds);
  } else {
    printVerdict('switching away from a dead peer: no pull completed after its peer was SIGKILLed', false);
  }
}

await runBench('bench/fleet.ts', main);
