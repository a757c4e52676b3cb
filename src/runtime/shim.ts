// The shim: one small supervising process per container, so that a container's exit code is
// collected even when nobody waits for it and berth has restarted in between.
//
// Why a shim: `runc create` detaches — the container's init is orphaned when runc exits and is
// re-parented to the nearest "child subreaper" (else pid 1), and only the parent can read its
// exit status. Node cannot make itself a subreaper (prctl needs an addon) and libuv reaps only
// the children it spawned, so berth cannot be that parent — and would lose its containers on a
// restart if it were. containerd solves this with containerd-shim; berth's shim is the few lines
// of Perl below, because perl-base is Essential on Debian (always installed, like runc's own
// dependencies) and, loading no module (not even POSIX or Fcntl: ~10 ms), starts in ~3 ms and
// ~5 MB, where a Node process takes ~40 MB and 150+ ms to start on this machine.
//
// Protocol. berth spawns `perl -e SHIM <prctl-nr> <shim-pid-file> <pid-file> <exit-file> <runc>
// <create args…>` in a new session (setsid), stdin /dev/null, stdout/stderr the container's log
// files (runc create hands its own stdio to the container; an interactive process without a
// terminal gets pipes to berth instead, `runc exec --detach` alike), and fd 3 a pipe back to
// berth. It:
//   0. writes its pid to <shim-pid-file>;
//   1. prctl(PR_SET_CHILD_SUBREAPER), so the orphaned container init becomes its child;
//   2. runs `runc create …` (or `runc exec --detach …`) and waits for it; on failure reports `exit <status>` and ends;
//   3. reports `created <pid>` (pid from runc's pid file) and closes fd 3 — from here on it
//      needs nothing from berth (SIGPIPE ignored), so it outlives a berth restart;
//   4. waits for the init (started later by berth's `runc start`, or killed by `runc delete`)
//      and writes its status — the exit code, or 128+signal — to `<exit-file>.tmp`, renamed to
//      `<exit-file>` (atomic: a reader sees the whole number or nothing; the file's mtime is the
//      exit time). 255 means the status was lost (the init was not the shim's child).
// Cost: ~6 ms per create over a bare `runc create` (medians of 60 runs: 55 → 61 ms) and one
// small perl process (~5 MB) per container while it lives.
import { spawn } from 'node:child_process';
import { PassThrough, type Readable, type Writable } from 'node:stream';

import { failedPrecondition } from '../../store/errors.js';

const script = String.raw`
use strict;
my ($prctl, $shim_pid_file, $pid_file, $exit_file, @runc) = @ARGV;
$SIG{PIPE} = 'IGNORE';
open(my $report, '>&=', 3) or die "berth shim: no status fd 3: $!\n";
fcntl($report, 2, 1); # F_SETFD, FD_CLOEXEC: runc and the container must not hold berth's pipe
sub report { syswrite($report, "$_[0]\n"); }
sub code { my $s = shift; ($s & 127) ? 128 + ($s & 127) : $s >> 8 }
sub put { my ($path, $text) = @_; open(my $f, '>', "$path.tmp") or return 0; print $f $text; close($f) && rename("$path.tmp", $path) }
put($shim_pid_file, "$$\n") or do { report("error writing $shim_pid_file: $!"); exit 1 };
if (syscall($prctl + 0, 36, 1, 0, 0, 0) != 0) { report("error prctl(PR_SET_CHILD_SUBREAPER): $!"); exit 1 }
my $runc = fork();
if (!defined $runc) { report("error fork: $!"); exit 1 }
if ($runc == 0) { exec { $runc[0] } @runc; exit 127 }
waitpid($runc, 0);
if ($? != 0) { report('exit ' . code($?)); exit 1 }
open(my $pf, '<', $pid_file) or do { report("error reading $pid_file: $!"); exit 1 };
my ($pid) = (<$pf> // '') =~ /(\d+)/;
if (!$pid) { report("error no pid in $pid_file"); exit 1 }
report("created $pid");
close($report);
my $code = 255;
for (;;) {
  my $p = waitpid(-1, 0);
  last if $p == -1;
  if ($p == $pid) { $code = code($?); last }
}
put($exit_file, "$code\n") or exit 1;
`;

// prctl's syscall number per architecture (Perl's `syscall` takes the raw number).
const prctlSyscall: Partial<Record<NodeJS.Architecture, number>> = {
  x64: 157,
  arm64: 167,
  riscv64: 167,
  loong64: 167,
  arm: 172,
  ia32: 172,
  s390x: 172,
  ppc64: 171,
};

/** A stdio of the shim, passed on by runc to the process: an open descriptor, a pipe to berth, or nothing. */
export type ShimStdio = number | 'pipe' | 'ignore';

export interface ShimOptions {
  /**
   * The runc binary and the full command line after it (global flags included): `create` for a
   * task's init, `exec --detach` for another process — either ends once the process is started,
   * leaving it to the shim.
   */
  runc: string;
  runcArgs: string[];
  /** Written by the shim first thing: its own pid, so a restarted berth can tell if it lives. */
  shimPidFile: string;
  pidFile: string;
  exitFile: string;
  /**
   * The process's stdio. Descriptors: the shim keeps its own copies. Pipes tie the process to
   * berth (an interactive process ends its I/O with berth); nothing else of the shim does.
   */
  stdin?: ShimStdio;
  stdout: ShimStdio;
  stderr: ShimStdio;
  env: NodeJS.ProcessEnv;
}

/** berth's ends of the pipes asked for (null where none was). */
export interface ShimPipes {
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
}

export type ShimResult =
  | { created: true; pid: number; shimPid: number; pipes: ShimPipes }
  /** runc create failed with this exit status; the reason is in runc's log. */
  | { created: false; runcExit: number };

/** Starts a shim that runs `runc create`; resolves once the container is created (or not). */
export async function startShim(opts: ShimOptions): Promise<ShimResult> {
  const nr = prctlSyscall[process.arch];
  if (nr === undefined) throw failedPrecondition(`runtime shim: prctl syscall number unknown on ${process.arch}`);
  const child = spawn('perl', ['-e', script, String(nr), opts.shimPidFile, opts.pidFile, opts.exitFile, opts.runc, ...opts.runcArgs], {
    detached: true,
    stdio: [opts.stdin ?? 'ignore', opts.stdout, opts.stderr, 'pipe'],
    env: opts.env,
  });
  // Output pipes held from the start: once the shim exits, node resumes (and so drops) a child's
  // output that nothing reads yet — and the process, started by runc before the shim reports,
  // may have written and ended, and its shim with it, before the report below is read.
  const held = (out: Readable | null) => out && out.pipe(new PassThrough());
  const stdout = held(child.stdout);
  const stderr = held(child.stderr);
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  try {
    await spawned;
  } catch (err) {
    throw failedPrecondition(`runtime shim: cannot run perl: ${(err as Error).message}`, err);
  }
  // The pipe is the only tie to berth: once read, berth lets the shim go.
  const report = (await readAll(child.stdio[3] as Readable)).trim();
  child.unref();
  const created = /^created (\d+)$/.exec(report);
  if (created) return { created: true, pid: Number(created[1]), shimPid: child.pid!, pipes: { stdin: child.stdin, stdout, stderr } };
  for (const pipe of [child.stdin, stdout, stderr]) pipe?.destroy();
  const failed = /^exit (\d+)$/.exec(report);
  if (failed) return { created: false, runcExit: Number(failed[1]) };
  throw failedPrecondition(`runtime shim: ${report || `ended without a report (exit ${await exitOf(child)})`}`);
}

async function readAll(stream: Readable): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += String(chunk);
  return text;
}

function exitOf(child: ReturnType<typeof spawn>): Promise<string> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(String(child.exitCode ?? child.signalCode));
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(String(code ?? signal))));
}
