// `berth exec` (as `ctr tasks exec`) and the attached half of `berth run -t -i`: a process's I/O
// over the server's WebSocket (routes/exec.ts, openapi.yaml `ProcessStream`). With a terminal the
// local one is put in raw mode (every key goes to the container's terminal, Ctrl-C included),
// its size is sent at start and again on each resize (SIGWINCH); the CLI exits with the
// process's exit code.
import type { Command } from 'commander';
import WebSocket from 'ws';

import { ApiError, apiErrorOf, seg, type BerthClient } from '../client/http.js';
import { parseAddress } from '../config.js';
import { collect } from './args.js';

export interface AttachFlags {
  /** A terminal: the local one goes raw and its size is passed on. */
  tty: boolean;
  /** Forward this process's stdin. */
  stdin: boolean;
}

type Query = Record<string, string | string[] | undefined>;

/** The ws URL of `path` on the client's server (`ws+unix:` for a unix socket). */
function socketUrl(c: BerthClient, path: string, query: Query): string {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) for (const item of Array.isArray(v) ? v : v === undefined ? [] : [v]) search.append(k, item);
  const rest = `${path}${search.size ? `?${search}` : ''}`;
  const address = parseAddress(c.address);
  if (address.kind === 'unix') return `ws+unix://${address.path}:${rest}`;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `ws://${host}:${address.port}${rest}`;
}

/** The local terminal's size, when there is one that knows it. */
function localSize(): { cols: number; rows: number } | undefined {
  const { columns, rows } = process.stdout;
  return process.stdout.isTTY && columns > 0 && rows > 0 ? { cols: columns, rows } : undefined;
}

/**
 * Opens the socket with its handlers in place from the start — the server's first messages can
 * come in the same packet as the handshake's answer, and would be gone by the time an `await`
 * returned. `opened`: an HTTP answer instead of the upgrade is the server's ApiError. `ended`:
 * the process's exit code, once all its output is written here.
 */
function connect(c: BerthClient, url: string): { ws: WebSocket; opened: Promise<void>; ended: Promise<number> } {
  const headers: Record<string, string> = {
    ...(c.namespace ? { 'berth-namespace': c.namespace } : {}),
    ...(c.token ? { authorization: `Bearer ${c.token}` } : {}),
  };
  const ws = new WebSocket(url, { headers, perMessageDeflate: false });
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (req, res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += String(chunk)));
      res.on('end', () => {
        req.destroy();
        reject(apiErrorOf(res.statusCode ?? 0, text));
      });
    });
    ws.once('error', (err) => reject(new ApiError(0, 'unavailable', `cannot reach berth at ${c.address}: ${err.message}`)));
  });
  const ended = new Promise<number>((resolve, reject) => {
    let exitCode: number | undefined;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        const out = data[0] === 2 ? process.stderr : process.stdout;
        if (!out.write(data.subarray(1))) {
          ws.pause();
          out.once('drain', () => ws.resume());
        }
        return;
      }
      const msg = JSON.parse(String(data)) as { type: string; exitCode?: number; error?: { code: string; message: string } };
      if (msg.type === 'exit') exitCode = msg.exitCode;
      else if (msg.type === 'error' && msg.error) reject(new ApiError(500, msg.error.code, msg.error.message));
    });
    ws.once('close', (code, reason) => {
      if (exitCode !== undefined) resolve(exitCode);
      else reject(new ApiError(0, 'unavailable', `the connection to berth at ${c.address} ended before the process's exit (${code}${reason.length ? ` ${String(reason)}` : ''})`));
    });
    ws.on('error', () => undefined); // `opened` or the close that follows says it
  });
  ended.catch(() => undefined); // read only once opened
  return { ws, opened, ended };
}

/**
 * Starts the process behind `path` (…/task/attach or …/task/exec) with its I/O here and answers
 * its exit code once it has ended and all its output is written.
 */
export async function attachProcess(c: BerthClient, path: string, query: Query, flags: AttachFlags): Promise<number> {
  const size = flags.tty ? localSize() : undefined;
  const { ws, opened, ended } = connect(
    c,
    socketUrl(c, path, { ...query, stdin: flags.stdin ? 'true' : undefined, cols: size ? String(size.cols) : undefined, rows: size ? String(size.rows) : undefined }),
  );
  await opened;
  const stdin = process.stdin;
  const raw = flags.tty && flags.stdin && stdin.isTTY;
  if (raw) stdin.setRawMode(true);
  const onResize = () => {
    const now = localSize();
    if (now && ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'resize', ...now }));
  };
  if (flags.tty) process.stdout.on('resize', onResize);
  const onInput = (chunk: Buffer) => {
    if (ws.readyState === ws.OPEN) ws.send(chunk, { binary: true });
  };
  const onInputEnd = () => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'eof' }));
  };
  if (flags.stdin) {
    stdin.on('data', onInput);
    stdin.once('end', onInputEnd);
  }
  try {
    return await ended;
  } finally {
    if (raw) stdin.setRawMode(false);
    process.stdout.off('resize', onResize);
    stdin.off('data', onInput);
    stdin.off('end', onInputEnd);
    if (flags.stdin) stdin.destroy(); // nothing more to read: let the CLI end
    ws.terminate();
  }
}

export function registerExec(program: Command, client: () => BerthClient): void {
  program
    .command('exec <container> <args...>')
    .description('run another process in a container\'s running task (as ctr tasks exec); exits with its exit code')
    .option('-t, --tty', 'give the process a terminal (the local one goes raw; its size follows this one)')
    .option('-i, --interactive', 'forward stdin to the process')
    .option('--env <K=V>', 'set an environment variable (repeatable); K alone removes it', collect)
    .option('--cwd <dir>', 'working directory (default: the container\'s)')
    .addHelpText(
      'after',
      '\nEverything after CONTAINER goes to the process untouched, options included:' +
        '\n  berth exec -t -i c1 sh          a shell in c1' +
        '\n  berth exec c1 sh -c \'exit 3\'    exits with 3' +
        '\nWith -t -i on a terminal, Ctrl-C is a key typed into the process\'s terminal; otherwise it ends' +
        '\nberth exec, and the process goes on with its input ended (berth tasks kill --all stops it).',
    )
    .action(async (container: string, args: string[], opts: { tty?: boolean; interactive?: boolean; env?: string[]; cwd?: string }) => {
      const code = await attachProcess(
        client(),
        `/v1/containers/${seg(container)}/task/exec`,
        { arg: args, tty: opts.tty ? 'true' : undefined, env: opts.env, cwd: opts.cwd || undefined },
        { tty: opts.tty === true, stdin: opts.interactive === true },
      );
      process.exitCode = code;
    });
}
