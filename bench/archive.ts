// Export and import benchmark (issue 16): the bench image (bench/big-image.ts) pulled once into
// berth, fetched once into containerd and copied once into an OCI layout for skopeo; then, in
// turns and each round, exported to a tar file by berth (`GET /v1/images/{name}/export`), by
// `ctr images export` and by `skopeo copy oci:DIR oci-archive:FILE`, and imported from the tar by
// berth (`POST /v1/images/import`, the image and its blobs removed first), by
// `ctr images import --no-unpack` (likewise) and by `skopeo copy oci-archive:FILE oci:DIR`.
// Prints medians, MB/s, the ratios berth / the faster peer, berth's peak RSS and a verdict
// against the goals (≤ 1.0× the faster peer; RSS < 200 MB). It asserts nothing.
//
//   npx tsc -p . && node --import tsx bench/archive.ts [--size-mib 1024] [--layers 5] [--rounds 3] [--cpu-prof DIR]
//
// It installs nothing: docker-registry, skopeo and containerd (with ctr) must be there.
import { createReadStream, createWriteStream, existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { request } from 'undici';
import { api, berthPull, berthReset, checkBerthHas, requireBuilt, startBerth } from './berth-server.js';
import { ctrContent, ctrReset, startContainerd } from './containerd.js';
import { BENCH_IMAGE, pushBenchImages } from './big-image.js';
import { benchArgs, onCleanup, positiveIntegers, requireTools, run, runBench, runMeasured, settle, which } from './harness.js';
import { median, printRatio, printVerdict, ratio, RssSampler, summariseProfile, timed } from './measure.js';
import { REGISTRY_BIN, startRegistry } from '../test/fixtures/registry.js';

const MB = 1e6;
const goals = { ratio: 1.0, rssMB: 200 };

type Step = 'berthExport' | 'ctrExport' | 'skopeoExport' | 'berthImport' | 'ctrImport' | 'skopeoImport';

async function main(): Promise<void> {
  const values = benchArgs('usage: node --import tsx bench/archive.ts [--size-mib 1024] [--layers 5] [--rounds 3] [--cpu-prof DIR]', {
    'size-mib': { type: 'string', default: '1024' },
    layers: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    'cpu-prof': { type: 'string' },
  });
  if (!values) return;
  const { 'size-mib': sizeMiB, layers: layerCount, rounds } = positiveIntegers(values, ['size-mib', 'layers', 'rounds']);
  const cpuProfDir = values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined;
  requireBuilt();
  requireTools(
    [[REGISTRY_BIN, 'docker-registry'], ['skopeo', 'skopeo'], ['containerd', 'containerd'], ['ctr', 'containerd']],
    "The archive benchmark needs Debian's docker-registry, skopeo and containerd (which brings ctr)",
  );
  if (cpuProfDir) await mkdir(cpuProfDir, { recursive: true });
  const skopeoArgs = existsSync('/etc/containers/policy.json') ? [] : ['--insecure-policy'];
  const dir = await mkdtemp(join(tmpdir(), 'berth-bench-archive-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  console.log(`berth export/import benchmark: ${sizeMiB} MiB in ${layerCount} layer(s), ${rounds} round(s); MB = 10^6 bytes`);
  console.log(`node ${process.version}, ${availableParallelism()} CPU(s); client, server and peers share them`);

  const registry = await startRegistry();
  onCleanup(() => registry.stop());
  const { expected, total } = await pushBenchImages(registry, BENCH_IMAGE, sizeMiB, layerCount);
  const ref = `${registry.host}/${BENCH_IMAGE.repo}:${BENCH_IMAGE.tag}`;
  const name = encodeURIComponent(ref);

  const berth = await startBerth(join(dir, 'berth-root'), join(dir, 'berth-state'), { cpuProfDir });
  const rss = new RssSampler(berth.pid);
  onCleanup(async () => rss.stop());
  const containerd = await startContainerd(join(dir, 'containerd'));
  const layout = join(dir, 'layout');
  const scratch = join(dir, 'scratch');
  await mkdir(scratch);
  const file = (tool: string) => join(dir, `${tool}.tar`);

  // The sources, untimed: each tool holds the image once.
  await berthPull(berth.url, { ref });
  await containerd.ctr(['content', 'fetch', '--plain-http', ref]);
  await run(which('skopeo')!, ['copy', ...skopeoArgs, '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:${BENCH_IMAGE.tag}`], { quiet: true });

  const berthExport = async () => {
    const res = await request(`${berth.url}/v1/images/${name}/export`);
    if (res.statusCode !== 200) throw new Error(`berth export: HTTP ${res.statusCode}: ${await res.body.text()}`);
    await pipeline(res.body, createWriteStream(file('berth')));
  };
  const berthImport = async () => {
    const res = await request(`${berth.url}/v1/images/import`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-tar', 'content-length': String((await stat(file('berth'))).size) },
      body: createReadStream(file('berth'), { highWaterMark: 1 << 20 }),
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`berth import: HTTP ${res.statusCode}: ${text}`);
  };
  const tool = async (cmd: string, args: string[]) => {
    await runMeasured(which(cmd)!, args, scratch);
  };
  const steps: Record<Step, { name: string; run: () => Promise<void>; before?: () => Promise<void>; after?: () => Promise<void> }> = {
    berthExport: { name: 'berth export (GET /v1/images/{name}/export)', run: berthExport },
    ctrExport: { name: 'ctr images export', run: () => tool('ctr', ['--address', containerd.address, 'images', 'export', file('ctr'), ref]) },
    skopeoExport: { name: 'skopeo copy oci: oci-archive:', run: () => tool('skopeo', ['copy', ...skopeoArgs, `oci:${layout}:${BENCH_IMAGE.tag}`, `oci-archive:${file('skopeo')}`]) },
    berthImport: {
      name: 'berth import (POST /v1/images/import)',
      before: () => berthReset(berth.url, ref),
      run: berthImport,
      after: () => checkBerthHas(berth.url, expected),
    },
    ctrImport: {
      name: 'ctr images import --no-unpack',
      before: () => ctrReset(containerd, ref),
      run: () => tool('ctr', ['--address', containerd.address, 'images', 'import', '--no-unpack', file('ctr')]),
      after: async () => {
        const have = await ctrContent(containerd);
        for (const d of expected.keys()) if (!have.has(d)) throw new Error(`containerd lacks ${d} after the import`);
      },
    },
    skopeoImport: {
      name: 'skopeo copy oci-archive: oci:',
      before: () => rm(join(dir, 'imported'), { recursive: true, force: true }),
      run: () => tool('skopeo', ['copy', ...skopeoArgs, `oci-archive:${file('skopeo')}`, `oci:${join(dir, 'imported')}:${BENCH_IMAGE.tag}`]),
      after: async () => {
        const have = new Set(readdirSync(join(dir, 'imported', 'blobs', 'sha256')).map((h) => `sha256:${h}`));
        for (const d of expected.keys()) if (!have.has(d)) throw new Error(`skopeo's import lacks ${d}`);
      },
    },
  };
  const seconds: Record<Step, number[]> = { berthExport: [], ctrExport: [], skopeoExport: [], berthImport: [], ctrImport: [], skopeoImport: [] };
  const peakRss: Partial<Record<Step, number>> = {};
  for (let round = 1; round <= rounds; round++) {
    for (const step of Object.keys(steps) as Step[]) {
      const s = steps[step];
      await s.before?.();
      await settle(scratch, total);
      rss.window();
      seconds[step].push(await timed(s.run));
      peakRss[step] = Math.max(peakRss[step] ?? 0, rss.windowMax);
      await s.after?.();
    }
    console.log(`round ${round}: ${(Object.keys(steps) as Step[]).map((k) => `${k} ${seconds[k].at(-1)!.toFixed(2)} s`).join(', ')}`);
  }
  const archive = (await stat(file('berth'))).size;
  console.log(`\narchive: ${(archive / MB).toFixed(1)} MB (berth), image ${(total / MB).toFixed(1)} MB; medians of ${rounds} round(s):`);
  for (const step of Object.keys(steps) as Step[]) {
    const m = median(seconds[step]);
    console.log(`  ${steps[step].name.padEnd(52)}${m.toFixed(2)} s  ${(total / MB / m).toFixed(1)} MB/s`);
  }
  const faster = (a: Step, b: Step): Step => (median(seconds[a]) <= median(seconds[b]) ? a : b);
  const exportPeer = faster('ctrExport', 'skopeoExport');
  const importPeer = faster('ctrImport', 'skopeoImport');
  const exportRatio = ratio(seconds.berthExport, seconds[exportPeer]);
  const importRatio = ratio(seconds.berthImport, seconds[importPeer]);
  console.log('ratios (berth / the faster peer):');
  printRatio(`export: berth / ${steps[exportPeer].name}`, exportRatio);
  printRatio(`import: berth / ${steps[importPeer].name}`, importRatio);
  const peak = Math.max(peakRss.berthExport ?? 0, peakRss.berthImport ?? 0, rss.hwm());
  console.log(`berth peak RSS: export ${((peakRss.berthExport ?? 0) / MB).toFixed(0)} MB, import ${((peakRss.berthImport ?? 0) / MB).toFixed(0)} MB, process high-water mark ${(rss.hwm() / MB).toFixed(0)} MB`);
  printVerdict(`export ≤ ${goals.ratio.toFixed(1)}× the faster peer`, exportRatio.median <= goals.ratio);
  printVerdict(`import ≤ ${goals.ratio.toFixed(1)}× the faster peer`, importRatio.median <= goals.ratio);
  printVerdict(`berth peak RSS < ${goals.rssMB} MB`, peak < goals.rssMB * MB);
  // The check the import steps rely on: berth's API answers for the image it imported last.
  const image = await api(berth.url, 'GET', `/v1/images/${name}`);
  if (image.status !== 200) throw new Error(`berth has no image ${ref} after the import: ${JSON.stringify(image.json)}`);
  if (cpuProfDir) {
    await berth.stop(); // the profile is written at exit
    summariseProfile(cpuProfDir);
  }
}

await runBench('archive bench', main);
