// GC benchmark (issue 3): a store of 100k blobs and 10k images, most referenced, 10% garbage.
// Times a full collection through `POST /v1/gc` on a running server (mark and sweep as the
// server reports them), its peak RSS, and the latency of requests served while it runs.
//
//   npx tsc -p . && node --import tsx bench/gc.ts [--images 10000] [--layers 9] [--garbage 0.1] [--runs 3]
//                                                 [--build-only DIR]
//
// The store is laid out directly (blob files under blobs/sha256, records through MetadataDB) so
// that building it takes seconds; the collection itself runs in the real server.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { MetadataDB, nsKey } from '../src/metadata/db.js';
import { formatTimestamp } from '../src/oci/time.js';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '10000' },
    layers: { type: 'string', default: '9' },
    garbage: { type: 'string', default: '0.1' },
    runs: { type: 'string', default: '3' },
    'build-only': { type: 'string' },
  },
});
const images = Number(values.images);
const layers = Number(values.layers);
const garbage = Number(values.garbage);
const runs = Number(values.runs);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const digestOf = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

/** Lays out `images` images of 1 manifest + `layers` layers; a `garbage` share of them unreferenced. */
async function buildStore(root: string, run: number): Promise<{ blobs: number; imageCount: number; garbageBlobs: number; sample: string[] }> {
  const contentRoot = join(root, 'io.berth.content.v1.content');
  const blobDir = join(contentRoot, 'blobs', 'sha256');
  mkdirSync(blobDir, { recursive: true });
  mkdirSync(join(contentRoot, 'ingest'), { recursive: true });
  const metaRoot = join(root, 'io.berth.metadata.v1.level');
  mkdirSync(metaRoot, { recursive: true });
  const db = await MetadataDB.open(join(metaRoot, 'db'));
  const now = formatTimestamp(new Date());
  let batch: unknown[] = [];
  const flush = async () => {
    await db.level.batch(batch as never);
    batch = [];
  };
  const put = (sub: unknown, key: string, value: unknown) => {
    batch.push({ type: 'put', sublevel: sub, key, value });
  };
  put(db.namespaces, 'default', { labels: {}, createdAt: now });
  let blobs = 0;
  let garbageBlobs = 0;
  const sample: string[] = [];
  const kept = Math.round(images * (1 - garbage));
  for (let i = 0; i < images; i++) {
    const labels: Record<string, string> = {};
    for (let l = 0; l < layers; l++) {
      const body = `run ${run} image ${i} layer ${l}`;
      const d = digestOf(body);
      writeFileSync(join(blobDir, d.slice(7)), body, { mode: 0o444 });
      put(db.blobs, nsKey('default', d), { size: body.length, labels: {}, createdAt: now, updatedAt: now });
      labels[`containerd.io/gc.ref.content.l.${l}`] = d;
      blobs++;
      if (i >= kept) garbageBlobs++;
      if (sample.length < 1000 && i % 10 === 0) sample.push(d);
    }
    const manifest = `run ${run} manifest ${i}`;
    const md = digestOf(manifest);
    writeFileSync(join(blobDir, md.slice(7)), manifest, { mode: 0o444 });
    put(db.blobs, nsKey('default', md), { size: manifest.length, labels, createdAt: now, updatedAt: now });
    blobs++;
    if (i >= kept) garbageBlobs++;
    if (i < kept) {
      put(db.images, nsKey('default', `bench.local/image-${i}:latest`), {
        target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: md, size: manifest.length },
        labels: {},
        createdAt: now,
        updatedAt: now,
      });
    }
    if (batch.length > 5000) await flush();
  }
  await flush();
  await db.close();
  return { blobs, imageCount: kept, garbageBlobs, sample };
}

async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      const r = await request(`${url}/healthz`);
      await r.body.dump();
      if (r.statusCode === 200) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('server did not start');
}

async function rssMB(pid: number): Promise<{ hwm: number; rss: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { hwm: kb('VmHWM') / 1024, rss: kb('VmRSS') / 1024 };
}

async function main(): Promise<void> {
  console.log(`berth GC benchmark: ${images} images × (1 manifest + ${layers} layers), ${garbage * 100}% garbage, ${runs} run(s)`);
  const results: Array<{ total: number; mark: number; sweep: number; wall: number; rss: number; lat: number[]; removed: number }> = [];
  for (let run = 1; run <= runs; run++) {
    const dir = await mkdtemp(join(tmpdir(), 'berth-bench-gc-'));
    let server: ChildProcess | undefined;
    try {
      const t0 = performance.now();
      const built = await buildStore(join(dir, 'root'), run);
      const buildS = (performance.now() - t0) / 1000;
      // Written back before measuring: the GC is not to pay for the build's dirty pages.
      spawnSync('sync');
      // No automatic collection: the one measured is the one asked for.
      const config = join(dir, 'berth.toml');
      await writeFile(
        config,
        '[plugins."io.berth.gc.v1.scheduler"]\nstartup_delay_ms = 0\nmutation_threshold = 0\ndeletion_threshold = 1000000000\n',
      );
      const port = 7600 + run;
      const url = `http://127.0.0.1:${port}`;
      server = spawn(
        process.execPath,
        ['bin/berth.js', 'serve', '--root', join(dir, 'root'), '--state', join(dir, 'state'), '--address', `127.0.0.1:${port}`, '--config', config, '--log-level', 'warn'],
        { stdio: ['ignore', 'inherit', 'inherit'] },
      );
      await waitReady(url);
      const idle = await rssMB(server.pid!);

      // Requests during the collection: reads of kept content, one after another.
      const latencies: number[] = [];
      let stop = false;
      const load = (async () => {
        let i = 0;
        while (!stop) {
          const d = built.sample[i++ % built.sample.length];
          const t = performance.now();
          const r = await request(`${url}/v1/content/${d}/info`);
          await r.body.dump();
          latencies.push(performance.now() - t);
        }
      })();
      await new Promise((r) => setTimeout(r, 200));
      let peak = idle.rss;
      const sampler = setInterval(() => void rssMB(server!.pid!).then((m) => (peak = Math.max(peak, m.rss)), () => {}), 50);
      const before = latencies.length;
      const t = performance.now();
      const res = await request(`${url}/v1/gc`, { method: 'POST' });
      const body = (await res.body.json()) as { removed: { content: number }; backend: { blobs: number }; markMs: number; sweepMs: number; durationMs: number };
      const wall = performance.now() - t;
      const during = latencies.slice(before);
      stop = true;
      await load;
      clearInterval(sampler);
      const hwm = (await rssMB(server.pid!)).hwm;
      if (res.statusCode !== 200) throw new Error(`POST /v1/gc: ${res.statusCode} ${JSON.stringify(body)}`);
      if (body.backend.blobs !== built.garbageBlobs) {
        throw new Error(`expected ${built.garbageBlobs} garbage blobs removed, the GC removed ${body.backend.blobs}`);
      }
      results.push({ total: body.durationMs, mark: body.markMs, sweep: body.sweepMs, wall, rss: Math.max(peak, hwm), lat: during, removed: body.backend.blobs });
      const sorted = [...during].sort((a, b) => a - b);
      console.log(
        `run ${run}: built ${built.blobs} blobs / ${built.imageCount} images in ${buildS.toFixed(1)} s; ` +
          `gc ${body.durationMs} ms (mark ${body.markMs}, sweep ${body.sweepMs}), removed ${body.backend.blobs} blobs; ` +
          `${during.length} requests during it, p50 ${sorted[Math.floor(sorted.length / 2)]?.toFixed(1)} ms, max ${sorted.at(-1)?.toFixed(1)} ms; ` +
          `RSS idle ${idle.rss.toFixed(0)} MB, peak ${Math.max(peak, hwm).toFixed(0)} MB`,
      );
    } finally {
      server?.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      await rm(dir, { recursive: true, force: true });
    }
  }
  const all = results.flatMap((r) => r.lat).sort((a, b) => a - b);
  console.log('');
  console.log('                         median     min     max');
  for (const [name, pick] of [
    ['gc total (ms)', (r: (typeof results)[0]) => r.total],
    ['  mark (ms)', (r: (typeof results)[0]) => r.mark],
    ['  sweep+backend (ms)', (r: (typeof results)[0]) => r.sweep],
    ['peak RSS (MB)', (r: (typeof results)[0]) => r.rss],
  ] as const) {
    const xs = results.map(pick);
    console.log(`${name.padEnd(22)} ${median(xs).toFixed(0).padStart(7)} ${Math.min(...xs).toFixed(0).padStart(7)} ${Math.max(...xs).toFixed(0).padStart(7)}`);
  }
  console.log(`requests served during GC: ${all.length}, p50 ${all[Math.floor(all.length / 2)]?.toFixed(1)} ms, p99 ${all[Math.floor(all.length * 0.99)]?.toFixed(1)} ms, max ${all.at(-1)?.toFixed(1)} ms`);
  const ok = median(results.map((r) => r.total)) < 2000;
  console.log(`verdict: full GC ${median(results.map((r) => r.total))} ms (target < 2000 ms): ${ok ? 'MET' : 'MISSED'}`);
}

// --build-only DIR lays the store out under DIR and stops: for profiling a collection by hand.
if (values['build-only']) await buildStore(values['build-only'], 1);
else await main();
