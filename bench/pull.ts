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
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { clkTck, median, procCpuSeconds, RssSampler, summariseProfile, timed } from './measure.js';
import { bigLayer, buildImage, pushImage, type Image } from '../test/fixtures/images.js';
import { freePort, REGISTRY_BIN, startRegistry, type Registry } from '../test/fixtures/registry.js';

const MiB = 1 << 20;
const MB = 1e6;
const targets = { skopeoRatio: 1.0, ctrRatio: 0.5, concurrentRatio: 1.2, rssMB: 200 };
const REPO = 'bench/big';
const TAG = 'v1';
const WARM_REPO = 'bench/warm';

const projectDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const berthBin = join(projectDir, 'bin', 'berth.js');
const SETPRIV = '/usr/bin/setpriv';
const GNU_TIME = '/usr/bin/time';

// ---- cleanup, also on error and on SIGINT/SIGTERM -----------------------------------------------

const cleanups: Array<() => Promise<void>> = [];
const children = new Set<ChildProcess>();
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  return (cleaning ??= (async () => {
    for (const child of children) child.kill('SIGKILL');
    for (const fn of cleanups.reverse()) {
      await fn().catch((err: unknown) => console.error(`cleanup: ${(err as Error).message}`));
    }
  })());
}

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(code));
  });
}

// ---- small helpers ------------------------------------------------------------------------------

/** Where `cmd` is on PATH (or undefined). */
function which(cmd: string): string | undefined {
  if (cmd.includes('/')) return existsSync(cmd) ? cmd : undefined;
  for (const dir of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    const p = join(dir, cmd);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Runs a command to completion; rejects on a non-zero exit with the end of its stderr. */
function run(cmd: string, args: string[], opts: { quiet?: boolean } = {}): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', opts.quiet ? 'ignore' : 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      err += s;
      if (err.length > 64 * 1024) err = err.slice(-64 * 1024);
    });
    child.once('error', (e) => {
      children.delete(child);
      reject(e);
    });
    child.once('close', (code, signal) => {
      children.delete(child);
      if (code === 0) resolvePromise(out);
      else reject(new Error(`${cmd} ${args.join(' ')} failed: ${signal ?? `exit ${code}`}\n${err.trimEnd()}`));
    });
  });
}

interface Usage {
  /** User + system CPU seconds of the command and its children. */
  cpu: number;
  /** Peak RSS of the command (the largest of it and its children), bytes. */
  maxRss: number;
}

/** Runs a command under GNU time (when there is one) for its CPU time and peak RSS. */
async function runMeasured(cmd: string, args: string[], scratch: string): Promise<Usage | undefined> {
  if (!existsSync(GNU_TIME)) {
    await run(cmd, args, { quiet: true });
    return undefined;
  }
  const out = join(scratch, 'time.txt');
  await run(GNU_TIME, ['-f', '%U %S %M', '-o', out, cmd, ...args], { quiet: true });
  const [user, sys, maxKiB] = (await readFile(out, 'utf8')).trim().split('\n').at(-1)!.split(' ').map(Number);
  await rm(out, { force: true });
  return { cpu: user + sys, maxRss: maxKiB * 1024 };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function waitExit(p: ChildProcess, ms: number): Promise<boolean> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolvePromise) => {
    const t = setTimeout(() => resolvePromise(false), ms);
    t.unref();
    p.once('exit', () => {
      clearTimeout(t);
      resolvePromise(true);
    });
  });
}

/** SIGTERM, then SIGKILL after `ms`; resolves once the process has exited. */
async function stopProcess(p: ChildProcess, name: string, ms = 15_000): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill('SIGTERM');
  if (!(await waitExit(p, ms))) {
    console.error(`${name} did not stop within ${ms / 1000} s: SIGKILL`);
    p.kill('SIGKILL');
    await waitExit(p, 5000);
  }
}

// ---- /proc --------------------------------------------------------------------------------------

/** Busy CPU seconds of the whole machine so far (all CPUs), from /proc/stat. */
function machineBusySeconds(): number {
  const [, user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  return (user + nice + system + irq + softirq + steal) / clkTck;
}

const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** CPU seconds of a process's main thread (the JS thread, for node) and of its other threads. */
function procThreadCpu(pid: number): { main: number; others: number } {
  let main = 0;
  let others = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const s = procCpuSeconds(Number(tid), `/proc/${pid}/task/${tid}/stat`);
      if (Number(tid) === pid) main += s;
      else others += s;
    } catch {
      // the thread ended meanwhile (its time is lost to this count)
    }
  }
  return { main, others };
}

// ---- the berth server ---------------------------------------------------------------------------

interface Berth {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

async function startBerth(root: string, state: string, cpuProfDir: string | undefined, config: string | undefined): Promise<Berth> {
  const port = await freePort();
  const nodeArgs = cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir] : [];
  const child = spawn(
    process.execPath,
    [
      ...nodeArgs,
      berthBin,
      'serve',
      '--root', root,
      '--state', state,
      '--address', `127.0.0.1:${port}`,
      '--log-level', 'warn',
      ...(config ? ['--config', config] : []),
    ],
    { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, NODE_OPTIONS: '' } },
  );
  const stop = () => stopProcess(child, 'berth'); // SIGTERM: berth closes its store; --cpu-prof writes its profile
  cleanups.push(stop);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`berth exited during start-up (${child.exitCode ?? child.signalCode})`);
    try {
      const res = await request(`${url}/healthz`);
      await res.body.dump();
      if (res.statusCode === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('berth did not answer /healthz within 20 s');
    await sleep(50);
  }
  return { url, pid: child.pid!, stop };
}

async function api(url: string, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await request(`${url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  return { status: res.statusCode, json };
}

interface PullResult {
  id: string;
  state: string;
  error?: { code: string; message: string };
  image?: string;
  bytesFetched: number;
  blobs: Array<{ digest: string; size: number; state: string }>;
}

/** One `POST /v1/pulls?wait=true`: answers when the pull has ended; it must have succeeded. */
async function berthPull(url: string, ref: string): Promise<PullResult> {
  const { status, json } = await api(url, 'POST', '/v1/pulls?wait=true', { ref });
  if (status !== 200) throw new Error(`POST /v1/pulls?wait=true ${ref}: HTTP ${status}: ${JSON.stringify(json)}`);
  const pull = json as PullResult;
  if (pull.state !== 'done') throw new Error(`pull ${pull.id} of ${ref} ended ${pull.state}: ${JSON.stringify(pull.error)}`);
  return pull;
}

/** The digests (and sizes) in berth's content store, and the number of open ingests. */
async function berthStore(url: string): Promise<{ blobs: Map<string, number>; ingests: number }> {
  const content = await api(url, 'GET', '/v1/content');
  if (content.status !== 200) throw new Error(`GET /v1/content: HTTP ${content.status}`);
  const ingests = await api(url, 'GET', '/v1/ingests');
  if (ingests.status !== 200) throw new Error(`GET /v1/ingests: HTTP ${ingests.status}`);
  const items = (content.json as { items: Array<{ digest: string; size: number }> }).items;
  return { blobs: new Map(items.map((i) => [i.digest, i.size])), ingests: (ingests.json as { items: unknown[] }).items.length };
}

/** Deletes the image (`?sync=true`: its blobs are collected before the answer); the store must be empty then. */
async function berthReset(url: string, name: string): Promise<void> {
  const del = await api(url, 'DELETE', `/v1/images/${encodeURIComponent(name)}?sync=true`);
  if (del.status !== 204 && del.status !== 404) throw new Error(`DELETE image ${name}: HTTP ${del.status}: ${JSON.stringify(del.json)}`);
  const left = await berthStore(url);
  if (left.blobs.size > 0 || left.ingests > 0) {
    throw new Error(`berth's store is not empty after deleting ${name} with ?sync=true: ${left.blobs.size} blob(s), ${left.ingests} ingest(s)`);
  }
}

/** After a pull: the store holds exactly the image's blobs, at their sizes. */
async function checkBerthHas(url: string, expected: Map<string, number>): Promise<void> {
  const { blobs } = await berthStore(url);
  for (const [digest, size] of expected) {
    if (blobs.get(digest) !== size) throw new Error(`berth's store: ${digest} is ${blobs.has(digest) ? `${blobs.get(digest)} bytes, expected ${size}` : 'missing'}`);
  }
  if (blobs.size !== expected.size) throw new Error(`berth's store holds ${blobs.size} blobs, expected ${expected.size}`);
}

// ---- containerd ---------------------------------------------------------------------------------

interface Containerd {
  pid: number;
  address: string;
  ctr(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

async function startContainerd(dir: string): Promise<Containerd> {
  const root = join(dir, 'root');
  const state = join(dir, 'state');
  const address = join(dir, 'containerd.sock');
  const configPath = join(dir, 'config.toml');
  await mkdir(root, { recursive: true });
  // Only what content fetch needs: no CRI (it would want CNI and more), no snapshotters that
  // probe the host's file systems, and the opt plugin inside our root (its default is /opt).
  await writeFile(
    configPath,
    [
      'version = 2',
      `root = ${JSON.stringify(root)}`,
      `state = ${JSON.stringify(state)}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",',
      '  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]',
      '[grpc]',
      `  address = ${JSON.stringify(address)}`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${JSON.stringify(join(root, 'opt'))}`,
      '',
    ].join('\n'),
  );
  const bin = which('containerd')!;
  // setpriv --pdeathsig: containerd dies with this process, even when it is SIGKILLed.
  const [cmd, args] = existsSync(SETPRIV)
    ? [SETPRIV, ['--pdeathsig', 'KILL', '--', bin, '--config', configPath, '--log-level', 'warn']]
    : [bin, ['--config', configPath, '--log-level', 'warn']];
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    log += s;
    if (log.length > 64 * 1024) log = log.slice(-64 * 1024);
  });
  const stop = () => stopProcess(child, 'containerd');
  cleanups.push(stop);
  const ctr = (a: string[]) => run(which('ctr')!, ['--address', address, ...a]);
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`containerd exited during start-up:\n${log}`);
    if (existsSync(address)) {
      try {
        await ctr(['version']);
        break;
      } catch {
        // not serving yet
      }
    }
    if (Date.now() > deadline) throw new Error(`containerd did not answer within 20 s:\n${log}`);
    await sleep(100);
  }
  return { pid: child.pid!, address, ctr, stop };
}

/** Digests in containerd's content store (namespace default). */
async function ctrContent(c: Containerd): Promise<Set<string>> {
  const out = await c.ctr(['content', 'ls', '-q']);
  return new Set(out.split('\n').map((l) => l.trim()).filter(Boolean));
}

/** Removes the image and, through `--sync`, its content; the store must be empty then. */
async function ctrReset(c: Containerd, ref: string): Promise<void> {
  const images = (await c.ctr(['images', 'ls', '-q'])).trim().split('\n').filter(Boolean);
  if (images.includes(ref)) await c.ctr(['images', 'rm', '--sync', ref]);
  const left = await ctrContent(c);
  if (left.size > 0) {
    await c.ctr(['content', 'rm', ...left]);
    const still = await ctrContent(c);
    if (still.size > 0) throw new Error(`containerd's store is not empty after images rm --sync and content rm: ${[...still].join(' ')}`);
  }
}


// ---- the benchmark ------------------------------------------------------------------------------

type Tool = 'berth' | 'skopeo' | 'ctr' | 'berthN';

interface Row {
  name: string;
  seconds: number[];
  /** CPU seconds per round (user+sys), where known. */
  cpu: number[];
}

/** A missing prerequisite: said in one paragraph, without a stack trace. */
class SetupError extends Error {}

function checkTools(): void {
  const missing: Array<[string, string]> = [];
  if (!existsSync(REGISTRY_BIN)) missing.push([REGISTRY_BIN, 'docker-registry']);
  if (!which('skopeo')) missing.push(['skopeo', 'skopeo']);
  if (!which('containerd')) missing.push(['containerd', 'containerd']);
  if (!which('ctr')) missing.push(['ctr', 'containerd']);
  if (missing.length === 0) return;
  const packages = [...new Set(missing.map(([, p]) => p))];
  throw new SetupError(
    `missing: ${missing.map(([c]) => c).join(', ')}. The pull benchmark needs Debian's docker-registry, skopeo and ` +
      `containerd (which brings ctr); it installs nothing itself. Install them with:\n` +
      `  sudo apt-get update && sudo apt-get install -y ${packages.join(' ')}`,
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'size-mib': { type: 'string', default: '1024' },
      layers: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '3' },
      concurrent: { type: 'string', default: '10' },
      'cpu-prof': { type: 'string' },
      'berth-config': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(
      'usage: node --import tsx bench/pull.ts [--size-mib 1024] [--layers 5] [--rounds 3] [--concurrent 10]\n' +
        '                                     [--cpu-prof DIR] [--berth-config FILE]',
    );
    return;
  }
  const sizeMiB = Number(values['size-mib']);
  const layerCount = Number(values.layers);
  const rounds = Number(values.rounds);
  const concurrent = Number(values.concurrent);
  for (const [name, v] of [['--size-mib', sizeMiB], ['--layers', layerCount], ['--rounds', rounds], ['--concurrent', concurrent]] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer`);
  }
  const cpuProfDir = values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined;
  const berthConfig = values['berth-config'] ? resolve(values['berth-config']) : undefined;
  if (!existsSync(join(projectDir, 'dist', 'src', 'cli', 'main.js'))) {
    throw new SetupError('dist/ is missing: compile first with `npx tsc -p .`');
  }
  checkTools();
  if (process.getuid?.() !== 0) console.log('note: not root; containerd may refuse to start without root');
  if (cpuProfDir) await mkdir(cpuProfDir, { recursive: true });
  const skopeoArgs = existsSync('/etc/containers/policy.json') ? [] : ['--insecure-policy'];

  const dir = await mkdtemp(join(tmpdir(), 'berth-bench-pull-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));

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
  cleanups.push(() => registry.stop());
  console.log('file systems (temp folder: berth root, OCI layouts, containerd root; the registry storage):');
  for (const line of (await run('df', ['-PT', dir, registry.storageDir])).trimEnd().split('\n')) console.log(`  ${line}`);
  const perLayer = Math.floor((sizeMiB * MiB) / layerCount);
  let image!: Image;
  const buildSeconds = await timed(async () => {
    const layers = [];
    for (let i = 0; i < layerCount; i++) layers.push(await bigLayer(perLayer, { seed: i + 1, path: `layer-${i}.bin` }));
    image = buildImage({ layers });
  });
  const pushSeconds = await timed(async () => {
    await pushImage(registry, REPO, TAG, image);
  });
  const expected = new Map<string, number>([[image.digest, image.size], ...image.blobs.map((b) => [b.digest, b.size] as [string, number])]);
  const total = [...expected.values()].reduce((a, b) => a + b, 0);
  const ref = `${registry.host}/${REPO}:${TAG}`;
  console.log(
    `image ${ref}: ${expected.size} blobs (manifest, config, ${layerCount} layers of ${(perLayer / MiB).toFixed(1)} MiB), ` +
      `${(total / MB).toFixed(1)} MB; built in ${buildSeconds.toFixed(1)} s, pushed in ${pushSeconds.toFixed(1)} s`,
  );
  // A small image for the untimed warm-up of every tool.
  const warmImage = buildImage({ layers: [await bigLayer(4 * MiB, { seed: 101 }), await bigLayer(4 * MiB, { seed: 102 })] });
  await pushImage(registry, WARM_REPO, TAG, warmImage);
  const warmRef = `${registry.host}/${WARM_REPO}:${TAG}`;
  await run('sync', []);

  // ---- berth, containerd ----
  const berth = await startBerth(join(dir, 'berth-root'), join(dir, 'berth-state'), cpuProfDir, berthConfig);
  const rss = new RssSampler(berth.pid);
  cleanups.push(async () => rss.stop());
  const idleRss = rss.sample();
  const containerd = await startContainerd(join(dir, 'containerd'));
  const crss = new RssSampler(containerd.pid);
  cleanups.push(async () => crss.stop());

  const scratchDir = join(dir, 'scratch');
  await mkdir(scratchDir);

  // Warm-up (untimed): each tool pulls the small image once, so round 1 does not pay for JIT,
  // first connections and lazily created folders.
  {
    await berthPull(berth.url, warmRef);
    await berthReset(berth.url, warmRef);
    const oci = join(dir, 'oci-warm');
    await run(which('skopeo')!, ['copy', ...skopeoArgs, '--src-tls-verify=false', `docker://${warmRef}`, `oci:${oci}`], { quiet: true });
    await rm(oci, { recursive: true, force: true });
    await containerd.ctr(['content', 'fetch', '--plain-http', warmRef]);
    await ctrReset(containerd, warmRef);
  }

  /**
   * Before each timed step: write and delete a scratch file as large as the image, then `sync`.
   * Each step thus starts with no dirty pages and the same amount of recently freed page cache to
   * write into (on a VM, memory the guest has not touched lately is slow to fault in; without
   * this, whichever step first grows the page cache pays for it). As in bench/content.ts.
   */
  const settleBuf = Buffer.alloc(16 * MiB, 0x5a);
  const settle = async (): Promise<void> => {
    const scratch = join(scratchDir, 'settle.bin');
    const fh = await open(scratch, 'w');
    try {
      for (let at = 0; at < total; at += settleBuf.length) await fh.write(settleBuf, 0, Math.min(settleBuf.length, total - at));
    } finally {
      await fh.close();
    }
    await rm(scratch);
    await run('sync', []);
  };

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
        pull = await berthPull(berth.url, ref);
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
        pulls = await Promise.all(Array.from({ length: concurrent }, () => berthPull(berth.url, ref)));
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
  for (let r = 0; r < rounds; r++) {
    process.stdout.write(`round ${r + 1}/${rounds} (s):`);
    for (let k = 0; k < order.length; k++) {
      const tool = order[(r + k) % order.length];
      await settle();
      const s = await steps[tool]();
      rows[tool].seconds.push(s);
      process.stdout.write(` ${label[tool]} ${s.toFixed(2)}`);
    }
    console.log();
  }

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
  const ratio = (a: number[], b: number[]) => {
    const perRound = a.map((x, i) => x / b[i]);
    return { median: median(a) / median(b), min: Math.min(...perRound), max: Math.max(...perRound) };
  };
  const show = (x: { median: number; min: number; max: number }) =>
    `${x.median.toFixed(2)}x   (per round ${x.min.toFixed(2)}x .. ${x.max.toFixed(2)}x)`;
  const vsSkopeo = ratio(rows.berth.seconds, rows.skopeo.seconds);
  const vsCtr = ratio(rows.berth.seconds, rows.ctr.seconds);
  const nVsOne = ratio(rows.berthN.seconds, rows.berth.seconds);
  console.log('\nratios (of the medians):');
  console.log(`  berth / skopeo                          ${show(vsSkopeo)}`);
  console.log(`  berth / ctr                             ${show(vsCtr)}`);
  console.log(`  berth ${concurrent} concurrent / 1`.padEnd(42) + show(nVsOne));
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

try {
  await main();
} catch (err) {
  // After SIGINT/SIGTERM the failure is the interruption itself (the processes went away).
  if (err instanceof SetupError) console.error(`bench/pull.ts: ${err.message}`);
  else if (!cleaning) console.error(`\nbench failed: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
