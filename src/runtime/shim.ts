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
// files (runc create hands its own stdio to the container), and fd 3 a pipe back to berth. It:
//   0. writes its pid to <shim-pid-file>;
//   1. prctl(PR_SET_CHILD_SUBREAPER), so the orphaned container init becomes its child;
//   2. runs `runc create …` and waits for it; on failure reports `exit <status>` and ends;
//   3. reports `created <pid>` (pid from runc's pid file) and closes fd 3 — from here on it
//      needs nothing from berth (SIGPIPE ignored), so it outlives a berth restart;
//   4. waits for the init (started later by berth's `runc start`, or killed by `runc delete`)
//      and writes its status — the exit code, or 128+signal — to `<exit-file>.tmp`, renamed to
//      `<exit-file>` (atomic: a reader sees the whole number or nothing; the file's mtime is the
//      exit time). 255 means the status was lost (the init was not the shim's child).
// Cost: ~6 ms per create over a bare `runc create` (medians of 60 runs: 55 → 61 ms) and one
// small perl process (~5 MB) per container while it lives.
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';

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

export interface ShimOptions {
  /** The runc binary and the full `create` command line after it (global flags included). */
  runc: string;
  createArgs: string[];
  /** Written by the shim first thing: its own pid, so a restarted berth can tell if it lives. */
  shimPidFile: string;
  pidFile: string;
  exitFile: string;
  /** The container's stdout and stderr: open file descriptors (the shim keeps its own copies). */
  stdout: number;
  stderr: number;
  env: NodeJS.ProcessEnv;
}

export type ShimResult =
  | { created: true; pid: number; shimPid: number }
  /** runc create failed with this exit status; the reason is in runc's log. */
  | { created: false; runcExit: number };

/** Starts a shim that runs `runc create`; resolves once the container is created (or not). */
export async function startShim(opts: ShimOptions): Promise<ShimResult> {
  const nr = prctlSyscall[process.arch];
  if (nr === undefined) throw failedPrecondition(`runtime shim: prctl syscall number unknown on ${process.arch}`);
  const child = spawn('perl', ['-e', script, String(nr), opts.shimPidFile, opts.pidFile, opts.exitFile, opts.runc, ...opts.createArgs], {
    detached: true,
    stdio: ['ignore', opts.stdout, opts.stderr, 'pipe'],
    env: opts.env,
  });
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
  if (created) return { created: true, pid: Number(created[1]), shimPid: child.pid! };
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
