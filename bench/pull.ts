// Pull benchmark (issue 4): one large image from a local registry (Debian's docker-registry),
// pulled in turns by berth (fetch only, through `POST /v1/pulls?wait=true` on a running server),
// by `skopeo copy docker://... oci:DIR` and by containerd's `ctr content fetch` (against a
// containerd started here with its own root, state and socket); then 10 concurrent berth pulls
// of the image against one. Prints medians, min/max, MB/s, the ratios berth/peer, peak RSS and a
// verdict against the targets. It asserts nothing.
//
//   npx tsc -p . && node --import tsx bench/pull.ts [--size-mib 1024] [--layers 5] [--rounds 3]
//       [--concurrent 10] [--cpu-prof DIR] [--berth-config FILE]
//
// It installs nothing: docker-registry, skopeo and containerd (with ctr) must be there (Debian:
// `apt-get install docker-registry skopeo containerd`); it says so and stops when one is missing.
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { berthPull, berthReset, checkBerthHas, requireBuilt, startBerth, type PullResult } from './berth-server.js';
import { ctrContent, ctrReset, startContainerd } from './containerd.js';
import { benchArgs, onCleanup, positiveIntegers, requireTools, run, runBench, runMeasured, turningRounds, which, type Usage } from './harness.js';
import {
  loadavg,
  machineBusySeconds,
  median,
  procCpuSeconds,
  procThreadCpu,
  ratio,
  RssSampler,
  showRatio,
  summariseProfile,
  timed,
} from './measure.js';
import { pushBenchImages } from './big-image.js';
import { REGISTRY_BIN, startRegistry, type Registry } from '../test/fixtures/registry.js';

const MB = 1e6;
const targets = { skopeoRatio: 1.0, ctrRatio: 0.5, concurrentRatio: 1.2, rssMB: 200 };
const REPO = 'bench/big';
const TAG = 'v1';
const WARM_REPO = 'bench/warm';

// ---- the benchmark ------------------------------------------------------------------------------

type Tool = 'berth' | 'skopeo' | 'ctr' | 'berthN';

interface Row {
  name: string;
  seconds: number[];
  /** CPU seconds per round (user+sys), where known. */
  cpu: number[];
}

async function main(): Promise<void> {
  const values = benchArgs(
    'usage: node --import tsx bench/pull.ts [--size-mib 1024] [--layers 5] [--rounds 3] [--concurrent 10]\n' +
      '                                     [--cpu-prof DIR] [--berth-config FILE]',
    {
      'size-mib': { type: 'string', default: '1024' },
      layers: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '3' },
      concurrent: { type: 'string', default: '10' },
      'cpu-prof': { type: 'string' },
      'berth-config': { type: 'string' },
    },
  );
  if (!values) return;
  const { 'size-mib': sizeMiB, layers: layerCount, rounds, concurrent } = positiveIntegers(values, ['size-mib', 'layers', 'rounds', 'concurrent']);
  const cpuProfDir = values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined;
  const berthConfig = values['berth-config'] ? resolve(values['berth-config']) : undefined;
  requireBuilt();
  requireTools(
    [[REGISTRY_BIN, 'docker-registry'], ['skopeo', 'skopeo'], ['containerd', 'containerd'], ['ctr', 'containerd']],
    "The pull benchmark needs Debian's docker-registry, skopeo and containerd (which brings ctr)",
  );
  if (process.getuid?.() !== 0) console.log('note: not root; containerd may refuse to start without root');
  if (cpuProfDir) await mkdir(cpuProfDir, { recursive: true });
  const skopeoArgs = existsSync('/etc/containers/policy.json') ? [] : ['--insecure-policy'];

  const dir = await mkdtemp(join(tmpdir(), 'berth-bench-pull-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));

  console.log(
    `berth pull benchmark: ${sizeMiB} MiB in ${layerCount} layer(s), ${rounds} round(s), ${concurrent} concurrent pulls; MB = 10^6 bytes`,
  );
  console.log(`node ${process.version}, ${availableParallelism()} CPU(s); registry, client, server and peers share them`);
  const versions = [
    (await run(which('skopeo')!, ['--version'])).trim(),
    (await run(which('containerd')!, ['--version'])).trim(),
  ];
  for (const v of versions) console.log(`  ${v}`);

  // ---- the registry and the image ----
  const registry: Registry = await startRegistry();
  onCleanup(() => registry.stop());
  console.log('file systems (temp folder: berth root, OCI layouts, containerd root; the registry storage):');
  for (const line of (await run('df', ['-PT', dir, registry.storageDir])).trimEnd().split('\n')) console.log(`  ${line}`);
  // And a small image for the untimed warm-up of every tool.
  const { image, expected, total } = await pushBenchImages(registry, { repo: REPO, warmRepo: WARM_REPO, tag: TAG }, sizeMiB, layerCount);
  const ref = `${registry.host}/${REPO}:${TAG}`;
  const warmRef = `${registry.host}/${WARM_REPO}:${TAG}`;
  await run('sync', []);

  // ---- berth, containerd ----
  const berth = await startBerth(join(dir, 'berth-root'), join(dir, 'berth-state'), { cpuProfDir, config: berthConfig });
  const rss = new RssSampler(berth.pid);
  onCleanup(async () => rss.stop());
  const idleRss = rss.sample();
  const containerd = await startContainerd(join(dir, 'containerd'));
  const crss = new RssSampler(containerd.pid);
  onCleanup(async () => crss.stop());

  const scratchDir = join(dir, 'scratch');
  await mkdir(scratchDir);

  // Warm-up (untimed): each tool pulls the small image once, so round 1 does not pay for JIT,
  // first connections and lazily created folders.
  {
    await berthPull(berth.url, { ref: warmRef });
    await berthReset(berth.url, warmRef);
    const oci = join(dir, 'oci-warm');
    await run(which('skopeo')!, ['copy', ...skopeoArgs, '--src-tls-verify=false', `docker://${warmRef}`, `oci:${oci}`], { quiet: true });
    await rm(oci, { recursive: true, force: true });
    await containerd.ctr(['content', 'fetch', '--plain-http', warmRef]);
    await ctrReset(containerd, warmRef);
  }

  const rows: Record<Tool, Row> = {
    berth: { name: 'berth pull (POST /v1/pulls?wait)', seconds: [], cpu: [] },
    skopeo: { name: 'skopeo copy docker:// oci:', seconds: [], cpu: [] },
    ctr: { name: 'ctr content fetch', seconds: [], cpu: [] },
    berthN: { name: `berth ${concurrent} concurrent pulls`, seconds: [], cpu: [] },
  };
  const stepRss = { berth: 0, berthN: 0, containerd: 0 };
  const peerRss = { skopeo: 0, ctr: 0 };
  const concurrentBytes: number[] = [];
  /** CPU of the skopeo and ctr processes (GNU time), for the noise estimate. */
  let peerClientCpu = 0;
  /** berth's CPU split: the main (JS) thread against libuv's pool, V8's and the other threads. */
  type Split = { main: number; others: number; wall: number };
  const berthThreads: { berth: Split[]; berthN: Split[] } = { berth: [], berthN: [] };

  const steps: Record<Tool, () => Promise<number>> = {
    async berth() {
      rss.window();
      const cpu0 = procCpuSeconds(berth.pid);
      const threads0 = procThreadCpu(berth.pid);
      let pull!: PullResult;
      const s = await timed(async () => {
        pull = await berthPull(berth.url, { ref });
      });
      rows.berth.cpu.push(procCpuSeconds(berth.pid) - cpu0);
      const threads1 = procThreadCpu(berth.pid);
      berthThreads.berth.push({ main: threads1.main - threads0.main, others: threads1.others - threads0.others, wall: s });
      stepRss.berth = Math.max(stepRss.berth, rss.windowMax);
      if (pull.bytesFetched !== total) throw new Error(`berth pull fetched ${pull.bytesFetched} bytes, expected ${total}`);
      await checkBerthHas(berth.url, expected);
      await berthReset(berth.url, ref);
      return s;
    },
    async berthN() {
      rss.window();
      const cpu0 = procCpuSeconds(berth.pid);
      const threads0 = procThreadCpu(berth.pid);
      let pulls: PullResult[] = [];
      const s = await timed(async () => {
        pulls = await Promise.all(Array.from({ length: concurrent }, () => berthPull(berth.url, { ref })));
      });
      rows.berthN.cpu.push(procCpuSeconds(berth.pid) - cpu0);
      const threads1 = procThreadCpu(berth.pid);
      berthThreads.berthN.push({ main: threads1.main - threads0.main, others: threads1.others - threads0.others, wall: s });
      stepRss.berthN = Math.max(stepRss.berthN, rss.windowMax);
      concurrentBytes.push(pulls.reduce((a, p) => a + p.bytesFetched, 0));
      await checkBerthHas(berth.url, expected);
      await berthReset(berth.url, ref);
      return s;
    },
    async skopeo() {
      const oci = join(dir, 'oci');
      await rm(oci, { recursive: true, force: true });
      let usage: Usage | undefined;
      const s = await timed(async () => {
        usage = await runMeasured(which('skopeo')!, ['copy', ...skopeoArgs, '--src-tls-verify=false', `docker://${ref}`, `oci:${oci}`], scratchDir);
      });
      if (usage) {
        peerClientCpu += usage.cpu;
        rows.skopeo.cpu.push(usage.cpu);
        peerRss.skopeo = Math.max(peerRss.skopeo, usage.maxRss);
      }
      const have = new Set(readdirSync(join(oci, 'blobs', 'sha256')).map((h) => `sha256:${h}`));
      for (const d of image.blobs.map((b) => b.digest)) if (!have.has(d)) throw new Error(`skopeo's layout lacks ${d}`);
      await rm(oci, { recursive: true, force: true });
      return s;
    },
    async ctr() {
      crss.window();
      const cpu0 = procCpuSeconds(containerd.pid);
      let usage: Usage | undefined;
      const s = await timed(async () => {
        usage = await runMeasured(which('ctr')!, ['--address', containerd.address, 'content', 'fetch', '--plain-http', ref], scratchDir);
      });
      const daemonCpu = procCpuSeconds(containerd.pid) - cpu0;
      if (usage) {
        peerClientCpu += usage.cpu;
        rows.ctr.cpu.push(usage.cpu + daemonCpu);
        peerRss.ctr = Math.max(peerRss.ctr, usage.maxRss);
      }
      stepRss.containerd = Math.max(stepRss.containerd, crss.windowMax);
      const have = await ctrContent(containerd);
      for (const d of expected.keys()) if (!have.has(d)) throw new Error(`containerd's store lacks ${d} after ctr content fetch`);
      await ctrReset(containerd, ref);
      return s;
    },
  };

  // Noise: the machine's busy CPU time during the rounds, less what the bench's own processes
  // used (the registry, berth, containerd, the peers, this process); the rest is other processes
  // and the kernel's own threads (writeback among them).
  const ownCpu = () =>
    procCpuSeconds(registry.process.pid!) + procCpuSeconds(berth.pid) + procCpuSeconds(containerd.pid) +
    (process.cpuUsage().user + process.cpuUsage().system) / 1e6;
  const load0 = loadavg();
  const machine0 = machineBusySeconds();
  const own0 = ownCpu();
  const wall0 = performance.now();

  // The order turns each round, so that no tool always goes first or follows the same one.
  const order: Tool[] = ['berth', 'skopeo', 'ctr', 'berthN'];
  const label: Record<Tool, string> = { berth: 'berth', skopeo: 'skopeo', ctr: 'ctr', berthN: `berth x${concurrent}` };
  await turningRounds({
    rounds,
    order,
    scratchDir,
    settleBytes: total,
    step: (tool) => steps[tool](),
    record: (tool, s) => rows[tool].seconds.push(s),
    label: (tool) => label[tool],
  });

  const roundsWall = (performance.now() - wall0) / 1000;
  const foreignCpu = machineBusySeconds() - machine0 - (ownCpu() - own0) - peerClientCpu;
  const load1 = loadavg();
  const berthHwm = rss.hwm();
  const berthSampled = rss.sample();
  const containerdHwm = crss.hwm();
  rss.stop();
  crss.stop();
  await berth.stop();
  await containerd.stop();

  // ---- report -----------------------------------------------------------------------------------
  const num = (s: number) => s.toFixed(3).padStart(9);
  const hasCpu = Object.values(rows).some((r) => r.cpu.length === r.seconds.length);
  console.log(
    `\n${'step'.padEnd(36)}${'median s'.padStart(9)}${'min s'.padStart(9)}${'max s'.padStart(9)}${'MB/s'.padStart(8)}` +
      (hasCpu ? `${'CPU s'.padStart(8)}` : ''),
  );
  for (const r of Object.values(rows)) {
    const m = median(r.seconds);
    const cpu = r.cpu.length === r.seconds.length ? median(r.cpu).toFixed(2).padStart(8) : hasCpu ? '-'.padStart(8) : '';
    console.log(`${r.name.padEnd(36)}${num(m)}${num(Math.min(...r.seconds))}${num(Math.max(...r.seconds))}${(total / MB / m).toFixed(0).padStart(8)}${cpu}`);
  }
  if (hasCpu) {
    console.log(
      'CPU s: median user+sys; berth: the server; skopeo: the process; ctr: the ctr client plus the containerd daemon ' +
        '(the registry and the bench client are not counted)',
    );
  }
  for (const [what, splits] of [['one pull', berthThreads.berth], [`${concurrent} concurrent`, berthThreads.berthN]] as const) {
    const m = median(splits.map((x) => x.main));
    const o = median(splits.map((x) => x.others));
    const busy = median(splits.map((x) => x.main / x.wall));
    console.log(
      `berth server CPU, ${what}: main thread ${m.toFixed(2)} s (busy ${(100 * busy).toFixed(0)}% of the wall time), ` +
        `other threads (fs writes, fsync, GC helpers) ${o.toFixed(2)} s (medians)`,
    );
  }
  const vsSkopeo = ratio(rows.berth.seconds, rows.skopeo.seconds);
  const vsCtr = ratio(rows.berth.seconds, rows.ctr.seconds);
  const nVsOne = ratio(rows.berthN.seconds, rows.berth.seconds);
  console.log('\nratios (of the medians):');
  console.log(`  berth / skopeo                          ${showRatio(vsSkopeo)}`);
  console.log(`  berth / ctr                             ${showRatio(vsCtr)}`);
  console.log(`  berth ${concurrent} concurrent / 1`.padEnd(42) + showRatio(nVsOne));
  console.log(
    `  bytes fetched by the ${concurrent} concurrent pulls together: ` +
      `${concurrentBytes.map((b) => `${(b / total).toFixed(2)}x`).join(', ')} the image (single flight: 1.00x)`,
  );
  // The kernel updates VmHWM from per-CPU counters lazily: a sample can exceed it by a little.
  const peak = Math.max(berthHwm, rss.max, berthSampled);
  console.log(
    `berth server RSS: VmHWM ${(berthHwm / MB).toFixed(1)} MB; VmRSS sampled every 100 ms: max ${(rss.max / MB).toFixed(1)} MB ` +
      `(one pull ${(stepRss.berth / MB).toFixed(1)}, ${concurrent} concurrent ${(stepRss.berthN / MB).toFixed(1)}), ` +
      `${(idleRss / MB).toFixed(1)} MB after start-up`,
  );
  console.log(
    `containerd RSS (info): VmHWM ${(containerdHwm / MB).toFixed(1)} MB, sampled max during ctr content fetch ${(stepRss.containerd / MB).toFixed(1)} MB` +
      (peerRss.ctr ? `; ctr client peak ${(peerRss.ctr / MB).toFixed(1)} MB` : '') +
      (peerRss.skopeo ? `; skopeo peak ${(peerRss.skopeo / MB).toFixed(1)} MB` : ''),
  );
  const cpus = availableParallelism();
  console.log(
    `noise: load average ${load0} before the rounds, ${load1} after; CPU used by other processes and kernel threads ` +
      `during the rounds ${foreignCpu.toFixed(1)} s of ${(cpus * roundsWall).toFixed(0)} s (${((100 * foreignCpu) / (cpus * roundsWall)).toFixed(1)}%)` +
      (foreignCpu > 0.05 * cpus * roundsWall ? ' — the machine was not quiet: treat the figures as noisy' : ''),
  );
  const verdict = (what: string, ok: boolean) => `${what}: ${ok ? 'MET' : 'MISSED'}`;
  console.log(`verdict: ${verdict(`berth ${vsSkopeo.median.toFixed(3)}x skopeo (target <= ${targets.skopeoRatio.toFixed(1)}x)`, vsSkopeo.median <= targets.skopeoRatio)}`);
  console.log(`verdict: ${verdict(`berth ${vsCtr.median.toFixed(3)}x ctr (target <= ${targets.ctrRatio.toFixed(1)}x)`, vsCtr.median <= targets.ctrRatio)}`);
  console.log(
    `verdict: ${verdict(`${concurrent} concurrent ${nVsOne.median.toFixed(3)}x one pull (target <= ${targets.concurrentRatio.toFixed(1)}x)`, nVsOne.median <= targets.concurrentRatio)}`,
  );
  console.log(`verdict: ${verdict(`peak RSS ${(peak / MB).toFixed(1)} MB (target < ${targets.rssMB} MB)`, peak / MB < targets.rssMB)}`);
  if (cpuProfDir) summariseProfile(cpuProfDir);
}

await runBench('bench/pull.ts', main);
