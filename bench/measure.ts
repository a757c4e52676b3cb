// What the benchmarks measure of a process, read from /proc, and how they summarise it.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Proxy } from '../test/fixtures/proxy.js';

const projectDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Seconds taken by `fn`, wall clock. */
export async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const clkTck = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** A field of /proc/<pid>/status in kB (KiB), e.g. VmRSS or VmHWM. */
export function procStatusKiB(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]);
}

/** User + system CPU seconds of a process so far, from /proc/<pid>/stat. */
export function procCpuSeconds(pid: number, path = `/proc/${pid}/stat`): number {
  const stat = readFileSync(path, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from #3 (state) on
  return (Number(fields[11]) + Number(fields[12])) / clkTck; // #14 utime, #15 stime
}

/** CPU seconds of a process's main thread (the JS thread, for node) and of its other threads. */
export function procThreadCpu(pid: number): { main: number; others: number } {
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

/** Busy CPU seconds of the whole machine so far (all CPUs), from /proc/stat. */
export function machineBusySeconds(): number {
  const [, user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  return (user + nice + system + irq + softirq + steal) / clkTck;
}

export const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

export interface Ratio {
  /** median(a) / median(b). */
  median: number;
  /** The smallest and largest a[i] / b[i] (same round). */
  min: number;
  max: number;
}

/** The ratio of two steps' medians, with its range over the rounds. */
export function ratio(a: number[], b: number[]): Ratio {
  const perRound = a.map((x, i) => x / b[i]);
  return { median: median(a) / median(b), min: Math.min(...perRound), max: Math.max(...perRound) };
}

export const showRatio = (x: Ratio): string => `${x.median.toFixed(2)}x   (per round ${x.min.toFixed(2)}x .. ${x.max.toFixed(2)}x)`;

/** A line of a report's ratios: `what`, then the ratio. */
export const printRatio = (what: string, x: Ratio): void => console.log(`  ${what.padEnd(52)}${showRatio(x)}`);

/** A report's verdict on a goal. */
export const printVerdict = (what: string, ok: boolean): void => console.log(`verdict: ${what}: ${ok ? 'MET' : 'MISSED'}`);

// ---- noise --------------------------------------------------------------------------------------

/** How busy the machine was with other things during a bench's rounds. */
export interface Noise {
  /** The load average before the rounds, and after. */
  load0: string;
  load1: string;
  /** The machine's busy CPU seconds during the rounds less the bench's own: other processes and kernel threads. */
  foreignCpu: number;
  /** Wall seconds of the rounds. */
  roundsWall: number;
}

/**
 * Starts measuring the noise of the rounds. `ownCpu` answers the CPU seconds so far of the bench's
 * own processes; `stop(otherOwnCpu)` ends the measure, `otherOwnCpu` being the bench's own CPU
 * seconds during the rounds that `ownCpu` does not count (processes gone meanwhile).
 */
export function startNoise(ownCpu: () => number): { stop(otherOwnCpu?: number): Noise } {
  const load0 = loadavg();
  const machine0 = machineBusySeconds();
  const own0 = ownCpu();
  const wall0 = performance.now();
  return {
    stop(otherOwnCpu = 0) {
      const roundsWall = (performance.now() - wall0) / 1000;
      const foreignCpu = machineBusySeconds() - machine0 - (ownCpu() - own0) - otherOwnCpu;
      return { load0, load1: loadavg(), foreignCpu, roundsWall };
    },
  };
}

/** The report's line on the noise (without a line break). */
export function noiseLine({ load0, load1, foreignCpu, roundsWall }: Noise): string {
  const cpus = availableParallelism();
  return (
    `noise: load average ${load0} before the rounds, ${load1} after; CPU used by other processes and kernel threads ` +
    `during the rounds ${foreignCpu.toFixed(1)} s of ${(cpus * roundsWall).toFixed(0)} s (${((100 * foreignCpu) / (cpus * roundsWall)).toFixed(1)}%)` +
    (foreignCpu > 0.05 * cpus * roundsWall ? ' — the machine was not quiet: treat the figures as noisy' : '')
  );
}

// ---- the upstream -------------------------------------------------------------------------------

/** What the upstream sent through the counting `proxy` since its last reset: body bytes of all responses, bytes on the wire, and GETs per blob digest. */
export function upstreamSent(proxy: Proxy): { body: number; wire: number; blobGets: Map<string, number> } {
  const blobGets = new Map<string, number>();
  let body = 0;
  for (const r of proxy.responses) {
    body += r.bodyBytes;
    const m = /\/blobs\/(sha256:[0-9a-f]{64})/.exec(r.path);
    if (m && r.method === 'GET') blobGets.set(m[1], (blobGets.get(m[1]) ?? 0) + 1);
  }
  return { body, wire: proxy.bytesFromUpstream, blobGets };
}

/** Samples VmRSS every 100 ms; keeps the overall maximum and the maximum since `window()`. */
export class RssSampler {
  max = 0;
  windowMax = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number) {
    this.timer = setInterval(() => this.sample(), 100);
    this.sample();
  }

  sample(): number {
    try {
      const bytes = procStatusKiB(this.pid, 'VmRSS') * 1024;
      this.max = Math.max(this.max, bytes);
      this.windowMax = Math.max(this.windowMax, bytes);
      return bytes;
    } catch {
      return 0; // the process is gone
    }
  }

  window(): void {
    this.windowMax = 0;
    this.sample();
  }

  hwm(): number {
    try {
      return procStatusKiB(this.pid, 'VmHWM') * 1024;
    } catch {
      return 0;
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

// ---- CPU profile summary ------------------------------------------------------------------------

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** The functions and files with the most self time in the newest profile in `dir` (paths shown relative to the project). */
export function summariseProfile(dir: string, top = 20): void {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort();
  const file = files.at(-1);
  if (!file) {
    console.log(`no .cpuprofile in ${dir}`);
    return;
  }
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  const byFile = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id)!.callFrame;
    const us = profile.timeDeltas[i + 1] ?? 0; // the delta that follows a sample is its duration
    if (frame.functionName === '(idle)') return;
    const url = frame.url.replace(`file://${projectDir}/`, '');
    const where = url ? ` ${url}:${frame.lineNumber + 1}` : '';
    const key = `${frame.functionName || '(anonymous)'}${where}`;
    self.set(key, (self.get(key) ?? 0) + us);
    const f = url || frame.functionName;
    byFile.set(f, (byFile.get(f) ?? 0) + us);
    busy += us;
  });
  const total = profile.endTime - profile.startTime;
  console.log(`\nCPU profile ${join(dir, file)}: main thread busy ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(2)} s`);
  console.log('self time (main thread, not idle); fs writes and fsync run on libuv threads and do not show here');
  for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`  ${(us / 1e3).toFixed(0).padStart(7)} ms ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${key}`);
  }
  console.log('self time by file:');
  for (const [key, us] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, 12)) {
    console.log(`  ${(us / 1e3).toFixed(0).padStart(7)} ms ${((100 * us) / busy).toFixed(1).padStart(5)}%  ${key}`);
  }
}
