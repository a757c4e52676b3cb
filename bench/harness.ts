// What every benchmark that starts processes needs: cleanup at the end (also after an error or
// Ctrl-C), commands run to completion (optionally under GNU time), processes stopped, missing
// tools reported, and the page cache brought to the same state before each timed step.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

// ---- cleanup, also on error and on SIGINT/SIGTERM -----------------------------------------------

const cleanups: Array<() => Promise<void>> = [];
const children = new Set<ChildProcess>();
let cleaning: Promise<void> | undefined;

/** Runs `fn` at the end (the last registered first), after an error or a signal too. */
export function onCleanup(fn: () => Promise<void>): void {
  cleanups.push(fn);
}

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

/** A missing prerequisite: said in one paragraph, without a stack trace. */
export class SetupError extends Error {}

/** Runs a benchmark's main, reports how it failed (exit code 1) and cleans up in every case. */
export async function runBench(name: string, main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (err) {
    // After SIGINT/SIGTERM the failure is the interruption itself (the processes went away).
    if (err instanceof SetupError) console.error(`${name}: ${err.message}`);
    else if (!cleaning) console.error(`\nbench failed: ${(err as Error).stack ?? String(err)}`);
    process.exitCode = 1;
  } finally {
    await cleanup();
  }
}

/** The command line's `options`; undefined after `-h`/`--help`, which prints `usage`. */
export function benchArgs<const O extends NonNullable<ParseArgsConfig['options']>>(usage: string, options: O): ReturnType<typeof parseArgs<{ options: O }>>['values'] | undefined {
  if (process.argv.slice(2).some((a) => a === '-h' || a === '--help')) {
    console.log(usage);
    return undefined;
  }
  return parseArgs({ options }).values;
}

/** The options named (without `--`) as positive integers; a SetupError names the first that is not one. */
export function positiveIntegers<const K extends string>(values: Partial<Record<K, unknown>>, names: readonly K[]): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const name of names) {
    const v = Number(values[name]);
    if (!Number.isInteger(v) || v <= 0) throw new SetupError(`--${name} must be a positive integer`);
    out[name] = v;
  }
  return out;
}

// ---- commands -----------------------------------------------------------------------------------

/** Where `cmd` is on PATH (or undefined). */
export function which(cmd: string): string | undefined {
  if (cmd.includes('/')) return existsSync(cmd) ? cmd : undefined;
  for (const dir of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    const p = join(dir, cmd);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/**
 * Throws a SetupError naming what is missing of `needs` (command → Debian package) and the
 * `apt-get install` line for it; `purpose` says what needs them.
 */
export function requireTools(needs: Array<[command: string, pkg: string]>, purpose: string): void {
  const missing = needs.filter(([cmd]) => !which(cmd));
  if (missing.length === 0) return;
  const packages = [...new Set(missing.map(([, p]) => p))];
  throw new SetupError(
    `missing: ${missing.map(([c]) => c).join(', ')}. ${purpose}; it installs nothing itself. Install them with:\n` +
      `  sudo apt-get update && sudo apt-get install -y ${packages.join(' ')}`,
  );
}

/** Runs a command to completion; rejects on a non-zero exit with the end of its stderr. */
export function run(cmd: string, args: string[], opts: { quiet?: boolean } = {}): Promise<string> {
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

export interface Usage {
  /** User + system CPU seconds of the command and its children. */
  cpu: number;
  /** Peak RSS of the command (the largest of it and its children), bytes. */
  maxRss: number;
}

const GNU_TIME = '/usr/bin/time';

/**
 * Runs a command under GNU time (when there is one) for its CPU time and peak RSS; the figures
 * go through a file in `scratch` named after `tag` (distinct for commands run side by side).
 */
export async function runMeasured(cmd: string, args: string[], scratch: string, tag = 'time'): Promise<Usage | undefined> {
  if (!existsSync(GNU_TIME)) {
    await run(cmd, args, { quiet: true });
    return undefined;
  }
  const out = join(scratch, `${tag}.txt`);
  await run(GNU_TIME, ['-f', '%U %S %M', '-o', out, cmd, ...args], { quiet: true });
  const [user, sys, maxKiB] = (await readFile(out, 'utf8')).trim().split('\n').at(-1)!.split(' ').map(Number);
  await rm(out, { force: true });
  return { cpu: user + sys, maxRss: maxKiB * 1024 };
}

// ---- processes ----------------------------------------------------------------------------------

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const exited = (p: ChildProcess): boolean => p.exitCode !== null || p.signalCode !== null;

function waitExit(p: ChildProcess, ms: number): Promise<boolean> {
  if (exited(p)) return Promise.resolve(true);
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
export async function stopProcess(p: ChildProcess, name: string, ms = 15_000): Promise<void> {
  if (exited(p)) return;
  p.kill('SIGTERM');
  if (!(await waitExit(p, ms))) {
    console.error(`${name} did not stop within ${ms / 1000} s: SIGKILL`);
    p.kill('SIGKILL');
    await waitExit(p, 5000);
  }
}

/**
 * Polls `ready` every `everyMs` until it resolves true; throws when `child` exits first (with
 * `log()`, what it said) or after `ms`.
 */
export async function waitReady(child: ChildProcess, name: string, ready: () => Promise<boolean>, log: () => string, ms = 20_000, everyMs = 50): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (exited(child)) throw new Error(`${name} exited during start-up (${child.exitCode ?? child.signalCode}):\n${log()}`);
    if (await ready().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${name} did not answer within ${ms / 1000} s:\n${log()}`);
    await sleep(everyMs);
  }
}

// ---- the page cache -----------------------------------------------------------------------------

const settleBuf = Buffer.alloc(16 << 20, 0x5a);

/**
 * Before a timed step: writes and deletes a scratch file of `bytes` in `scratchDir`, then `sync`.
 * Each step thus starts with no dirty pages and the same amount of recently freed page cache to
 * write into (on a VM, memory the guest has not touched lately is slow to fault in; without this,
 * whichever step first grows the page cache pays for it). As in bench/content.ts.
 */
export async function settle(scratchDir: string, bytes: number): Promise<void> {
  const scratch = join(scratchDir, 'settle.bin');
  const fh = await open(scratch, 'w');
  try {
    for (let at = 0; at < bytes; at += settleBuf.length) await fh.write(settleBuf, 0, Math.min(settleBuf.length, bytes - at));
  } finally {
    await fh.close();
  }
  await rm(scratch);
  await run('sync', []);
}

/**
 * `rounds` rounds of one timed step per tool, printed as `round 1/3 (s): berth 1.23 skopeo 2.34`.
 * The order turns each round, so that no tool always goes first or follows the same one; each
 * step starts settled (`settle` above) over `settleBytes`; `step` returns its seconds, handed to
 * `record`.
 */
export async function turningRounds<T extends string>(opts: {
  rounds: number;
  order: readonly T[];
  scratchDir: string;
  settleBytes: number;
  step: (tool: T) => Promise<number>;
  record: (tool: T, seconds: number) => void;
  label?: (tool: T) => string;
}): Promise<void> {
  for (let r = 0; r < opts.rounds; r++) {
    process.stdout.write(`round ${r + 1}/${opts.rounds} (s):`);
    for (let k = 0; k < opts.order.length; k++) {
      const tool = opts.order[(r + k) % opts.order.length];
      await settle(opts.scratchDir, opts.settleBytes);
      const s = await opts.step(tool);
      opts.record(tool, s);
      process.stdout.write(` ${opts.label?.(tool) ?? tool} ${s.toFixed(2)}`);
    }
    console.log();
  }
}
