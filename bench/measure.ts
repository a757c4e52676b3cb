// What the benchmarks measure of a process, read from /proc, and how they summarise it.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

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
