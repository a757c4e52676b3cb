// The console relay: the terminal of a process started with `process.terminal` (berth run -t,
// berth exec -t). runc makes the pseudo-terminal inside the container and sends its master
// over a unix socket (`--console-socket`) as SCM_RIGHTS ancillary data; whoever receives it holds
// the terminal: reads what the process writes, writes what the user types, sets its window size.
//
// Why a Perl process: Node cannot receive a file descriptor (net.Socket has no recvmsg) nor
// ioctl(TIOCSWINSZ) a descriptor, and the npm addons that do either (usocket: fd passing;
// node-pty: its own ptys' resize) do only half, build with node-gyp or ship prebuilt binaries,
// and load into the server. Perl's core has socket/accept, ioctl, select and a raw `syscall`,
// so recvmsg(2) is one call with a packed struct msghdr — the same Perl the task shim already
// relies on (shim.ts: perl-base is Essential on Debian), loading only Socket. The relay is a
// child of berth, so a terminal ends with the berth that holds it (as containerd's console ends
// with its shim); the process's exit code is the shim's business either way.
//
// Protocol. berth spawns `perl -e RELAY <recvmsg-nr> <socket-path>` with fd 0 a pipe of input
// (written to the master), fd 1 a pipe of output (read from the master), fd 2 its errors and
// fd 3 a control socket. The relay listens on the path and says `listening` on fd 3; berth then
// runs runc with `--console-socket <path>`; the relay accepts, receives the master, says
// `attached`, and relays until the master reports EIO (every process holding the terminal is
// gone) or fd 3 closes (berth is gone). On fd 3 berth writes `<rows> <cols>` lines (a resize:
// TIOCSWINSZ, and the kernel signals SIGWINCH to the terminal's foreground process group) and
// `drain` (the process has exited: relay what is still buffered, then end — a background child
// holding the terminal would otherwise keep it open). The initial window size travels in the
// spec (process.consoleSize): runc sets it before the process starts, so there is no race.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import type { Socket } from 'node:net';

import { failedPrecondition } from '../../store/errors.js';

const script = String.raw`
use strict;
use Socket qw(AF_UNIX SOCK_STREAM pack_sockaddr_un);
my ($recvmsg, $path) = @ARGV;
$SIG{PIPE} = 'IGNORE';
open(my $ctl, '+<&=', 3) or die "no control fd 3: $!\n";
sub put_all {
  my ($fh, $buf) = @_;
  while (length $buf) {
    my $n = syswrite($fh, $buf);
    if (!defined $n) { next if $! == 4; return 0 } # EINTR
    substr($buf, 0, $n, '');
  }
  return 1;
}
socket(my $listener, AF_UNIX, SOCK_STREAM, 0) or die "socket: $!\n";
bind($listener, pack_sockaddr_un($path)) or die "bind $path: $!\n";
listen($listener, 1) or die "listen on $path: $!\n";
put_all($ctl, "listening\n");
accept(my $conn, $listener) or die "accept on $path: $!\n";
close($listener);
unlink($path);
# recvmsg(2) into a struct msghdr (LP64 layout) with one iovec (runc sends the terminal's name)
# and room for one SCM_RIGHTS descriptor. The buffers are written in place by the kernel: made
# private first (substr), so that no copy-on-write sharing hides the writes.
my $data = "\0" x 4096; substr($data, 0, 1, "\0");
my $control = "\0" x 64; substr($control, 0, 1, "\0");
my $iov = pack('QQ', unpack('J', pack('p', $data)), length $data);
my $hdr = pack('QLx4QQQQlx4', 0, 0, unpack('J', pack('p', $iov)), 1, unpack('J', pack('p', $control)), length $control, 0);
my $got = syscall($recvmsg + 0, fileno($conn) + 0, $hdr, 0);
die "recvmsg on $path: $!\n" if $got < 0;
my ($cmsg_len, $level, $type, $fd) = unpack('Qlll', $control);
die "no terminal received on $path\n" unless $cmsg_len >= 20 && $level == 1 && $type == 1; # SOL_SOCKET, SCM_RIGHTS
close($conn);
open(my $pty, '+<&=', $fd) or die "terminal fd $fd: $!\n";
put_all($ctl, "attached\n");
my ($input_open, $control_text, $buf) = (1, '');
sub relay_output {
  my $n = sysread($pty, $buf, 65536);
  return 0 if !$n; # EIO: no process holds the terminal any more
  put_all(\*STDOUT, $buf) or exit 0;
  return 1;
}
for (;;) {
  my $rin = '';
  vec($rin, fileno($pty), 1) = 1;
  vec($rin, 0, 1) = 1 if $input_open;
  vec($rin, 3, 1) = 1;
  my $ready = select(my $rout = $rin, undef, undef, undef);
  if ($ready < 0) { next if $! == 4; die "select: $!\n" }
  if (vec($rout, fileno($pty), 1)) { relay_output() or last }
  if ($input_open && vec($rout, 0, 1)) {
    my $n = sysread(STDIN, $buf, 65536);
    if (!$n) { $input_open = 0 } else { put_all($pty, $buf) or last }
  }
  if (vec($rout, 3, 1)) {
    my $n = sysread($ctl, $buf, 4096);
    exit 0 if !$n; # berth is gone
    $control_text .= $buf;
    while ($control_text =~ s/^([^\n]*)\n//) {
      my $line = $1;
      if ($line =~ /^(\d+) (\d+)$/) {
        ioctl($pty, 0x5414, pack('S4', $1, $2, 0, 0)) or die "TIOCSWINSZ: $!\n";
      } elsif ($line eq 'drain') {
        for (;;) {
          my $r = '';
          vec($r, fileno($pty), 1) = 1;
          last if select($r, undef, undef, 0) <= 0;
          relay_output() or last;
        }
        exit 0;
      }
    }
  }
}
`;

// recvmsg's syscall number on the 64-bit architectures whose struct layouts the script packs
// and whose TIOCSWINSZ is 0x5414 (Perl's `syscall` takes the raw number).
const recvmsgSyscall: Partial<Record<NodeJS.Architecture, number>> = {
  x64: 47,
  arm64: 212,
  riscv64: 212,
  loong64: 212,
};

/** The terminal of one process, once runc has sent it: its output, its input, its size. */
export class ConsoleRelay {
  /** Where runc is to send the terminal (`--console-socket`). */
  readonly socketPath: string;
  /** What the process writes to its terminal. */
  readonly output: Readable;
  /** What is typed into it. */
  readonly input: Writable;
  private readonly child: ChildProcess;
  private readonly control: Socket;
  private readonly dir: string;
  private readonly ended: Promise<void>;
  private errors = '';

  private constructor(child: ChildProcess, dir: string) {
    this.child = child;
    this.dir = dir;
    this.socketPath = join(dir, 'console.sock');
    // Held at once: once the relay exits, node resumes (and so drops) a child's output that
    // nothing reads yet — the relay of a short process may end before its reader comes.
    this.output = child.stdout!.pipe(new PassThrough());
    this.input = child.stdin!;
    this.control = child.stdio[3] as Socket;
    this.input.on('error', () => undefined); // the relay gone: the process's output ends too
    this.control.on('error', () => undefined);
    child.stderr!.on('data', (chunk: Buffer) => (this.errors += String(chunk)));
    this.ended = new Promise((resolve) => child.once('close', () => resolve()));
    void this.ended.then(() => rm(dir, { recursive: true, force: true }));
  }

  /** Starts a relay listening for a terminal; the socket is in a short private folder (sun_path is 108 bytes). */
  static async start(): Promise<ConsoleRelay> {
    const nr = recvmsgSyscall[process.arch];
    if (nr === undefined) throw failedPrecondition(`terminals are not supported on ${process.arch} (console relay: recvmsg syscall number unknown)`);
    const dir = await mkdtemp(join(tmpdir(), 'berth-console-'));
    const child = spawn('perl', ['-e', script, String(nr), join(dir, 'console.sock')], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    const relay = new ConsoleRelay(child, dir);
    const failed = new Promise<never>((_, reject) => {
      child.once('error', (err) => reject(failedPrecondition(`console relay: cannot run perl: ${err.message}`, err)));
      void relay.ended.then(() => reject(failedPrecondition(`console relay: ${relay.errors.trim() || 'ended before listening'}`)));
    });
    failed.catch(() => undefined);
    await Promise.race([relay.said('listening'), failed]);
    return relay;
  }

  /** Resolves when the relay has written `word` on its control socket. */
  private said(word: string): Promise<void> {
    return new Promise((resolve) => {
      let text = '';
      const onData = (chunk: Buffer) => {
        text += String(chunk);
        if (!text.split('\n').includes(word)) return;
        this.control.off('data', onData);
        resolve();
      };
      this.control.on('data', onData);
    });
  }

  /** Sets the window size (TIOCSWINSZ); the process gets SIGWINCH. */
  resize(cols: number, rows: number): void {
    if (!this.control.destroyed) this.control.write(`${rows} ${cols}\n`);
  }

  /** After the process's exit: relays what is still buffered, then ends the output. */
  async drain(): Promise<void> {
    if (!this.control.destroyed) this.control.write('drain\n');
    await this.ended;
  }

  /** Ends the relay at once (the process was never started, or nobody listens any more). */
  async close(): Promise<void> {
    this.control.destroy();
    this.child.kill('SIGKILL');
    await this.ended;
  }
}
