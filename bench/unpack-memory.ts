// Memory of pull+unpack (issue 15: the server's peak RSS ≤ 300 MB whatever the image): a fresh
// berth server per step, its peak RSS (VmHWM: every page it ever held, the unpack workers' too)
// during
//   - pull+unpack of the benchmark's tree image (bench/tree-image.ts: 5 gzip layers of this
//     machine's trees) into overlayfs;
//   - unpack alone of that image (fetched first; the high-water mark reset through
//     /proc/PID/clear_refs before the unpack);
//   - pull+unpack of an image with one 1 GiB layer of incompressible data.
// Prints each round's start and peak, the worst peak against the target, and the time (noisy on
// a busy machine: this is a memory benchmark). It asserts nothing.
//
//   npx tsc -p . && node --import tsx bench/unpack-memory.ts [--rounds 2] [--berth-config FILE] [--cache DIR]
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { api, berthPull, requireBuilt, startBerth } from './berth-server.js';
import { benchArgs, onCleanup, positiveIntegers, requireTools, runBench } from './harness.js';
import { loadavg, median, procStatusKiB, timed } from './measure.js';
import { DEFAULT_TREES, treeImage } from './tree-image.js';
import { bigLayer, buildImage, pushImage } from '../test/fixtures/images.js';
import { REGISTRY_BIN, startRegistry } from '../test/fixtures/registry.js';

const MB = 1e6;
const TARGET_MB = 300;
const SNAPSHOTTER = 'overlayfs';

interface Step {
  name: string;
  ref: string;
  /** Fetch first, reset the high-water mark, then unpack the fetched image. */
  unpackAlone?: boolean;
}

interface Measured {
  startMB: number;
  peakMB: number;
  seconds: number;
}

async function measure(step: Step, dir: string, config: string | undefined): Promise<Measured> {
  const root = await mkdtemp(join(dir, 'berth-'));
  const server = await startBerth(join(root, 'root'), join(root, 'state'), { config });
  try {
    let image: string | undefined;
    if (step.unpackAlone) image = (await berthPull(server.url, { ref: step.ref })).image;
    // Since Linux 4.0, writing 5 to clear_refs resets VmHWM to the current RSS.
    writeFileSync(`/proc/${server.pid}/clear_refs`, '5');
    const startMB = (procStatusKiB(server.pid, 'VmRSS') * 1024) / MB;
    const seconds = await timed(async () => {
      if (image) {
        const r = await api(server.url, 'POST', `/v1/images/${encodeURIComponent(image)}/unpack`, { snapshotter: SNAPSHOTTER });
        if (r.status !== 200) throw new Error(`unpack ${image}: HTTP ${r.status}: ${JSON.stringify(r.json)}`);
      } else {
        const pull = await berthPull(server.url, { ref: step.ref, unpack: true, snapshotter: SNAPSHOTTER });
        if (pull.state !== 'done') throw new Error(`pull ${step.ref}: ${JSON.stringify(pull)}`);
      }
    });
    return { startMB, peakMB: (procStatusKiB(server.pid, 'VmHWM') * 1024) / MB, seconds };
  } finally {
    await server.stop();
    await rm(root, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const values = benchArgs('usage: node --import tsx bench/unpack-memory.ts [--rounds 2] [--berth-config FILE] [--cache DIR]', {
    rounds: { type: 'string', default: '2' },
    'berth-config': { type: 'string' },
    cache: { type: 'string' },
  });
  if (!values) return;
  const { rounds } = positiveIntegers(values, ['rounds']);
  const config = values['berth-config'] ? resolve(values['berth-config']) : undefined;
  requireBuilt();
  requireTools([[REGISTRY_BIN, 'docker-registry']], "The memory benchmark needs Debian's docker-registry");
  const dir = await mkdtemp(join(tmpdir(), 'berth-bench-memory-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  console.log(`berth unpack memory benchmark: ${rounds} round(s), a fresh server per step; MB = 10^6 bytes`);
  console.log(`node ${process.version}, ${availableParallelism()} CPU(s); load average at start ${loadavg()}`);

  const cacheRoot = values.cache ?? join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'berth-bench');
  const built = await treeImage(DEFAULT_TREES, cacheRoot, (line) => console.log(line));
  const registry = await startRegistry();
  onCleanup(() => registry.stop());
  await pushImage(registry, 'bench/tree', 'v1', built.image);
  const tree = `${registry.host}/bench/tree:v1`;
  const big = await bigLayer(1 << 30, { seed: 15 });
  await pushImage(registry, 'bench/one-gib-layer', 'v1', buildImage({ layers: [big] }));
  const oneGiB = `${registry.host}/bench/one-gib-layer:v1`;
  const entries = built.layers.reduce((a, l) => a + l.entries, 0);
  const tarMB = built.layers.reduce((a, l) => a + l.uncompressedSize, 0) / MB;
  console.log(`tree image: ${built.layers.length} layers, ${entries} entries, ${tarMB.toFixed(0)} MB of tar; one-layer image: 1 GiB of incompressible data`);

  const steps: Step[] = [
    { name: 'tree image: pull + unpack', ref: tree },
    { name: 'tree image: unpack alone', ref: tree, unpackAlone: true },
    { name: 'one 1 GiB layer: pull + unpack', ref: oneGiB },
  ];
  const results = new Map<string, Measured[]>(steps.map((s) => [s.name, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const step of steps) {
      const m = await measure(step, dir, config);
      results.get(step.name)!.push(m);
      console.log(`round ${round}: ${step.name.padEnd(32)} start ${m.startMB.toFixed(0)} MB, peak ${m.peakMB.toFixed(0)} MB, ${m.seconds.toFixed(1)} s`);
    }
  }
  console.log(`\npeak RSS of the server (worst of ${rounds} round(s); the time's median), load average now ${loadavg()}:`);
  let worst = 0;
  for (const [name, ms] of results) {
    const peak = Math.max(...ms.map((m) => m.peakMB));
    worst = Math.max(worst, peak);
    console.log(`  ${name.padEnd(32)} ${peak.toFixed(0).padStart(4)} MB   ${median(ms.map((m) => m.seconds)).toFixed(1)} s`);
  }
  console.log(`verdict: peak RSS ≤ ${TARGET_MB} MB in every step: ${worst <= TARGET_MB ? 'MET' : 'MISSED'} (worst ${worst.toFixed(0)} MB)`);
}

await runBench('bench/unpack-memory.ts', main);
