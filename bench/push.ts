// Push benchmark (issue 16): the benchmark image (bench/big-image.ts) pushed by berth from its
// content store (`POST /v1/pushes?wait=true` on a running server) to a fresh loopback
// docker-registry, in turns with `skopeo copy oci:DIR docker://...` of the same image (from an
// OCI layout on the same disk) into another fresh registry. Each round starts both registries
// empty, so every blob is uploaded. Prints medians, min/max, MB/s, the ratio berth/skopeo, the
// berth server's peak RSS and a verdict against the targets. It asserts nothing.
//
//   npx tsc -p . && node --import tsx bench/push.ts [--size-mib 1024] [--layers 5] [--rounds 3]
//       [--chunk-mib N] [--berth-config FILE]
//
// It installs nothing: docker-registry and skopeo must be there (Debian: `apt-get install
// docker-registry skopeo`); it says so and stops when one is missing.
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { api, berthPull, requireBuilt, startBerth } from './berth-server.js';
import { benchArgs, onCleanup, positiveIntegers, requireTools, run, runBench, runMeasured, turningRounds, which, type Usage } from './harness.js';
import { loadavg, median, procCpuSeconds, ratio, RssSampler, showRatio, timed } from './measure.js';
import { BENCH_IMAGE, pushBenchImages } from './big-image.js';
import type { Image } from '../test/fixtures/images.js';
import { REGISTRY_BIN, startRegistry, type Registry } from '../test/fixtures/registry.js';

const MB = 1e6;
const targets = { skopeoRatio: 1.0, rssMB: 200 };

interface PushResult {
  id: string;
  state: string;
  error?: { code: string; message: string };
  bytesSent: number;
  blobs: Array<{ digest: string; state: string }>;
}

/** One `POST /v1/pushes?wait=true`: answers when the push has ended; it must have succeeded. */
async function berthPush(url: string, ref: string, image: string): Promise<PushResult> {
  const { status, json } = await api(url, 'POST', '/v1/pushes?wait=true', { ref, image });
  if (status !== 200) throw new Error(`POST /v1/pushes?wait=true ${ref}: HTTP ${status}: ${JSON.stringify(json)}`);
  const result = json as PushResult;
  if (result.state !== 'done') throw new Error(`push ${result.id} to ${ref} ended ${result.state}: ${JSON.stringify(result.error)}`);
  return result;
}

/** The registry holds the image's manifest (under `tag`) and every blob under `repo` (a HEAD of each). */
async function checkRegistryHas(registry: Registry, repo: string, tag: string, image: Image): Promise<void> {
  const heads: Array<[string, Record<string, string>]> = [
    [`manifests/${tag}`, { accept: image.mediaType }],
    ...image.blobs.map((b): [string, Record<string, string>] => [`blobs/${b.digest}`, {}]),
  ];
  for (const [path, headers] of heads) {
    const res = await fetch(`${registry.url}/v2/${repo}/${path}`, { method: 'HEAD', headers });
    if (res.status !== 200) throw new Error(`${registry.host}/${repo} lacks ${path} (HEAD: ${res.status})`);
    if (path.startsWith('manifests/') && res.headers.get('docker-content-digest') !== image.digest) {
      throw new Error(`${registry.host}/${repo}:${tag} names ${res.headers.get('docker-content-digest')}, not ${image.digest}`);
    }
  }
}

async function main(): Promise<void> {
  const values = benchArgs(
    'usage: node --import tsx bench/push.ts [--size-mib 1024] [--layers 5] [--rounds 3] [--berth-config FILE]',
    {
      'size-mib': { type: 'string', default: '1024' },
      layers: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '3' },
      'berth-config': { type: 'string' },
    },
  );
  if (!values) return;
  const { 'size-mib': sizeMiB, layers: layerCount, rounds } = positiveIntegers(values, ['size-mib', 'layers', 'rounds']);
  const berthConfig = values['berth-config'] ? resolve(values['berth-config']) : undefined;
  requireBuilt();
  requireTools([[REGISTRY_BIN, 'docker-registry'], ['skopeo', 'skopeo']], "The push benchmark needs Debian's docker-registry and skopeo");
  const skopeoPolicy = existsSync('/etc/containers/policy.json') ? [] : ['--insecure-policy'];

  const dir = await mkdtemp(join(tmpdir(), 'berth-bench-push-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  console.log(`berth push benchmark: ${sizeMiB} MiB in ${layerCount} layer(s), ${rounds} round(s); MB = 10^6 bytes`);
  console.log(`node ${process.version}, ${availableParallelism()} CPU(s); registries, server and skopeo share them`);
  console.log(`  ${(await run(which('skopeo')!, ['--version'])).trim()}`);

  // ---- the image, in berth's store and in an OCI layout for skopeo (untimed) ----
  const source = await startRegistry();
  onCleanup(() => source.stop());
  const { image, expected, total } = await pushBenchImages(source, BENCH_IMAGE, sizeMiB, layerCount);
  const srcRef = `${source.host}/${BENCH_IMAGE.repo}:${BENCH_IMAGE.tag}`;
  const warmSrc = `${source.host}/${BENCH_IMAGE.warmRepo}:${BENCH_IMAGE.tag}`;
  const berth = await startBerth(join(dir, 'berth-root'), join(dir, 'berth-state'), { config: berthConfig });
  await berthPull(berth.url, { ref: srcRef });
  await berthPull(berth.url, { ref: warmSrc });
  const layout = join(dir, 'oci');
  const warmLayout = join(dir, 'oci-warm');
  await run(which('skopeo')!, ['copy', ...skopeoPolicy, '--src-tls-verify=false', `docker://${srcRef}`, `oci:${layout}:v1`], { quiet: true });
  await run(which('skopeo')!, ['copy', ...skopeoPolicy, '--src-tls-verify=false', `docker://${warmSrc}`, `oci:${warmLayout}:v1`], { quiet: true });
  const have = new Set(readdirSync(join(layout, 'blobs', 'sha256')).map((h) => `sha256:${h}`));
  for (const d of expected.keys()) if (!have.has(d)) throw new Error(`skopeo's layout lacks ${d}`);
  await source.stop();
  await run('sync', []);
  console.log('file systems (temp folder: berth root, the OCI layout; registry storage):');
  for (const line of (await run('df', ['-PT', dir, tmpdir()])).trimEnd().split('\n')) console.log(`  ${line}`);

  const rss = new RssSampler(berth.pid);
  onCleanup(async () => rss.stop());
  const idleRss = rss.sample();
  const scratchDir = join(dir, 'scratch');
  await run('mkdir', ['-p', scratchDir]);
  const skopeoPush = (from: string, to: string) =>
    runMeasured(which('skopeo')!, ['copy', ...skopeoPolicy, '--dest-tls-verify=false', `oci:${from}:v1`, `docker://${to}`], scratchDir);

  // Warm-up (untimed): each pushes the small image once into a registry of its own.
  {
    const warm = await startRegistry();
    await berthPush(berth.url, `${warm.host}/warm/berth:v1`, warmSrc);
    await skopeoPush(warmLayout, `${warm.host}/warm/skopeo:v1`);
    await warm.stop();
  }

  type Tool = 'berth' | 'skopeo';
  const seconds: Record<Tool, number[]> = { berth: [], skopeo: [] };
  const cpu: Record<Tool, number[]> = { berth: [], skopeo: [] };
  let berthStepRss = 0;
  let skopeoRss = 0;
  const steps: Record<Tool, () => Promise<number>> = {
    async berth() {
      const registry = await startRegistry();
      try {
        rss.window();
        const cpu0 = procCpuSeconds(berth.pid);
        let result!: PushResult;
        const s = await timed(async () => {
          result = await berthPush(berth.url, `${registry.host}/${BENCH_IMAGE.repo}:${BENCH_IMAGE.tag}`, srcRef);
        });
        cpu.berth.push(procCpuSeconds(berth.pid) - cpu0);
        berthStepRss = Math.max(berthStepRss, rss.windowMax);
        if (result.bytesSent < total) throw new Error(`berth sent ${result.bytesSent} bytes, the image has ${total}`);
        await checkRegistryHas(registry, BENCH_IMAGE.repo, BENCH_IMAGE.tag, image);
        return s;
      } finally {
        await registry.stop();
      }
    },
    async skopeo() {
      const registry = await startRegistry();
      try {
        let usage: Usage | undefined;
        const s = await timed(async () => {
          usage = await skopeoPush(layout, `${registry.host}/${BENCH_IMAGE.repo}:${BENCH_IMAGE.tag}`);
        });
        if (usage) {
          cpu.skopeo.push(usage.cpu);
          skopeoRss = Math.max(skopeoRss, usage.maxRss);
        }
        await checkRegistryHas(registry, BENCH_IMAGE.repo, BENCH_IMAGE.tag, image);
        return s;
      } finally {
        await registry.stop();
      }
    },
  };

  const load0 = loadavg();
  const order: Tool[] = ['berth', 'skopeo'];
  await turningRounds({
    rounds,
    order,
    scratchDir,
    settleBytes: total,
    step: (tool) => steps[tool](),
    record: (tool, s) => seconds[tool].push(s),
  });
  const load1 = loadavg();
  const hwm = rss.hwm();
  rss.stop();
  await berth.stop();

  // ---- report -----------------------------------------------------------------------------------
  const num = (s: number) => s.toFixed(3).padStart(9);
  console.log(`\n${'step'.padEnd(40)}${'median s'.padStart(9)}${'min s'.padStart(9)}${'max s'.padStart(9)}${'MB/s'.padStart(8)}${'CPU s'.padStart(8)}`);
  const names: Record<Tool, string> = { berth: 'berth push (POST /v1/pushes?wait)', skopeo: 'skopeo copy oci: docker://' };
  for (const tool of order) {
    const m = median(seconds[tool]);
    const c = cpu[tool].length ? median(cpu[tool]).toFixed(2).padStart(8) : '-'.padStart(8);
    console.log(`${names[tool].padEnd(40)}${num(m)}${num(Math.min(...seconds[tool]))}${num(Math.max(...seconds[tool]))}${(total / MB / m).toFixed(0).padStart(8)}${c}`);
  }
  console.log('CPU s: median user+sys; berth: the server; skopeo: the process (the registries are not counted)');
  const vs = ratio(seconds.berth, seconds.skopeo);
  console.log(`\nratio (of the medians):\n  berth / skopeo                          ${showRatio(vs)}`);
  // VmHWM covers the untimed pulls that filled the store too: the verdict takes the pushes' own peak.
  const peak = berthStepRss;
  console.log(
    `berth server RSS: sampled every 100 ms during the pushes: max ${(berthStepRss / MB).toFixed(1)} MB; ` +
      `${(idleRss / MB).toFixed(1)} MB before them (after the pulls that filled the store); VmHWM over the whole run ${(hwm / MB).toFixed(1)} MB; ` +
      `skopeo peak ${(skopeoRss / MB).toFixed(1)} MB (info)`,
  );
  console.log(`load average ${load0} before the rounds, ${load1} after`);
  const verdict = (what: string, ok: boolean) => console.log(`verdict: ${what}: ${ok ? 'MET' : 'MISSED'}`);
  verdict(`berth ${vs.median.toFixed(3)}x skopeo (target <= ${targets.skopeoRatio.toFixed(1)}x)`, vs.median <= targets.skopeoRatio);
  verdict(`peak RSS during the pushes ${(peak / MB).toFixed(1)} MB (target < ${targets.rssMB} MB)`, peak / MB < targets.rssMB);
}

await runBench('bench/push.ts', main);
