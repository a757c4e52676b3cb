// Mirror benchmark (issue 11): berth's registry listener (`[plugins."io.berth.service.v1.registry"]`,
// pull-through from a default upstream) side by side with Debian's docker-registry run as a
// pull-through cache (`proxy: remoteurl:`), both in front of ONE upstream (another
// docker-registry holding the bench image). Each cache reaches the upstream through a loopback
// proxy of its own (test/fixtures/proxy.ts) that counts what the upstream sent it. Cases, each on
// a fresh cold cache per round (a new berth root, a new registry storage):
//   1. cold: one skopeo client alone, then `--clients` (4) skopeo clients started together —
//      upstream bytes / image size and the wall time of the slowest client;
//   2. warm: one skopeo client once the cache holds the image (and, for information, N clients
//      at once: what N clients cost this machine with nothing to fetch);
//   3. containerd: `ctr images pull --hosts-dir` through berth (warm; the hosts.toml written by
//      `berth registry hosts-toml`) against containerd straight from the upstream.
// Prints medians, min/max, the upstream bytes, ratios, berth's `/v1/registry/stats` after the
// cold round and a verdict against the targets. It asserts nothing.
//
//   npx tsc -p . && node --import tsx bench/mirror.ts [--size-mib 1024] [--layers 5] [--rounds 3]
//       [--clients 4] [--berth-config FILE]
//
// It installs nothing: docker-registry, skopeo and containerd (with ctr) must be there (Debian:
// `apt-get install docker-registry skopeo containerd`); it says so and stops when one is missing.
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as stringifyToml } from 'smol-toml';
import { api, berthStore, readBerthConfig, requireBuilt, startBerth } from './berth-server.js';
import { ctrContent, ctrReset, ctrSnapshots, startContainerd } from './containerd.js';
import { benchArgs, onCleanup, positiveIntegers, requireTools, run, runBench, runMeasured, settle, sleep, which, type Usage } from './harness.js';
import { median, noiseLine, printRatio, printVerdict, procCpuSeconds, ratio, RssSampler, startNoise, timed, upstreamSent } from './measure.js';
import { BENCH_IMAGE, pushBenchImages } from './big-image.js';
import type { Image } from '../test/fixtures/images.js';
import { startProxy, type Proxy } from '../test/fixtures/proxy.js';
import { freePort, REGISTRY_BIN, startRegistry, type Registry } from '../test/fixtures/registry.js';
import type { RegistryStats } from '../src/client/types.js';

const MB = 1e6;
const targets = { berthUpstream: 1.0, concurrentRatio: 1.1, warmRatio: 1.0, ctrRatio: 1.0 };
const { repo: REPO, warmRepo: WARM_REPO, tag: TAG } = BENCH_IMAGE;
const SNAPSHOTTER = 'overlayfs';
const REGISTRY_PLUGIN = 'io.berth.service.v1.registry';
const berthBin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'berth.js');

type Kind = 'berth' | 'distribution';

/** One pull-through cache, fresh (nothing cached) when started. */
interface Cache {
  kind: Kind;
  /** host:port clients pull from. */
  host: string;
  /** The server process (for its CPU time). */
  pid: number;
  /** berth's management API (berth only). */
  url?: string;
  /** The server's RSS, sampled every 100 ms. */
  rss: RssSampler;
  /** Does the cache hold every one of `blobs` (digest → size), committed? */
  holds(blobs: Map<string, number>): Promise<boolean>;
  /** Stops the server and removes what it stored. */
  stop(): Promise<void>;
}

interface Row {
  name: string;
  seconds: number[];
  /** Body bytes the upstream sent this cache during the step, over the image size, per round. */
  upstream: number[];
  /** CPU seconds of the cache's server process during the step, per round. */
  cpu: number[];
  /** The largest RSS of the cache's server process during the step, over the rounds. */
  rss: number;
}

const newRow = (name: string): Row => ({ name, seconds: [], upstream: [], cpu: [], rss: 0 });


async function berthStats(url: string): Promise<RegistryStats> {
  const res = await api(url, 'GET', '/v1/registry/stats');
  if (res.status !== 200) throw new Error(`GET /v1/registry/stats: HTTP ${res.status}: ${JSON.stringify(res.json)}`);
  return res.json as RegistryStats;
}

const statsDelta = (a: RegistryStats, b: RegistryStats) => ({
  requests: b.requests - a.requests,
  hits: b.hits - a.hits,
  pullThroughs: b.pullThroughs - a.pullThroughs,
  followers: b.followers - a.followers,
  bytesServed: b.bytesServed - a.bytesServed,
  bytesFetchedUpstream: b.bytesFetchedUpstream - a.bytesFetchedUpstream,
});

/** Waits until `cache` holds `blobs` and `proxy` has carried nothing for a second (background fetches ended). */
async function waitQuiet(cache: Cache, proxy: Proxy, blobs: Map<string, number>, what: string, ms = 300_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cache.holds(blobs))) {
    if (Date.now() > deadline) throw new Error(`${cache.kind}: does not hold the blobs of ${what} ${ms / 1000} s after its clients ended`);
    await sleep(100);
  }
  let last = proxy.bytesFromUpstream;
  let since = Date.now();
  while (Date.now() - since < 1000) {
    await sleep(100);
    if (proxy.bytesFromUpstream !== last) {
      last = proxy.bytesFromUpstream;
      since = Date.now();
    }
    if (Date.now() > deadline) throw new Error(`${cache.kind}: the upstream was still sending ${ms / 1000} s after the clients of ${what} ended`);
  }
}

/** An OCI layout that skopeo wrote holds every blob of `image` at its size. */
function checkLayout(out: string, image: Image, who: string): void {
  const blobsDir = join(out, 'blobs', 'sha256');
  for (const b of [{ digest: image.digest, size: image.size }, ...image.blobs]) {
    const file = join(blobsDir, b.digest.slice('sha256:'.length));
    let size = -1;
    try {
      size = statSync(file).size;
    } catch {
      // missing
    }
    if (size !== b.size) throw new Error(`${who}: the OCI layout ${out} ${size < 0 ? 'lacks' : `has ${size} bytes of`} ${b.digest}${size < 0 ? '' : `, expected ${b.size}`}`);
  }
}

async function main(): Promise<void> {
  const values = benchArgs(
    'usage: node --import tsx bench/mirror.ts [--size-mib 1024] [--layers 5] [--rounds 3] [--clients 4]\n' +
      '                                       [--berth-config FILE]',
    {
      'size-mib': { type: 'string', default: '1024' },
      layers: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '3' },
      clients: { type: 'string', default: '4' },
      'berth-config': { type: 'string' },
    },
  );
  if (!values) return;
  const { 'size-mib': sizeMiB, layers: layerCount, rounds, clients } = positiveIntegers(values, ['size-mib', 'layers', 'rounds', 'clients']);
  const baseConfig = await readBerthConfig(values['berth-config'] ? resolve(values['berth-config']) : undefined);
  requireBuilt();
  requireTools(
    [[REGISTRY_BIN, 'docker-registry'], ['skopeo', 'skopeo'], ['containerd', 'containerd'], ['ctr', 'containerd']],
    "The mirror benchmark needs Debian's docker-registry, skopeo and containerd (which brings ctr)",
  );
  if (process.getuid?.() !== 0) console.log('note: not root; containerd and its overlayfs snapshotter want root');
  const skopeoArgs = existsSync('/etc/containers/policy.json') ? [] : ['--insecure-policy'];

  const dir = await mkdtemp(join(tmpdir(), 'berth-bench-mirror-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  const scratchDir = join(dir, 'scratch');
  await mkdir(scratchDir);

  console.log(
    `berth mirror benchmark: ${sizeMiB} MiB in ${layerCount} layer(s), ${rounds} round(s), ${clients} clients at once; ` +
      'berth vs docker-registry as a pull-through cache, one upstream; MB = 10^6 bytes',
  );
  console.log(`node ${process.version}, ${availableParallelism()} CPU(s); upstream, caches, clients and the counting proxies share them`);
  for (const cmd of ['skopeo', 'containerd']) console.log(`  ${(await run(which(cmd)!, ['--version'])).trim()}`);
  console.log(`  ${(await run(REGISTRY_BIN, ['--version'])).trim()}`);

  // ---- the upstream and the image ----
  const upstream: Registry = await startRegistry();
  onCleanup(() => upstream.stop());
  console.log('file systems (temp folder: berth roots, OCI layouts, containerd root; the registries\' storage):');
  for (const line of (await run('df', ['-PT', dir, upstream.storageDir])).trimEnd().split('\n')) console.log(`  ${line}`);
  // And a small image each fresh cache serves once, untimed, before its first timed step.
  const { image, expected, total, warmImage } = await pushBenchImages(upstream, BENCH_IMAGE, sizeMiB, layerCount);
  /** config + layers: what a cache must hold (the manifest is checked in the clients' layouts). */
  const blobs = new Map(image.blobs.map((b) => [b.digest, b.size] as [string, number]));
  const warmBlobs = new Map(warmImage.blobs.map((b) => [b.digest, b.size] as [string, number]));
  await run('sync', []);

  // ---- one counting proxy per cache, in front of the same upstream ----
  const upBerth = await startProxy(upstream.host);
  onCleanup(() => upBerth.stop());
  const upDist = await startProxy(upstream.host);
  onCleanup(() => upDist.stop());
  const proxyOf: Record<Kind, Proxy> = { berth: upBerth, distribution: upDist };

  // ---- the caches ----
  let serial = 0;
  /** CPU of the bench's short-lived processes (the caches, skopeo, ctr), for the noise estimate. */
  let childCpu = 0;
  const addCpu = (usages: Array<Usage | undefined>) => {
    for (const u of usages) if (u) childCpu += u.cpu;
  };
  const cpuOf = (pid: number): number => {
    try {
      return procCpuSeconds(pid);
    } catch {
      return 0; // gone
    }
  };
  /** RSS of each kind of server right after its start (the largest over the instances). */
  const idleRss: Record<Kind, number> = { berth: 0, distribution: 0 };
  const sampleRss = (kind: Kind, pid: number): RssSampler => {
    const rss = new RssSampler(pid);
    onCleanup(async () => rss.stop());
    idleRss[kind] = Math.max(idleRss[kind], rss.sample());
    return rss;
  };
  const startCache = async (kind: Kind): Promise<Cache> => {
    const n = ++serial;
    if (kind === 'berth') {
      const home = join(dir, `berth-${n}`);
      await mkdir(home);
      const port = await freePort();
      const plugins = {
        ...baseConfig.plugins,
        [REGISTRY_PLUGIN]: { ...baseConfig.plugins?.[REGISTRY_PLUGIN], address: `127.0.0.1:${port}`, default_upstream: upBerth.host, pull_through: true },
      };
      const config = join(home, 'berth.toml');
      await writeFile(config, stringifyToml({ ...baseConfig, plugins }));
      const server = await startBerth(join(home, 'root'), join(home, 'state'), { config });
      const rss = sampleRss(kind, server.pid);
      return {
        kind,
        host: `127.0.0.1:${port}`,
        pid: server.pid,
        url: server.url,
        rss,
        async holds(want) {
          const { blobs: have } = await berthStore(server.url);
          return [...want].every(([d, size]) => have.get(d) === size);
        },
        async stop() {
          rss.stop();
          childCpu += cpuOf(server.pid);
          await server.stop();
          await rm(home, { recursive: true, force: true });
        },
      };
    }
    const reg = await startRegistry({
      configure: (c) => {
        c.proxy = { remoteurl: upDist.url };
      },
    });
    onCleanup(() => reg.stop());
    const rss = sampleRss(kind, reg.process.pid!);
    const blobFile = (d: string) => join(reg.storageDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', d.slice(7, 9), d.slice(7), 'data');
    return {
      kind,
      host: reg.host,
      pid: reg.process.pid!,
      rss,
      async holds(want) {
        return [...want].every(([d, size]) => {
          try {
            return statSync(blobFile(d)).size === size;
          } catch {
            return false;
          }
        });
      },
      async stop() {
        rss.stop();
        childCpu += cpuOf(reg.process.pid!);
        await reg.stop();
      },
    };
  };

  /** `n` skopeo clients started together from `cache`; the seconds each took, and their CPU. */
  const skopeoClients = async (cache: Cache, repo: string, n: number, img: Image): Promise<{ each: number[]; usages: Array<Usage | undefined> }> => {
    const outs = Array.from({ length: n }, (_, i) => join(dir, `oci-${i}`));
    for (const o of outs) await rm(o, { recursive: true, force: true });
    const each: number[] = [];
    const t0 = performance.now();
    const usages = await Promise.all(
      outs.map(async (out, i) => {
        const usage = await runMeasured(
          which('skopeo')!,
          ['copy', ...skopeoArgs, '--src-tls-verify=false', `docker://${cache.host}/${repo}:${TAG}`, `oci:${out}`],
          scratchDir,
          `time-${i}`,
        );
        each[i] = (performance.now() - t0) / 1000;
        return usage;
      }),
    );
    addCpu(usages);
    for (const [i, out] of outs.entries()) {
      checkLayout(out, img, `${cache.kind} client ${i + 1}/${n}`);
      await rm(out, { recursive: true, force: true });
    }
    return { each, usages };
  };

  /** The untimed first use of a fresh cache: one client pulls the small image, then all is quiet. */
  const warmUp = async (cache: Cache): Promise<void> => {
    await skopeoClients(cache, WARM_REPO, 1, warmImage);
    await waitQuiet(cache, proxyOf[cache.kind], warmBlobs, 'the warm-up image');
  };

  const containerd = await startContainerd(join(dir, 'containerd'));
  const hostsBerth = join(dir, 'hosts-berth');
  const hostsStraight = join(dir, 'hosts-straight');
  await mkdir(join(hostsStraight, upstream.host), { recursive: true });
  await writeFile(join(hostsStraight, upstream.host, 'hosts.toml'), `server = ${JSON.stringify(`http://${upstream.host}`)}\n`);
  const ctrRefBerth = `${upBerth.host}/${REPO}:${TAG}`;
  const ctrRefStraight = `${upstream.host}/${REPO}:${TAG}`;
  /** `ctr images pull --hosts-dir` of `ref`, timed; checked and removed afterwards. */
  const ctrPull = async (hostsDir: string, ref: string): Promise<{ seconds: number; usage?: Usage }> => {
    let usage: Usage | undefined;
    const seconds = await timed(async () => {
      usage = await runMeasured(
        which('ctr')!,
        ['--address', containerd.address, 'images', 'pull', '--hosts-dir', hostsDir, '--plain-http', '--snapshotter', SNAPSHOTTER, ref],
        scratchDir,
      );
    });
    addCpu([usage]);
    const have = await ctrContent(containerd);
    for (const d of expected.keys()) if (!have.has(d)) throw new Error(`containerd's store lacks ${d} after ctr images pull ${ref}`);
    const snapshots = await ctrSnapshots(containerd, SNAPSHOTTER);
    if (snapshots.length !== layerCount) throw new Error(`containerd holds ${snapshots.length} ${SNAPSHOTTER} snapshots after ctr images pull ${ref}, expected ${layerCount}`);
    await ctrReset(containerd, ref, SNAPSHOTTER);
    return { seconds, usage };
  };
  // containerd's warm-up (untimed): the small image, straight from the upstream.
  {
    const warmRef = `${upstream.host}/${WARM_REPO}:${TAG}`;
    await containerd.ctr(['images', 'pull', '--hosts-dir', hostsStraight, '--plain-http', '--snapshotter', SNAPSHOTTER, warmRef]);
    await ctrReset(containerd, warmRef, SNAPSHOTTER);
  }

  // ---- the rounds ----
  const label: Record<Kind, string> = { berth: 'berth', distribution: 'distribution' };
  const rows = {
    cold1: { berth: newRow('berth, cold, 1 client'), distribution: newRow('distribution, cold, 1 client') },
    coldN: { berth: newRow(`berth, cold, ${clients} clients (slowest)`), distribution: newRow(`distribution, cold, ${clients} clients (slowest)`) },
    warm: { berth: newRow('berth, warm, 1 client'), distribution: newRow('distribution, warm, 1 client') },
    warmN: { berth: newRow(`berth, warm, ${clients} clients (slowest)`), distribution: newRow(`distribution, warm, ${clients} clients (slowest)`) },
  };
  const ctrRows = { berth: newRow('ctr images pull through berth (warm)'), straight: newRow('ctr images pull straight from upstream') };
  /** The fastest client of the N, per round (info). */
  const fastest: Record<Kind, number[]> = { berth: [], distribution: [] };
  /** Upstream GETs per blob in the cold N-client step: the smallest and largest count, per round. */
  const coldNGets: Record<Kind, Array<[number, number]>> = { berth: [], distribution: [] };
  const coldNStats: Array<{ after: RegistryStats; delta: ReturnType<typeof statsDelta>; proxyBody: number }> = [];
  const ctrBerthStats: Array<ReturnType<typeof statsDelta>> = [];
  let skopeoRss = 0;

  /** One timed skopeo step against `cache`: the row gets the slowest client's seconds, the upstream bytes and the server's CPU. */
  const skopeoStep = async (cache: Cache, row: Row, n: number): Promise<number[]> => {
    const proxy = proxyOf[cache.kind];
    await settle(scratchDir, n * total);
    proxy.reset();
    cache.rss.window();
    const cpu0 = procCpuSeconds(cache.pid);
    const { each, usages } = await skopeoClients(cache, REPO, n, image);
    const cpu = procCpuSeconds(cache.pid) - cpu0;
    row.rss = Math.max(row.rss, cache.rss.windowMax);
    for (const u of usages) if (u) skopeoRss = Math.max(skopeoRss, u.maxRss);
    await waitQuiet(cache, proxy, blobs, `${REPO}:${TAG}`);
    row.seconds.push(Math.max(...each));
    row.upstream.push(upstreamSent(proxy).body / total);
    row.cpu.push(cpu);
    return each;
  };

  // Noise: the machine's busy CPU time during the rounds, less what the bench's own processes used
  // (the upstream, containerd, this process with its counting proxies, the caches, skopeo, ctr);
  // the rest is other processes and the kernel's own threads (writeback among them).
  const ownCpu = () => cpuOf(upstream.process.pid!) + cpuOf(containerd.pid) + (process.cpuUsage().user + process.cpuUsage().system) / 1e6;
  const child0 = childCpu;
  const noise = startNoise(ownCpu);
  for (let r = 0; r < rounds; r++) {
    process.stdout.write(`round ${r + 1}/${rounds} (s):`);
    // The order turns each round: neither cache always goes first.
    const kinds: Kind[] = r % 2 === 0 ? ['berth', 'distribution'] : ['distribution', 'berth'];
    for (const kind of kinds) {
      // 1a. cold, one client alone
      let cache = await startCache(kind);
      await warmUp(cache);
      const [alone] = await skopeoStep(cache, rows.cold1[kind], 1);
      process.stdout.write(` ${label[kind]}-cold-1 ${alone.toFixed(2)}`);
      await cache.stop();

      // 1b. cold, N clients at once, on another fresh cache
      cache = await startCache(kind);
      await warmUp(cache);
      const before = cache.url ? await berthStats(cache.url) : undefined;
      const each = await skopeoStep(cache, rows.coldN[kind], clients);
      fastest[kind].push(Math.min(...each));
      const gets = [...blobs.keys()].map((d) => upstreamSent(proxyOf[kind]).blobGets.get(d) ?? 0);
      coldNGets[kind].push([Math.min(...gets), Math.max(...gets)]);
      if (cache.url && before) {
        const after = await berthStats(cache.url);
        coldNStats.push({ after, delta: statsDelta(before, after), proxyBody: upstreamSent(upBerth).body });
      }
      process.stdout.write(` ${label[kind]}-cold-${clients} ${Math.max(...each).toFixed(2)}`);

      // 2. warm: one client from the cache that now holds the image
      const [warm] = await skopeoStep(cache, rows.warm[kind], 1);
      process.stdout.write(` ${label[kind]}-warm ${warm.toFixed(2)}`);
      // ... and N clients at once from it (info: what N clients cost this machine with nothing to fetch)
      const warmN = await skopeoStep(cache, rows.warmN[kind], clients);
      process.stdout.write(` ${label[kind]}-warm-${clients} ${Math.max(...warmN).toFixed(2)}`);

      // 3. containerd through berth (warm) and straight from the upstream, in turns
      if (kind === 'berth') {
        await rm(hostsBerth, { recursive: true, force: true });
        const mgmt = new URL(cache.url!).host;
        await run(process.execPath, [berthBin, '--address', mgmt, 'registry', 'hosts-toml', upBerth.host, '--dir', hostsBerth]);
        if (r === 0) {
          const text = await readFile(join(hostsBerth, upBerth.host, 'hosts.toml'), 'utf8');
          process.stdout.write(`\n  hosts.toml written by berth registry hosts-toml:\n${text.replace(/^/gm, '    ').trimEnd()}\n `);
        }
        const through = async () => {
          await settle(scratchDir, total);
          upBerth.reset();
          const s0 = await berthStats(cache.url!);
          cache.rss.window();
          const cpu0 = procCpuSeconds(cache.pid);
          const { seconds } = await ctrPull(hostsBerth, ctrRefBerth);
          ctrRows.berth.cpu.push(procCpuSeconds(cache.pid) - cpu0);
          ctrRows.berth.rss = Math.max(ctrRows.berth.rss, cache.rss.windowMax);
          ctrBerthStats.push(statsDelta(s0, await berthStats(cache.url!)));
          ctrRows.berth.seconds.push(seconds);
          ctrRows.berth.upstream.push(upstreamSent(upBerth).body / total);
          process.stdout.write(` ctr-berth ${seconds.toFixed(2)}`);
        };
        const straight = async () => {
          await settle(scratchDir, total);
          const { seconds } = await ctrPull(hostsStraight, ctrRefStraight);
          ctrRows.straight.seconds.push(seconds);
          ctrRows.straight.upstream.push(1); // the upstream serves the whole image by definition (not counted)
          process.stdout.write(` ctr-straight ${seconds.toFixed(2)}`);
        };
        for (const step of r % 2 === 0 ? [through, straight] : [straight, through]) await step();
      }
      await cache.stop();
    }
    console.log();
  }
  const roundsNoise = noise.stop(childCpu - child0);
  await containerd.stop();

  // ---- report -----------------------------------------------------------------------------------
  const num = (s: number, w = 9) => s.toFixed(2).padStart(w);
  const all: Row[] = [
    rows.cold1.berth, rows.cold1.distribution, rows.coldN.berth, rows.coldN.distribution,
    rows.warm.berth, rows.warm.distribution, rows.warmN.berth, rows.warmN.distribution, ctrRows.berth, ctrRows.straight,
  ];
  console.log(
    `\n${'step'.padEnd(42)}${'median s'.padStart(9)}${'min s'.padStart(9)}${'max s'.padStart(9)}${'MB/s'.padStart(7)}` +
      `${'cache CPU s'.padStart(12)}${'RSS MB'.padStart(8)}   upstream bytes / image (median, min..max)`,
  );
  for (const row of all) {
    const m = median(row.seconds);
    const cpu = row.cpu.length === row.seconds.length ? num(median(row.cpu), 12) : '-'.padStart(12);
    const rss = row.rss > 0 ? (row.rss / MB).toFixed(0).padStart(8) : '-'.padStart(8);
    const up = row === ctrRows.straight
      ? '   (the upstream itself)'
      : `${num(median(row.upstream), 8)}x  (${Math.min(...row.upstream).toFixed(2)}x..${Math.max(...row.upstream).toFixed(2)}x)`;
    console.log(`${row.name.padEnd(42)}${num(m)}${num(Math.min(...row.seconds))}${num(Math.max(...row.seconds))}${(total / MB / m).toFixed(0).padStart(7)}${cpu}${rss}${up}`);
  }
  console.log(
    `MB/s: the image (${(total / MB).toFixed(1)} MB) over the seconds, per client. Cache CPU s: user+sys of the cache's server process ` +
      '(berth or docker-registry) during the step; RSS MB: its largest sampled RSS (every 100 ms) during the step, over the rounds ' +
      `(after start-up: berth ${(idleRss.berth / MB).toFixed(0)} MB, docker-registry ${(idleRss.distribution / MB).toFixed(0)} MB). ` +
      'Upstream bytes: response body bytes the upstream sent that cache through its ' +
      'counting proxy during the step (manifests, config, layers; headers not counted). ' +
      `Slowest of ${clients}: from the common start to the last client's end; the fastest took ` +
      `${median(fastest.berth).toFixed(2)} s (berth) and ${median(fastest.distribution).toFixed(2)} s (distribution), medians.`,
  );
  const getsLine = (k: Kind) => coldNGets[k].map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}..${hi}`)).join(', ');
  console.log(
    `upstream GETs per blob (config, layers) in the cold ${clients}-client step, per round: berth ${getsLine('berth')}; distribution ${getsLine('distribution')}`,
  );

  console.log(`\nberth /v1/registry/stats after the cold ${clients}-client step (round 1; the server also served the warm-up image once):`);
  const first = coldNStats[0];
  console.log(`  ${JSON.stringify(first.after)}`);
  for (const [i, s] of coldNStats.entries()) {
    const d = s.delta;
    console.log(
      `  round ${i + 1}, during the step: ${d.requests} requests, ${d.hits} hits, ${d.pullThroughs} pull-throughs, ${d.followers} followers; ` +
        `served ${(d.bytesServed / MB).toFixed(1)} MB (${(d.bytesServed / total).toFixed(2)}x the image; ${clients} clients: ${clients}.00x); ` +
        `fetched upstream ${(d.bytesFetchedUpstream / MB).toFixed(1)} MB by its count, ${(s.proxyBody / MB).toFixed(1)} MB by the proxy's`,
    );
  }
  for (const [i, d] of ctrBerthStats.entries()) {
    console.log(
      `  round ${i + 1}, ctr images pull through berth: ${d.requests} requests, ${d.hits} hits, ${d.pullThroughs} pull-throughs, ${d.followers} followers; ` +
        `served ${(d.bytesServed / MB).toFixed(1)} MB (${(d.bytesServed / total).toFixed(2)}x the image)` +
        (d.bytesServed < total - image.size ? ' — containerd did not get the layers from berth' : ''),
    );
  }

  const coldNvs1 = ratio(rows.coldN.berth.seconds, rows.cold1.berth.seconds);
  const distNvs1 = ratio(rows.coldN.distribution.seconds, rows.cold1.distribution.seconds);
  const cold1 = ratio(rows.cold1.berth.seconds, rows.cold1.distribution.seconds);
  const coldN = ratio(rows.coldN.berth.seconds, rows.coldN.distribution.seconds);
  const warm = ratio(rows.warm.berth.seconds, rows.warm.distribution.seconds);
  const warmN = ratio(rows.warmN.berth.seconds, rows.warmN.distribution.seconds);
  const coldVsWarmN = ratio(rows.coldN.berth.seconds, rows.warmN.berth.seconds);
  const viaCtr = ratio(ctrRows.berth.seconds, ctrRows.straight.seconds);
  console.log('\nratios (of the medians):');
  printRatio(`berth cold: slowest of ${clients} / one alone`, coldNvs1);
  printRatio(`distribution cold: slowest of ${clients} / one alone`, distNvs1);
  printRatio('cold, 1 client: berth / distribution', cold1);
  printRatio(`cold, ${clients} clients (slowest): berth / distribution`, coldN);
  printRatio('warm, 1 client: berth / distribution', warm);
  printRatio(`warm, ${clients} clients (slowest): berth / distribution`, warmN);
  printRatio(`berth, ${clients} clients (slowest): cold / warm`, coldVsWarmN);
  printRatio('ctr images pull: through berth / straight', viaCtr);
  const berthUp = rows.coldN.berth.upstream;
  const distUp = rows.coldN.distribution.upstream;
  console.log(
    `  upstream bytes, cold, ${clients} clients: berth ${median(berthUp).toFixed(2)}x the image (max ${Math.max(...berthUp).toFixed(3)}x), ` +
      `distribution ${median(distUp).toFixed(2)}x (max ${Math.max(...distUp).toFixed(3)}x)`,
  );
  console.log(`info: skopeo peak RSS ${(skopeoRss / MB).toFixed(1)} MB`);
  console.log(noiseLine(roundsNoise));
  // 1.00x at two decimals: the manifest and config are in the image size, so anything fetched twice shows.
  printVerdict(
    `berth upstream bytes, cold, ${clients} clients, ${Math.max(...berthUp).toFixed(3)}x the image in the worst round (target ${targets.berthUpstream.toFixed(2)}x)`,
    Math.max(...berthUp) < targets.berthUpstream + 0.005,
  );
  console.log(`info: distribution's upstream bytes, cold, ${clients} clients: ${median(distUp).toFixed(2)}x the image (expected about ${clients}x)`);
  printVerdict(`berth cold, slowest of ${clients} ${coldNvs1.median.toFixed(3)}x one client alone (target <= ${targets.concurrentRatio.toFixed(1)}x)`, coldNvs1.median <= targets.concurrentRatio);
  printVerdict(`berth warm ${warm.median.toFixed(3)}x distribution warm (target <= ${targets.warmRatio.toFixed(1)}x)`, warm.median <= targets.warmRatio);
  printVerdict(`ctr images pull through berth ${viaCtr.median.toFixed(3)}x straight from the upstream (target <= ${targets.ctrRatio.toFixed(1)}x)`, viaCtr.median <= targets.ctrRatio);
}

await runBench('bench/mirror.ts', main);
