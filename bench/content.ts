// Content store benchmark: one large blob through berth's HTTP API (one resumable-upload PATCH
// plus commit, then a download), against the peers on the same file and disk: `sha256sum` + `cp`
// for upload+commit, `cp` alone for download. Prints medians, min/max, MB/s, the ratios
// berth/peer, the server's peak RSS and a verdict against the targets. It asserts nothing.
//
//   npx tsc -p . && node --import tsx bench/content.ts [--size-mib 1024] [--runs 3] [--cpu-prof DIR]
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm, stat } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { requireBuilt, startBerth } from './berth-server.js';
import { onCleanup, run, runBench } from './harness.js';
import { median, procCpuSeconds, procStatusKiB, RssSampler, summariseProfile, timed } from './measure.js';

const MiB = 1 << 20;
const MB = 1e6;
/** The random block the source file repeats; every 4 KiB page of it gets a fresh counter. */
const blockSize = 16 * MiB;
const pageSize = 4096;
const targets = { uploadRatio: 1.5, rssMB: 150 };

const projectDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** `sync` before each timed step, so the previous step's dirty pages are not billed to it. */
const syncAll = () => run('sync', []).then(() => undefined);

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: MiB })) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/**
 * Writes `size` bytes of random-ish data: one random 16 MiB block repeated, with a running
 * counter stamped into every 4 KiB page so that no page repeats and nothing compresses. Returns
 * the file's sha256 digest (the client knows what it pushes).
 */
async function makeSource(path: string, size: number): Promise<string> {
  const block = randomBytes(blockSize);
  const hash = createHash('sha256');
  const fh = await open(path, 'w');
  try {
    let page = 0n;
    for (let at = 0; at < size; ) {
      for (let p = 0; p < block.length; p += pageSize) block.writeBigUInt64LE(page++, p);
      const n = Math.min(block.length, size - at);
      for (let done = 0; done < n; ) {
        const { bytesWritten } = await fh.write(block, done, n - done, at + done);
        done += bytesWritten;
      }
      hash.update(block.subarray(0, n));
      at += n;
    }
  } finally {
    await fh.close();
  }
  return `sha256:${hash.digest('hex')}`;
}

async function expectStatus(res: Awaited<ReturnType<typeof request>>, status: number, what: string): Promise<string> {
  const text = await res.body.text();
  if (res.statusCode !== status) throw new Error(`${what}: HTTP ${res.statusCode}, expected ${status}: ${text}`);
  return text;
}

/** One PATCH with the whole file, then the commit; returns the seconds of each. */
async function berthUpload(url: string, file: string, size: number, digest: string): Promise<{ patch: number; commit: number }> {
  const ref = encodeURIComponent(`bench-${randomUUID()}`);
  const patch = await timed(async () => {
    const res = await request(`${url}/v1/ingests/${ref}`, {
      method: 'PATCH',
      headers: {
        'content-type': 'application/offset+octet-stream',
        'content-length': String(size),
        'upload-offset': '0',
        'upload-length': String(size),
        'upload-digest': digest,
      },
      body: createReadStream(file, { highWaterMark: MiB }),
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    await expectStatus(res, 200, 'PATCH ingest');
    if (res.headers['upload-offset'] !== String(size)) {
      throw new Error(`PATCH ingest: Upload-Offset ${String(res.headers['upload-offset'])}, expected ${size}`);
    }
  });
  const commit = await timed(async () => {
    const res = await request(`${url}/v1/ingests/${ref}/commit`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ size, digest }),
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    const info = JSON.parse(await expectStatus(res, 201, 'commit')) as { digest?: string; size?: number };
    if (info.digest !== digest || info.size !== size) throw new Error(`commit answered ${JSON.stringify(info)}`);
  });
  return { patch, commit };
}

/** GET the blob, streamed into a file on the same disk (as `cp` writes its copy). */
async function berthDownload(url: string, digest: string, dest: string): Promise<void> {
  const res = await request(`${url}/v1/content/${encodeURIComponent(digest)}`, {
    headersTimeout: 0,
    bodyTimeout: 0,
    highWaterMark: MiB,
  });
  if (res.statusCode !== 200) await expectStatus(res, 200, 'GET content');
  await pipeline(res.body, createWriteStream(dest, { highWaterMark: MiB }));
}

async function deleteBlob(url: string, digest: string): Promise<void> {
  const res = await request(`${url}/v1/content/${encodeURIComponent(digest)}`, { method: 'DELETE' });
  await expectStatus(res, 204, 'DELETE content');
}


// ---- the benchmark ------------------------------------------------------------------------------

interface Row {
  name: string;
  seconds: number[];
  /** Indented breakdown or informational rows: not part of the verdict. */
  sub?: boolean;
}

const row = (name: string, sub = false): Row => ({ name, seconds: [], sub });

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'size-mib': { type: 'string', default: '1024' },
      runs: { type: 'string', default: '3' },
      'cpu-prof': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log('usage: node --import tsx bench/content.ts [--size-mib 1024] [--runs 3] [--cpu-prof DIR]');
    return;
  }
  const sizeMiB = Number(values['size-mib']);
  const runs = Number(values.runs);
  if (!Number.isInteger(sizeMiB) || sizeMiB <= 0) throw new Error('--size-mib must be a positive integer');
  if (!Number.isInteger(runs) || runs <= 0) throw new Error('--runs must be a positive integer');
  const size = sizeMiB * MiB;
  const cpuProfDir = values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined;
  requireBuilt();
  if (cpuProfDir) await mkdir(cpuProfDir, { recursive: true });
  const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

  const dir = await mkdtemp(join(tmpdir(), 'berth-bench-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  const source = join(dir, 'source.bin');
  const downloaded = join(dir, 'downloaded.bin');
  const copy = join(dir, 'copy.bin');
  const scratch = join(dir, 'scratch.bin');

  console.log(`berth content benchmark: ${sizeMiB} MiB blob, ${runs} run(s); MB = 10^6 bytes`);
  console.log(`node ${process.version}, ${availableParallelism()} CPU(s); client, server and peers share them`);
  console.log('file systems (temp folder with the source, the copies and the store root; the project):');
  for (const line of (await run('df', ['-PT', dir, projectDir])).trimEnd().split('\n')) console.log(`  ${line}`);

  process.stdout.write(`writing the ${sizeMiB} MiB source file ... `);
  let digest = '';
  const makeSeconds = await timed(async () => {
    digest = await makeSource(source, size);
  });
  console.log(`${makeSeconds.toFixed(2)} s, ${digest}`);

  /**
   * Before each timed step: copy the source to a scratch file and delete it, then `sync`. Every
   * step thus starts with the same amount of recently freed page cache to write into and no dirty
   * pages of its own or of an earlier step. (On a VM, memory the guest has not touched lately costs
   * far more to fault in than memory just freed: without this, whichever step first grows the
   * page cache pays for it, and the order of the steps decides the ratios.)
   */
  const settle = async (): Promise<void> => {
    await run('cp', [source, scratch]);
    await rm(scratch);
    await syncAll();
  };
  const cpTo = (dest: string) => run('cp', [source, dest]).then(() => undefined);

  const berth = await startBerth(join(dir, 'root'), join(dir, 'state'), { cpuProfDir });
  const rss = new RssSampler(berth.pid);
  onCleanup(async () => rss.stop());
  const idleRss = rss.sample();

  // Warm-up (untimed): a small blob through the same paths, so run 1 does not pay for start-up JIT.
  {
    const warm = join(dir, 'warm.bin');
    const warmDigest = await makeSource(warm, 8 * MiB);
    await berthUpload(berth.url, warm, 8 * MiB, warmDigest);
    await berthDownload(berth.url, warmDigest, downloaded);
    await deleteBlob(berth.url, warmDigest);
    await rm(warm);
    await rm(downloaded);
  }

  const rows = {
    upload: row('berth upload+commit'),
    patch: row('  PATCH (stream, hash, fsync)', true),
    commit: row('  commit', true),
    peerUpload: row('peer sha256sum+cp'),
    sha: row('  sha256sum', true),
    cpAfterSha: row('  cp', true),
    download: row('berth download (to a file)'),
    peerDownload: row('peer cp'),
    discard: row('berth download, discarded (info)', true),
    openssl: row('peer openssl sha256+cp (info)', true),
    durable: row('peer sha256sum+cp+fsync (info)', true),
  };
  const cpu = { upload: [] as number[], download: [] as number[] };
  const stepRss = { upload: 0, download: 0 };

  for (let i = 1; i <= runs; i++) {
    const say = (what: string, r: Row) => process.stdout.write(` ${what} ${r.seconds.at(-1)!.toFixed(2)}`);
    process.stdout.write(`run ${i}/${runs} (s):`);

    // berth upload+commit: one PATCH with the whole file, then the commit with the digest
    await settle();
    rss.window();
    let cpu0 = procCpuSeconds(berth.pid);
    const up = await berthUpload(berth.url, source, size, digest);
    cpu.upload.push(procCpuSeconds(berth.pid) - cpu0);
    stepRss.upload = Math.max(stepRss.upload, rss.windowMax);
    rows.patch.seconds.push(up.patch);
    rows.commit.seconds.push(up.commit);
    rows.upload.seconds.push(up.patch + up.commit);
    say('upload+commit', rows.upload);

    // berth download, written to a file on the same disk (as cp writes its copy)
    await settle();
    rss.window();
    cpu0 = procCpuSeconds(berth.pid);
    rows.download.seconds.push(await timed(() => berthDownload(berth.url, digest, downloaded)));
    cpu.download.push(procCpuSeconds(berth.pid) - cpu0);
    stepRss.download = Math.max(stepRss.download, rss.windowMax);
    say('download', rows.download);
    const got = await stat(downloaded); // untimed: the download is the blob
    if (got.size !== size) throw new Error(`download has ${got.size} bytes, expected ${size}`);
    const gotDigest = await sha256File(downloaded);
    if (gotDigest !== digest) throw new Error(`download digest ${gotDigest}, expected ${digest}`);
    await rm(downloaded);

    // (info) the same download, bytes discarded: what the HTTP path costs without the file write
    await settle();
    rss.window();
    rows.discard.seconds.push(await timed(() => berthDownload(berth.url, digest, '/dev/null')));
    stepRss.download = Math.max(stepRss.download, rss.windowMax);
    say('discarded', rows.discard);

    // peer for upload+commit: sha256sum then cp, timed together
    await settle();
    let shaOut = '';
    const sha = await timed(async () => {
      shaOut = await run('sha256sum', [source]);
    });
    const cpAfterSha = await timed(() => cpTo(copy));
    if (`sha256:${shaOut.split(' ')[0]}` !== digest) throw new Error(`sha256sum says ${shaOut.trim()}, expected ${digest}`);
    rows.sha.seconds.push(sha);
    rows.cpAfterSha.seconds.push(cpAfterSha);
    rows.peerUpload.seconds.push(sha + cpAfterSha);
    say('sha256sum+cp', rows.peerUpload);
    await rm(copy);

    // peer for download: cp alone
    await settle();
    rows.peerDownload.seconds.push(await timed(() => cpTo(copy)));
    say('cp', rows.peerDownload);
    await rm(copy);

    // (info) a faster hash than coreutils': OpenSSL's, as berth's (node's crypto) is
    if (hasOpenssl) {
      await settle();
      rows.openssl.seconds.push(
        await timed(async () => {
          await run('openssl', ['dgst', '-sha256', source]);
          await cpTo(copy);
        }),
      );
      say('openssl+cp', rows.openssl);
      await rm(copy);
    }

    // (info) the durable peer: berth fsyncs what it acknowledges, cp does not
    await settle();
    rows.durable.seconds.push(
      await timed(async () => {
        await run('sha256sum', [source]);
        await cpTo(copy);
        await run('sync', [copy]); // fsync(2) of the copy only
      }),
    );
    say('sha256sum+cp+fsync', rows.durable);
    await rm(copy);

    // between runs the blob goes too
    await deleteBlob(berth.url, digest);
    console.log();
  }

  const sampled = rss.sample();
  const hwm = procStatusKiB(berth.pid, 'VmHWM') * 1024;
  rss.stop();
  await berth.stop();

  // ---- report -----------------------------------------------------------------------------------
  const mb = size / MB;
  const num = (s: number) => s.toFixed(3).padStart(9);
  console.log(`\n${'step'.padEnd(34)}${'median s'.padStart(9)}${'min s'.padStart(9)}${'max s'.padStart(9)}${'MB/s'.padStart(8)}`);
  for (const r of Object.values(rows)) {
    if (r.seconds.length === 0) continue;
    const m = median(r.seconds);
    console.log(
      `${r.name.padEnd(34)}${num(m)}${num(Math.min(...r.seconds))}${num(Math.max(...r.seconds))}${(mb / m).toFixed(0).padStart(8)}`,
    );
  }
  const ratio = (a: number[], b: number[]) => {
    const perRun = a.map((x, i) => x / b[i]);
    return { median: median(a) / median(b), min: Math.min(...perRun), max: Math.max(...perRun) };
  };
  const show = (x: { median: number; min: number; max: number }) =>
    `${x.median.toFixed(2)}x   (per run ${x.min.toFixed(2)}x .. ${x.max.toFixed(2)}x)`;
  const upRatio = ratio(rows.upload.seconds, rows.peerUpload.seconds);
  console.log('\nratio berth/peer (of the medians):');
  console.log(`  upload+commit / sha256sum+cp            ${show(upRatio)}`);
  console.log(`  download / cp                           ${show(ratio(rows.download.seconds, rows.peerDownload.seconds))}`);
  if (hasOpenssl) {
    console.log(`  upload+commit / openssl sha256+cp       ${show(ratio(rows.upload.seconds, rows.openssl.seconds))}  (info)`);
  }
  console.log(`  upload+commit / sha256sum+cp+fsync      ${show(ratio(rows.upload.seconds, rows.durable.seconds))}  (info)`);
  console.log(
    `berth server CPU (user+sys), median: upload+commit ${median(cpu.upload).toFixed(2)} s, ` +
      `download ${median(cpu.download).toFixed(2)} s`,
  );
  // The kernel updates VmHWM from per-CPU counters lazily: a sample can exceed it by a little.
  const peak = Math.max(hwm, rss.max, sampled);
  console.log(
    `berth server RSS: VmHWM ${(hwm / MB).toFixed(1)} MB; VmRSS sampled every 100 ms: max ${(rss.max / MB).toFixed(1)} MB ` +
      `(upload ${(stepRss.upload / MB).toFixed(1)}, download ${(stepRss.download / MB).toFixed(1)}), ` +
      `${(idleRss / MB).toFixed(1)} MB after start-up`,
  );
  const upOk = upRatio.median <= targets.uploadRatio;
  const rssOk = peak / MB < targets.rssMB;
  console.log(
    `verdict: upload+commit ${upRatio.median.toFixed(2)}x sha256sum+cp (target <= ${targets.uploadRatio}x): ${upOk ? 'MET' : 'MISSED'}; ` +
      `peak RSS ${(peak / MB).toFixed(1)} MB (target < ${targets.rssMB} MB): ${rssOk ? 'MET' : 'MISSED'}`,
  );
  if (cpuProfDir) summariseProfile(cpuProfDir);
}

await runBench('bench/content.ts', main);
