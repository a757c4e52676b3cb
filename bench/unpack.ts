// Pull+unpack benchmark (issue 5): an image of real file trees (bench/tree-image.ts, about 1 GB
// in 5 gzip layers, tens of thousands of files, whiteouts from the second layer on) in a local
// registry, pulled and unpacked into overlayfs snapshots by berth (`POST /v1/pulls?wait=true`
// with `unpack`) and by containerd (`ctr images pull`, its own root); then unpack alone: berth's
// `POST /v1/images/{name}/unpack` of the fetched image against `umoci unpack` and GNU tar (the
// layers one after another into one folder, and side by side into a folder each), and the floor
// this disk sets (issue 15): GNU tar side by side, then one sync of the file system. The biggest
// layer alone: berth's applier (applyLayer, as the server runs it for one layer) against
// `tar -xzf` of that layer. berth runs with fsync before commit (`unpack_sync`, its default)
// and/or without. Prints medians, min/max, MB/s, ratios, peak RSS and verdicts against the
// targets. It asserts nothing.
//
//   npx tsc -p . && node --import tsx bench/unpack.ts [--rounds 3] [--sync both|on|off]
//       [--berth-config FILE] [--trees 'usr/include,usr/share/man;...'] [--cache DIR] [--cpu-prof DIR]
//
// It installs nothing: docker-registry, containerd (with ctr), skopeo and umoci must be there
// (Debian: `apt-get install docker-registry containerd skopeo umoci`); it says so and stops when
// one is missing.
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify as stringifyToml } from 'smol-toml';
import { api, type Berth, berthPull, berthReset, berthSnapshots, checkBerthHas, readBerthConfig, requireBuilt, startBerth, type UnpackResult } from './berth-server.js';
import { ctrReset, ctrSnapshots, startContainerd } from './containerd.js';
import { benchArgs, onCleanup, requireTools, run, runBench, runMeasured, settle, SetupError, which, type Usage } from './harness.js';
import { median, noiseLine, printRatio, printVerdict, procCpuSeconds, ratio, RssSampler, startNoise, summariseProfile, timed } from './measure.js';
import { DEFAULT_TREES, parseTrees, treeImage } from './tree-image.js';
import { buildImage, MediaType, pushImage } from '../test/fixtures/images.js';
import { REGISTRY_BIN, startRegistry } from '../test/fixtures/registry.js';

/**
 * berth's applier as the server runs it: compiled, from dist/ (from the sources each new worker
 * would first compile TypeScript, which the server never does).
 */
const builtApplyLayer = async (): Promise<typeof import('../src/unpack/apply-layer.js').applyLayer> =>
  (await import(new URL('../dist/src/unpack/apply-layer.js', import.meta.url).href)).applyLayer;

const MB = 1e6;
/** Issue 15: pull+unpack vs ctr and vs the floor, the biggest layer's applier vs tar, the server's peak RSS. */
const targets = { ctrRatio: 0.4, floorRatio: 1.25, applierRatio: 1.1, rssMB: 300 };
const REPO = 'bench/tree';
const TAG = 'v1';
const WARM_REPO = 'bench/warm';
const SNAPSHOTTER = 'overlayfs';
const PULLS_PLUGIN = 'io.berth.service.v1.pulls';

type Sync = 'on' | 'off';

interface Row {
  name: string;
  seconds: number[];
  /** CPU seconds per round (user+sys), where known. */
  cpu: number[];
  /** Peak RSS over the rounds of the process named in `rssOf`, bytes. */
  rss: number;
  rssOf: string;
}

const newRow = (name: string, rssOf: string): Row => ({ name, seconds: [], cpu: [], rss: 0, rssOf });

/** One timed step of a round: `prepare` (untimed) runs before the page cache is settled, then `measure`. */
interface Step {
  row: Row;
  label: string;
  /** What the step writes, bytes (the settling scratch file is as large); default the image's tar. */
  bytes?: number;
  prepare?: () => Promise<void>;
  measure: () => Promise<number>;
}

/** A running berth server with the `unpack_sync` setting it was started with. */
interface BerthServer extends Berth {
  sync: Sync;
  rss: RssSampler;
}

const defaultCacheRoot = () => join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'berth-bench');

/** A berth config file in `dir`: `base` with the pulls plugin's `unpack_sync` set. */
async function berthConfigFor(base: Record<string, any>, sync: Sync, dir: string): Promise<string> {
  const plugins = { ...base.plugins, [PULLS_PLUGIN]: { ...base.plugins?.[PULLS_PLUGIN], unpack_sync: sync === 'on' } };
  const path = join(dir, `berth-sync-${sync}.toml`);
  await writeFile(path, stringifyToml({ ...base, plugins }));
  return path;
}

/** The unpack a pull or an unpack call reports must have made every layer now. */
function checkUnpacked(what: string, result: UnpackResult | undefined, layers: number): void {
  if (!result) throw new Error(`${what}: no unpack result`);
  if (result.snapshotter !== SNAPSHOTTER || result.unpacked !== layers) {
    throw new Error(`${what}: expected ${layers} layers unpacked into ${SNAPSHOTTER}, got ${JSON.stringify(result)}`);
  }
}

async function main(): Promise<void> {
  const values = benchArgs(
    'usage: node --import tsx bench/unpack.ts [--rounds 3] [--sync both|on|off] [--berth-config FILE]\n' +
      "                                       [--trees 'DIR,DIR;DIR;...'] [--cache DIR] [--cpu-prof DIR]",
    {
      rounds: { type: 'string', default: '3' },
      sync: { type: 'string', default: 'both' },
      'berth-config': { type: 'string' },
      trees: { type: 'string' },
      cache: { type: 'string' },
      'cpu-prof': { type: 'string' },
    },
  );
  if (!values) return;
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds <= 0) throw new SetupError('--rounds must be a positive integer');
  const syncs: Sync[] = values.sync === 'both' ? ['on', 'off'] : values.sync === 'on' || values.sync === 'off' ? [values.sync] : [];
  if (syncs.length === 0) throw new SetupError(`--sync must be both, on or off, not ${JSON.stringify(values.sync)}`);
  const trees = values.trees ? parseTrees(values.trees) : DEFAULT_TREES;
  const cacheRoot = resolve(values.cache ?? defaultCacheRoot());
  const berthConfig = await readBerthConfig(values['berth-config'] ? resolve(values['berth-config']) : undefined);
  const cpuProfDir = values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined;
  requireBuilt();
  requireTools(
    [[REGISTRY_BIN, 'docker-registry'], ['containerd', 'containerd'], ['ctr', 'containerd'], ['skopeo', 'skopeo'], ['umoci', 'umoci'], ['tar', 'tar'], ['gzip', 'gzip']],
    "The unpack benchmark needs Debian's docker-registry, containerd (which brings ctr), skopeo, umoci, GNU tar and gzip",
  );
  if (process.getuid?.() !== 0) console.log('note: not root; containerd, overlayfs and umoci want root');
  const skopeoArgs = existsSync('/etc/containers/policy.json') ? [] : ['--insecure-policy'];

  const dir = await mkdtemp(join(tmpdir(), 'berth-bench-unpack-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  const scratchDir = join(dir, 'scratch');
  await mkdir(scratchDir);
  await mkdir(cacheRoot, { recursive: true });

  console.log(`berth pull+unpack benchmark: ${rounds} round(s), berth with unpack_sync ${syncs.join(' and ')}; MB = 10^6 bytes`);
  console.log(`node ${process.version}, ${availableParallelism()} CPU(s); registry, client, servers and peers share them`);
  for (const [cmd, args] of [['containerd', ['--version']], ['umoci', ['--version']], ['skopeo', ['--version']], ['tar', ['--version']]] as const) {
    console.log(`  ${(await run(which(cmd)!, [...args])).split('\n')[0].trim()}`);
  }

  // ---- the image ----
  console.log(`image: ${trees.length} layers of folders below / (cache ${cacheRoot})`);
  const built = await treeImage(trees, cacheRoot, (line) => console.log(line));
  const { image, layers } = built;
  const tarBytes = layers.reduce((a, l) => a + l.uncompressedSize, 0);
  const gzBytes = layers.reduce((a, l) => a + l.size, 0);
  const entries = layers.reduce((a, l) => a + l.entries, 0);
  console.log(
    `  ${built.cached ? 'from the cache' : 'built'} ${built.cacheDir}: ${entries} tar entries (${layers.reduce((a, l) => a + l.whiteouts, 0)} whiteouts), ` +
      `${(tarBytes / MB).toFixed(0)} MB of tar, ${(gzBytes / MB).toFixed(0)} MB gzip -1`,
  );
  for (const [i, l] of layers.entries()) {
    console.log(`  layer ${i}: ${l.entries} entries, ${(l.uncompressedSize / MB).toFixed(0)} MB tar, ${(l.size / MB).toFixed(0)} MB gzip: ${l.folders.join(' ')}`);
  }

  const registry = await startRegistry();
  onCleanup(() => registry.stop());
  console.log('file systems (temp folder: berth roots, containerd root, OCI layout, extracted trees; the registry storage; the layer cache):');
  for (const line of (await run('df', ['-PT', dir, registry.storageDir, built.cacheDir])).trimEnd().split('\n')) console.log(`  ${line}`);
  const pushSeconds = await timed(async () => {
    await pushImage(registry, REPO, TAG, image);
  });
  const ref = `${registry.host}/${REPO}:${TAG}`;
  const expected = new Map<string, number>([[image.digest, image.size], ...image.blobs.map((b) => [b.digest, b.size] as [string, number])]);
  console.log(`pushed ${ref} in ${pushSeconds.toFixed(1)} s`);
  // A small image for the untimed warm-up of berth and containerd.
  const warmImage = buildImage({ layers: [{ 'etc/': { type: 'dir' }, 'etc/hello': 'hello\n' }, { 'etc/.wh.hello': '', 'etc/bye': 'bye\n' }] });
  await pushImage(registry, WARM_REPO, TAG, warmImage);
  const warmRef = `${registry.host}/${WARM_REPO}:${TAG}`;
  // umoci reads an OCI layout: the same image, copied out of the registry once.
  const ociDir = join(dir, 'oci');
  await run(which('skopeo')!, ['copy', ...skopeoArgs, '--src-tls-verify=false', `docker://${ref}`, `oci:${ociDir}:${TAG}`], { quiet: true });
  await run('sync', []);

  // ---- berth (one server per unpack_sync setting), containerd ----
  const servers: BerthServer[] = [];
  for (const sync of syncs) {
    const config = await berthConfigFor(berthConfig, sync, dir);
    const profDir = cpuProfDir ? join(cpuProfDir, `sync-${sync}`) : undefined;
    if (profDir) await mkdir(profDir, { recursive: true });
    const server = await startBerth(join(dir, `berth-${sync}-root`), join(dir, `berth-${sync}-state`), { cpuProfDir: profDir, config });
    const rss = new RssSampler(server.pid);
    onCleanup(async () => rss.stop());
    servers.push({ ...server, sync, rss });
  }
  const idleRss = servers.map((s) => s.rss.sample());
  const containerd = await startContainerd(join(dir, 'containerd'));
  const crss = new RssSampler(containerd.pid);
  onCleanup(async () => crss.stop());

  // Warm-up (untimed): each server and containerd pull and unpack the small image once.
  for (const s of servers) {
    const pull = await berthPull(s.url, { ref: warmRef, unpack: true, snapshotter: SNAPSHOTTER });
    await berthReset(s.url, pull.image!, SNAPSHOTTER);
  }
  await containerd.ctr(['images', 'pull', '--plain-http', '--snapshotter', SNAPSHOTTER, warmRef]);
  await ctrReset(containerd, warmRef, SNAPSHOTTER);

  // ---- the steps ----
  /** CPU of the peers' client processes (GNU time), for the noise estimate. */
  let peerCpu = 0;
  /** Adds the CPU of the peer's processes (plus `extraCpu`) to `row`; returns their peak RSS. */
  const recordUsage = (row: Row, usages: Array<Usage | undefined>, extraCpu = 0): number => {
    if (usages.some((u) => !u)) return 0; // no GNU time
    const cpu = usages.reduce((a, u) => a + u!.cpu, 0);
    peerCpu += cpu;
    row.cpu.push(cpu + extraCpu);
    return Math.max(...usages.map((u) => u!.maxRss));
  };
  let ctrClientRss = 0;

  const steps: Step[] = [];
  const pullRows = new Map<Sync, Row>();
  const unpackRows = new Map<Sync, Row>();
  /** Times `fn` against a berth server: its CPU and sampled RSS go to `row`. */
  const onBerth = async (s: BerthServer, row: Row, fn: () => Promise<void>): Promise<number> => {
    s.rss.window();
    const cpu0 = procCpuSeconds(s.pid);
    const seconds = await timed(fn);
    row.cpu.push(procCpuSeconds(s.pid) - cpu0);
    row.rss = Math.max(row.rss, s.rss.windowMax);
    return seconds;
  };
  /** After an unpack: the snapshotter holds one committed snapshot per layer. */
  const checkSnapshots = async (s: BerthServer): Promise<void> => {
    const committed = (await berthSnapshots(s.url, SNAPSHOTTER)).filter((x) => x.kind === 'committed');
    if (committed.length !== layers.length) throw new Error(`berth (sync ${s.sync}) holds ${committed.length} committed snapshots, expected ${layers.length}`);
  };
  for (const s of servers) {
    const row = newRow(`berth pull+unpack (sync ${s.sync})`, 'server');
    pullRows.set(s.sync, row);
    steps.push({
      row,
      label: `berth-pull-${s.sync}`,
      async measure() {
        let pull!: Awaited<ReturnType<typeof berthPull>>;
        const seconds = await onBerth(s, row, async () => {
          pull = await berthPull(s.url, { ref, unpack: true, snapshotter: SNAPSHOTTER });
        });
        checkUnpacked(`berth pull (sync ${s.sync})`, pull.unpacks?.[0], layers.length);
        await checkBerthHas(s.url, expected);
        await checkSnapshots(s);
        await berthReset(s.url, pull.image!, SNAPSHOTTER);
        return seconds;
      },
    });
  }
  {
    const row = newRow('ctr images pull (overlayfs)', 'containerd');
    steps.push({
      row,
      label: 'ctr-pull',
      async measure() {
        crss.window();
        const cpu0 = procCpuSeconds(containerd.pid);
        let usage: Usage | undefined;
        const seconds = await timed(async () => {
          usage = await runMeasured(which('ctr')!, ['--address', containerd.address, 'images', 'pull', '--plain-http', '--snapshotter', SNAPSHOTTER, ref], scratchDir);
        });
        ctrClientRss = Math.max(ctrClientRss, recordUsage(row, [usage], procCpuSeconds(containerd.pid) - cpu0));
        row.rss = Math.max(row.rss, crss.windowMax);
        const snapshots = await ctrSnapshots(containerd, SNAPSHOTTER);
        if (snapshots.length !== layers.length) throw new Error(`containerd holds ${snapshots.length} ${SNAPSHOTTER} snapshots after ctr images pull, expected ${layers.length}`);
        await ctrReset(containerd, ref, SNAPSHOTTER);
        return seconds;
      },
    });
  }
  for (const s of servers) {
    const row = newRow(`berth unpack (sync ${s.sync})`, 'server');
    unpackRows.set(s.sync, row);
    let name = '';
    steps.push({
      row,
      label: `berth-unpack-${s.sync}`,
      async prepare() {
        name = (await berthPull(s.url, { ref })).image!;
      },
      async measure() {
        let result: UnpackResult | undefined;
        const seconds = await onBerth(s, row, async () => {
          const res = await api(s.url, 'POST', `/v1/images/${encodeURIComponent(name)}/unpack`, { snapshotter: SNAPSHOTTER });
          if (res.status !== 200) throw new Error(`POST /v1/images/${name}/unpack (sync ${s.sync}): HTTP ${res.status}: ${JSON.stringify(res.json)}`);
          result = res.json as UnpackResult;
        });
        checkUnpacked(`berth unpack (sync ${s.sync})`, result, layers.length);
        await checkSnapshots(s);
        await berthReset(s.url, name, SNAPSHOTTER);
        return seconds;
      },
    });
  }
  /** Peer commands that write into `out` (made by `prepare`, removed afterwards, both untimed). */
  const peerStep = (label: string, name: string, rssOf: string, out: string, commands: () => Promise<Array<Usage | undefined>>, prepare?: () => Promise<void>): Step => {
    const row = newRow(name, rssOf);
    return {
      row,
      label,
      prepare,
      async measure() {
        let usages: Array<Usage | undefined> = [];
        const seconds = await timed(async () => {
          usages = await commands();
        });
        row.rss = Math.max(row.rss, recordUsage(row, usages));
        await rm(out, { recursive: true, force: true });
        return seconds;
      },
    };
  };
  const bundle = join(dir, 'umoci-bundle');
  steps.push(peerStep('umoci', 'umoci unpack', 'umoci', bundle, async () => [await runMeasured(which('umoci')!, ['unpack', '--image', `${ociDir}:${TAG}`, bundle], scratchDir)]));
  const tarSeqDir = join(dir, 'tar-sequential');
  steps.push(
    peerStep(
      'tar-seq',
      'GNU tar -xzf, one after another',
      'tar',
      tarSeqDir,
      async () => {
        const usages: Array<Usage | undefined> = [];
        for (const l of layers) usages.push(await runMeasured(which('tar')!, ['-xzf', l.file, '-C', tarSeqDir], scratchDir));
        return usages;
      },
      () => mkdir(tarSeqDir).then(() => undefined),
    ),
  );
  /** A folder per layer below `parent`. */
  const layerDirs = (parent: string): string[] => layers.map((_, i) => join(parent, String(i)));
  const makeDirs = async (dirs: string[]): Promise<void> => {
    for (const d of dirs) await mkdir(d, { recursive: true });
  };
  /** The layers' `tar -xzf` all at once, layer i into dirs[i]. */
  const tarSideBySide = (dirs: string[]) =>
    Promise.all(layers.map((l, i) => runMeasured(which('tar')!, ['-xzf', l.file, '-C', dirs[i]], scratchDir, `time-${i}`)));
  const tarParDir = join(dir, 'tar-parallel');
  const tarParDirs = layerDirs(tarParDir);
  steps.push(peerStep('tar-par', 'GNU tar -xzf, side by side', 'tar', tarParDir, () => tarSideBySide(tarParDirs), () => makeDirs(tarParDirs)));
  // The floor (issue 15): as tar-par, and made as durable as berth's sync-on unpack, by one
  // syncfs of the file system (what berth's unpack does once, before its commits).
  const floorDir = join(dir, 'floor');
  const floorDirs = layerDirs(floorDir);
  const floorStep = peerStep(
    'floor',
    'floor: GNU tar side by side, then sync',
    'tar',
    floorDir,
    async () => {
      const usages = await tarSideBySide(floorDirs);
      await run('sync', ['--file-system', floorDir]);
      return usages;
    },
    () => makeDirs(floorDirs),
  );
  steps.push(floorStep);

  // The biggest layer alone: berth's applier as the server runs it for a layer unpacked side by
  // side (overlay whiteouts, no lowers, usage counted; its sync deferred to the unpack's one
  // flush, so none here), in this process, from the cached gzip file; against tar -xzf of it.
  const biggest = layers.reduce((a, l) => (l.uncompressedSize > a.uncompressedSize ? l : a));
  const biggestIndex = layers.indexOf(biggest);
  const applierDir = join(dir, 'applier');
  const applyLayer = await builtApplyLayer();
  const applierRow = newRow(`berth applier, layer ${biggestIndex} alone`, 'bench process');
  const ownRss = new RssSampler(process.pid);
  onCleanup(async () => ownRss.stop());
  const applyBiggest = async (): Promise<void> => {
    const applied = await applyLayer(createReadStream(biggest.file, { highWaterMark: 1 << 20 }), {
      mediaType: MediaType.ociLayerGzip,
      root: applierDir,
      overlay: { lowers: [] },
      countUsage: true,
    });
    if (applied.diffId !== biggest.diffID) throw new Error(`berth applier: diffID ${applied.diffId}, expected ${biggest.diffID}`);
  };
  steps.push({
    row: applierRow,
    label: 'applier-big',
    bytes: biggest.uncompressedSize,
    prepare: () => makeDirs([applierDir]),
    async measure() {
      ownRss.window();
      const cpu0 = process.cpuUsage();
      const seconds = await timed(applyBiggest);
      const cpu = process.cpuUsage(cpu0);
      applierRow.cpu.push((cpu.user + cpu.system) / 1e6);
      applierRow.rss = Math.max(applierRow.rss, ownRss.windowMax);
      await rm(applierDir, { recursive: true, force: true });
      return seconds;
    },
  });
  const tarBigDir = join(dir, 'tar-biggest');
  const tarBigStep = peerStep(
    'tar-big',
    `GNU tar -xzf, layer ${biggestIndex} alone`,
    'tar',
    tarBigDir,
    async () => [await runMeasured(which('tar')!, ['-xzf', biggest.file, '-C', tarBigDir], scratchDir)],
    () => makeDirs([tarBigDir]),
  );
  steps.push({ ...tarBigStep, bytes: biggest.uncompressedSize });

  // ---- the rounds ----
  const ownCpu = () =>
    procCpuSeconds(registry.process.pid!) + servers.reduce((a, s) => a + procCpuSeconds(s.pid), 0) + procCpuSeconds(containerd.pid) +
    (process.cpuUsage().user + process.cpuUsage().system) / 1e6;
  const noise = startNoise(ownCpu);
  // The order turns each round, so that no tool always goes first or follows the same one.
  for (let r = 0; r < rounds; r++) {
    process.stdout.write(`round ${r + 1}/${rounds} (s):`);
    for (let k = 0; k < steps.length; k++) {
      const step = steps[(r + k) % steps.length];
      await step.prepare?.();
      await settle(scratchDir, step.bytes ?? tarBytes);
      const seconds = await step.measure();
      step.row.seconds.push(seconds);
      process.stdout.write(` ${step.label} ${seconds.toFixed(1)}`);
    }
    console.log();
  }
  const roundsNoise = noise.stop(peerCpu);
  // The kernel updates VmHWM from per-CPU counters lazily: a sample can exceed it by a little.
  const berthHwm = servers.map((s) => s.rss.hwm());
  const berthPeak = servers.map((s, i) => Math.max(berthHwm[i], s.rss.max, s.rss.sample()));
  const containerdHwm = crss.hwm();
  for (const s of servers) {
    s.rss.stop();
    await s.stop();
  }
  crss.stop();
  ownRss.stop();
  await containerd.stop();

  // ---- report ----
  const num = (s: number, w = 9) => s.toFixed(2).padStart(w);
  const rows = steps.map((s) => s.row);
  console.log(
    `\n${'step'.padEnd(40)}${'median s'.padStart(9)}${'min s'.padStart(9)}${'max s'.padStart(9)}${'MB/s'.padStart(7)}${'CPU s'.padStart(8)}  peak RSS MB`,
  );
  for (const r of rows) {
    const m = median(r.seconds);
    const cpu = r.cpu.length === r.seconds.length ? num(median(r.cpu), 8) : '-'.padStart(8);
    console.log(
      `${r.name.padEnd(40)}${num(m)}${num(Math.min(...r.seconds))}${num(Math.max(...r.seconds))}${(tarBytes / MB / m).toFixed(0).padStart(7)}${cpu}  ` +
        `${(r.rss / MB).toFixed(0).padStart(5)} (${r.rssOf})`,
    );
  }
  console.log(
    `MB/s: of the layers' tar (${(tarBytes / MB).toFixed(0)} MB). CPU s: median user+sys; berth: the server; ctr: the client plus the ` +
      'containerd daemon; umoci, tar: the processes (tar with its gzip). Peak RSS: sampled every 100 ms (berth server, containerd ' +
      `daemon; ctr client peak ${(ctrClientRss / MB).toFixed(0)} MB) or GNU time's maximum (umoci, the largest tar or gzip).`,
  );

  console.log('\nratios (of the medians):');
  const tarSeq = rows.find((r) => r.name.includes('one after another'))!;
  const tarPar = rows.find((r) => r.name === 'GNU tar -xzf, side by side')!;
  const floor = floorStep.row;
  const umoci = rows.find((r) => r.name === 'umoci unpack')!;
  const ctr = rows.find((r) => r.name.startsWith('ctr'))!;
  const line = (what: string, a: number[], b: number[]) => printRatio(what, ratio(a, b));
  for (const sync of syncs) {
    line(`berth pull+unpack (sync ${sync}) / ctr images pull`, pullRows.get(sync)!.seconds, ctr.seconds);
  }
  for (const sync of syncs) {
    const u = unpackRows.get(sync)!.seconds;
    line(`berth unpack (sync ${sync}) / umoci unpack`, u, umoci.seconds);
    line(`berth unpack (sync ${sync}) / tar one after another`, u, tarSeq.seconds);
    line(`berth unpack (sync ${sync}) / tar side by side`, u, tarPar.seconds);
  }
  for (const sync of syncs) line(`berth pull+unpack (sync ${sync}) / floor`, pullRows.get(sync)!.seconds, floor.seconds);
  for (const sync of syncs) line(`berth unpack (sync ${sync}) / floor`, unpackRows.get(sync)!.seconds, floor.seconds);
  line(`berth applier / tar -xzf, layer ${biggestIndex} alone`, applierRow.seconds, tarBigStep.row.seconds);
  if (syncs.length === 2) {
    line('fsync cost: pull+unpack sync on / off', pullRows.get('on')!.seconds, pullRows.get('off')!.seconds);
    line('fsync cost: unpack sync on / off', unpackRows.get('on')!.seconds, unpackRows.get('off')!.seconds);
  }
  for (const [i, s] of servers.entries()) {
    console.log(
      `berth server (sync ${s.sync}) RSS: VmHWM ${(berthHwm[i] / MB).toFixed(1)} MB; sampled max ${(s.rss.max / MB).toFixed(1)} MB ` +
        `(pull+unpack ${(pullRows.get(s.sync)!.rss / MB).toFixed(1)}, unpack ${(unpackRows.get(s.sync)!.rss / MB).toFixed(1)}), ` +
        `${(idleRss[i] / MB).toFixed(1)} MB after start-up`,
    );
  }
  console.log(`containerd RSS (info): VmHWM ${(containerdHwm / MB).toFixed(1)} MB, sampled max during ctr images pull ${(ctr.rss / MB).toFixed(1)} MB`);
  console.log(
    noiseLine(roundsNoise) +
      '. Caches: warm (no drop_caches); the gzip layers were pushed or read just before, so they are most likely in the page cache for every tool.',
  );
  // The target is for berth as it ships: unpack_sync on, unless only off was measured.
  const judged = syncs.includes('on') ? 'on' : 'off';
  const vsCtr = ratio(pullRows.get(judged)!.seconds, ctr.seconds);
  printVerdict(`berth pull+unpack (sync ${judged}) ${vsCtr.median.toFixed(3)}x ctr images pull (target <= ${targets.ctrRatio}x)`, vsCtr.median <= targets.ctrRatio);
  const vsFloor = ratio(pullRows.get(judged)!.seconds, floor.seconds);
  printVerdict(`berth pull+unpack (sync ${judged}) ${vsFloor.median.toFixed(3)}x the floor (target <= ${targets.floorRatio}x)`, vsFloor.median <= targets.floorRatio);
  const vsTar = ratio(applierRow.seconds, tarBigStep.row.seconds);
  printVerdict(`berth applier ${vsTar.median.toFixed(3)}x tar -xzf on layer ${biggestIndex} alone (target <= ${targets.applierRatio}x)`, vsTar.median <= targets.applierRatio);
  const peak = Math.max(...berthPeak);
  printVerdict(`berth peak RSS ${(peak / MB).toFixed(1)} MB (target <= ${targets.rssMB} MB)`, peak / MB <= targets.rssMB);
  if (cpuProfDir) for (const s of servers) summariseProfile(join(cpuProfDir, `sync-${s.sync}`));
}

await runBench('bench/unpack.ts', main);
