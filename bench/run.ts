// Run benchmark (issue 6): `berth run --rm IMAGE ID echo hello` against `ctr run --rm` of the
// same image from the same local registry, in turns, in the same run:
//   warm — a busybox image (the tests' fixture: Debian's busybox-static) already pulled and
//          unpacked: the time from the command to its exit, i.e. container + snapshot + spec,
//          runc create/start, the output, the exit code, the clean-up;
//   cold — the ~1 GB bench image of real file trees (bench/tree-image.ts, 5 layers) with the
//          busybox layer on top, not present: berth run pulls and unpacks it itself; for
//          containerd, `ctr images pull` then `ctr run` (ctr run does not pull).
// Each command is a new process (the CLI), as a user runs it. Prints medians, min/max and the
// ratios berth/ctr, and a verdict against the targets. It asserts nothing.
//
//   npx tsc -p . && node --import tsx bench/run.ts [--rounds 5] [--cold-rounds 2] [--trees SPEC] [--cache DIR]
//
// It installs nothing: docker-registry, containerd (with ctr and containerd-shim-runc-v2), runc
// and busybox-static must be there; it says so and stops when one is missing.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { berthReset, requireBuilt, startBerth } from './berth-server.js';
import { ctrReset, startContainerd } from './containerd.js';
import { benchArgs, onCleanup, requireTools, run, runBench, which } from './harness.js';
import { loadavg, median, ratio, showRatio, timed } from './measure.js';
import { DEFAULT_TREES, parseTrees, treeImage } from './tree-image.js';
import { busyboxConfig, busyboxLayer } from '../test/fixtures/busybox.js';
import { buildImage, layer, pushImage } from '../test/fixtures/images.js';
import { REGISTRY_BIN, startRegistry } from '../test/fixtures/registry.js';

const targets = { warmRatio: 1.0, coldRatio: 0.5 };
const SNAPSHOTTER = 'overlayfs';
const berthBin = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'bin', 'berth.js');

const usage = `usage: node --import tsx bench/run.ts [--rounds N] [--cold-rounds N] [--trees SPEC] [--cache DIR]`;

function defaultCacheRoot(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'berth-bench');
}

function row(name: string, seconds: number[]): string {
  const ms = seconds.map((s) => s * 1000);
  return `  ${name.padEnd(34)} median ${median(ms).toFixed(0).padStart(6)} ms   (min ${Math.min(...ms).toFixed(0)}, max ${Math.max(...ms).toFixed(0)})`;
}

async function main(): Promise<void> {
  const values = benchArgs(usage, {
    rounds: { type: 'string', default: '5' },
    'cold-rounds': { type: 'string', default: '2' },
    trees: { type: 'string' },
    cache: { type: 'string' },
  });
  if (!values) return;
  const rounds = Number(values.rounds);
  const coldRounds = Number(values['cold-rounds']);
  if (!Number.isInteger(rounds) || rounds <= 0 || !Number.isInteger(coldRounds) || coldRounds < 0) {
    throw new Error('--rounds must be a positive integer and --cold-rounds a non-negative one');
  }
  requireBuilt();
  requireTools(
    [[REGISTRY_BIN, 'docker-registry'], ['containerd', 'containerd'], ['ctr', 'containerd'], ['containerd-shim-runc-v2', 'containerd'], ['runc', 'runc'], ['busybox', 'busybox-static']],
    "The run benchmark needs Debian's docker-registry, containerd, runc and busybox-static",
  );

  const dir = await mkdtemp(join(tmpdir(), 'berth-bench-run-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  console.log(`berth run benchmark: ${rounds} warm round(s), ${coldRounds} cold round(s); load ${loadavg()}`);
  console.log(`node ${process.version}, ${availableParallelism()} CPU(s)`);
  for (const [cmd, args] of [['containerd', ['--version']], ['runc', ['--version']]] as const) {
    console.log(`  ${(await run(which(cmd)!, [...args])).split('\n')[0].trim()}`);
  }

  const registry = await startRegistry();
  onCleanup(() => registry.stop());
  const busybox = layer(busyboxLayer());
  const small = buildImage({ layers: [busybox], config: { config: busyboxConfig } });
  await pushImage(registry, 'bench/busybox', 'v1', small);
  const smallRef = `${registry.host}/bench/busybox:v1`;
  let bigRef: string | undefined;
  if (coldRounds > 0) {
    const cacheRoot = resolve(values.cache ?? defaultCacheRoot());
    await mkdir(cacheRoot, { recursive: true });
    const built = await treeImage(values.trees ? parseTrees(values.trees) : DEFAULT_TREES, cacheRoot, (line) => console.log(line));
    const big = buildImage({ layers: [...built.image.layers, busybox], config: { config: busyboxConfig } });
    await pushImage(registry, 'bench/tree-run', 'v1', big);
    bigRef = `${registry.host}/bench/tree-run:v1`;
    const bytes = big.layers.reduce((n, l) => n + l.size, 0);
    console.log(`cold image ${bigRef}: ${big.layers.length} layers, ${(bytes / 1e6).toFixed(0)} MB compressed`);
  }

  const berth = await startBerth(join(dir, 'berth-root'), join(dir, 'berth-state'));
  const containerd = await startContainerd(join(dir, 'containerd'));
  const berthCli = (args: string[]) => run(process.execPath, [berthBin, '--address', berth.url.replace('http://', ''), ...args]);
  const ctr = containerd.ctr;
  const hello = (out: string, who: string) => {
    if (out.trim().split('\n').at(-1) !== 'hello') throw new Error(`${who} printed ${JSON.stringify(out.slice(-200))}, not hello`);
  };

  // ---- warm: the image is there and unpacked in both ----
  await berthCli(['pull', smallRef]);
  await ctr(['images', 'pull', '--plain-http', '--snapshotter', SNAPSHOTTER, smallRef]);
  // One untimed run each: the page cache and the first start of every binary.
  hello(await berthCli(['run', '--rm', smallRef, 'warmup', 'echo', 'hello']), 'berth run');
  hello(await ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, smallRef, 'warmup', 'echo', 'hello']), 'ctr run');
  const warm = { berth: [] as number[], ctr: [] as number[] };
  for (let i = 0; i < rounds; i++) {
    warm.berth.push(await timed(async () => hello(await berthCli(['run', '--rm', smallRef, `w${i}`, 'echo', 'hello']), 'berth run')));
    warm.ctr.push(await timed(async () => hello(await ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, smallRef, `w${i}`, 'echo', 'hello']), 'ctr run')));
  }

  // ---- cold: the big image is not there (nor the small one, which shares its top layer) ----
  const cold = { berth: [] as number[], ctr: [] as number[] };
  if (coldRounds > 0) {
    await berthReset(berth.url, smallRef, SNAPSHOTTER);
    await ctrReset(containerd, smallRef, SNAPSHOTTER);
  }
  for (let i = 0; i < coldRounds; i++) {
    const ref = bigRef!;
    await berthReset(berth.url, ref, SNAPSHOTTER);
    await ctrReset(containerd, ref, SNAPSHOTTER);
    await run('sync', []);
    cold.berth.push(await timed(async () => hello(await berthCli(['run', '--rm', ref, `c${i}`, 'echo', 'hello']), 'berth run (cold)')));
    await run('sync', []);
    cold.ctr.push(
      await timed(async () => {
        await ctr(['images', 'pull', '--plain-http', '--snapshotter', SNAPSHOTTER, ref]);
        hello(await ctr(['run', '--rm', '--snapshotter', SNAPSHOTTER, ref, `c${i}`, 'echo', 'hello']), 'ctr run (cold)');
      }),
    );
  }

  console.log('\nresults (wall time of the whole command, a new process each time):');
  console.log(row('warm: berth run --rm', warm.berth));
  console.log(row('warm: ctr run --rm', warm.ctr));
  const warmRatio = ratio(warm.berth, warm.ctr);
  console.log(`  warm berth/ctr ${showRatio(warmRatio)}   target <= ${targets.warmRatio}: ${warmRatio.median <= targets.warmRatio ? 'met' : 'MISSED'}`);
  if (coldRounds > 0) {
    console.log(row('cold: berth run --rm (pull+unpack)', cold.berth));
    console.log(row('cold: ctr images pull + ctr run --rm', cold.ctr));
    const coldRatio = ratio(cold.berth, cold.ctr);
    console.log(`  cold berth/ctr ${showRatio(coldRatio)}   target <= ${targets.coldRatio}: ${coldRatio.median <= targets.coldRatio ? 'met' : 'MISSED'}`);
  }
  console.log(`load at the end ${loadavg()}`);
}

await runBench('bench/run.ts', main);
