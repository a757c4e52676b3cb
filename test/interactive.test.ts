// Interactive containers against a real server, real runc and a busybox image pushed to a real
// registry: `berth run -t -i` and `berth exec [-t] [-i]` (the WebSocket routes, the console relay
// receiving runc's terminal). The CLI runs under a real pseudo-terminal made by util-linux
// `script`, whose size is set with stty and changed from outside with `stty -F` (the kernel then
// signals SIGWINCH to the CLI, as a terminal window's resize does). Output is awaited as it
// arrives, never after a sleep. The server wants an API token: the upgrades are checked too.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';

import { busyboxConfig, busyboxLayer } from './fixtures/busybox.js';
import { buildImage, pushImage } from './fixtures/images.js';
import { startRegistry, type Registry } from './fixtures/registry.js';
import { namespaceApi, removeContainersAfter } from './fixtures/container-api.js';
import { removeServerDirWithRuntime } from './fixtures/runtime.js';
import { startTestServer, type TestServer } from './fixtures/server.js';
import { projectRoot } from './fixtures/unpack.js';

const NS = `tty-${process.pid}`;
const TOKEN = 'interactive-test-token';
const mainModule = pathToFileURL(join(projectRoot, 'src', 'cli', 'main.ts')).href;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

const shellQuote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** A process under a pseudo-terminal (`script`), its output collected and awaited by pattern. */
class PtySession {
  output = '';
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;
  private readonly waiters: Array<() => void> = [];

  constructor(command: string) {
    // -q quiet, -f flush at once, -e the command's exit code, -c the command; no typescript file.
    this.child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const collect = (chunk: Buffer) => {
      this.output += String(chunk);
      for (const wake of this.waiters.splice(0)) wake();
    };
    this.child.stdout!.on('data', collect);
    this.child.stderr!.on('data', collect);
    this.exited = new Promise((resolve) => this.child.once('close', (code) => resolve(code)));
    void this.exited.then(() => {
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  /** Resolves with the first match of `re` in the output from `from` on; fails if the process ends first. */
  async waitFor(re: RegExp, from = 0): Promise<{ match: RegExpMatchArray; end: number }> {
    let ended = false;
    void this.exited.then(() => (ended = true));
    for (;;) {
      const m = this.output.slice(from).match(re);
      if (m) return { match: m, end: from + m.index! + m[0].length };
      if (ended) assert.fail(`ended before ${re} appeared; output:\n${this.output}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Types a line (Enter is a carriage return on a terminal in raw mode). */
  type(line: string): void {
    this.child.stdin!.write(`${line}\r`);
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

describe('interactive containers: run -t -i, exec (CLI under a pty)', { timeout: 180_000 }, () => {
  let registry: Registry;
  let server: TestServer;
  let dir: string;
  let ref: string;
  let launcher: string;

  const cliEnv = () => {
    const { BERTH_ADDRESS: _address, BERTH_NAMESPACE: _namespace, ...env } = process.env;
    return { ...env, BERTH_TOKEN: TOKEN };
  };
  const cliArgs = (args: string[]) => ['--import', 'tsx', launcher, '--address', new URL(server.url).host, '-n', NS, ...args];

  /** `berth ARGS…` without a terminal, `input` on its stdin. */
  function berth(args: string[], input?: string): Promise<Run> {
    return new Promise((resolve) => {
      const child = execFile(process.execPath, cliArgs(args), { cwd: projectRoot, timeout: 60_000, env: cliEnv() }, (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      });
      child.stdin!.end(input ?? '');
    });
  }

  /** `berth ARGS…` under a pty of cols×rows; the session prints the pty's name first (`tty`). */
  function berthOnPty(args: string[], size = { cols: 100, rows: 30 }): PtySession {
    const cli = [process.execPath, ...cliArgs(args)].map(shellQuote).join(' ');
    const env = Object.entries(cliEnv())
      .filter(([k]) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
      .map(([k, v]) => `${k}=${shellQuote(v ?? '')}`)
      .join(' ');
    return new PtySession(`cd ${shellQuote(projectRoot)} && stty cols ${size.cols} rows ${size.rows} && tty && exec env ${env} ${cli}`);
  }

  const api = namespaceApi(() => server.url, NS, TOKEN);
  /** Whatever a test left of these containers (a failed --rm): task killed and deleted, container deleted. */
  const cleanUp = (t: TestContext, ...ids: string[]) => removeContainersAfter(api, t, ...ids);

  /** A container whose task runs `sleep` until killed. */
  async function runningContainer(t: TestContext, id: string): Promise<void> {
    cleanUp(t, id);
    const made = await api('POST', '/v1/containers', { id, image: ref, args: ['sleep', '100000'] });
    assert.equal(made.status, 201, made.text);
    const started = await api('POST', `/v1/containers/${id}/task`);
    assert.equal(started.status, 201, started.text);
  }

  before(async () => {
    registry = await startRegistry();
    const pushed = await pushImage(registry.url, 'tty/busybox', 'v1', buildImage({ layers: [busyboxLayer()], config: { config: busyboxConfig } }));
    ref = pushed.reference;
    dir = await mkdtemp(join(tmpdir(), 'berth-tty-'));
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, TOKEN, { mode: 0o600 });
    launcher = join(dir, 'berth.mjs');
    await writeFile(launcher, `import(${JSON.stringify(mainModule)}).then((m) => m.main(process.argv));\n`);
    server = await startTestServer({ dir, config: { authTokenFile: tokenFile } });
    const pulled = await berth(['pull', ref]);
    assert.equal(pulled.code, 0, `berth pull: ${pulled.stderr}`);
  });

  after(async () => {
    await server?.close();
    if (dir) await removeServerDirWithRuntime(dir, NS);
    await registry?.stop();
  });

  test('berth run -t -i gives a working prompt, its size, its resizes, and the shell\'s exit code', async (t) => {
    cleanUp(t, 'c1');
    const pty = berthOnPty(['run', '-t', '-i', '--rm', ref, 'c1', 'sh'], { cols: 100, rows: 30 });
    t.after(() => pty.kill());
    const { match: ttyName, end: afterTty } = await pty.waitFor(/^(\/dev\/pts\/\d+)\r?$/m);
    pty.type('echo hello-$((40+2))');
    let at = (await pty.waitFor(/^hello-42\r?$/m, afterTty)).end;
    pty.type('stty size');
    at = (await pty.waitFor(/^30 100\r?$/m, at)).end;
    assert.match(pty.output, /echo hello-\$\(\(40\+2\)\)/, 'the terminal echoes what is typed');

    // The outer terminal resized (as a window is): the container's terminal follows.
    await new Promise<void>((resolve, reject) => execFile('stty', ['-F', ttyName[1], 'cols', '120', 'rows', '40'], (err) => (err ? reject(err) : resolve())));
    // The resize and what is typed next travel on one socket in the order the CLI saw them;
    // should the keys have come first, the next `stty size` shows it.
    for (let i = 0; ; i++) {
      assert.ok(i < 20, `the container's terminal never became 40x120:\n${pty.output}`);
      pty.type(`echo size-${i}-$(stty size | tr ' ' x)`);
      const { match, end } = await pty.waitFor(new RegExp(`^size-${i}-(\\d+x\\d+)\\r?$`, 'm'), at);
      at = end;
      if (match[1] === '40x120') break;
    }

    pty.type('exit 7');
    assert.equal(await pty.exited, 7, `berth run -t -i exits with the shell's code; output:\n${pty.output}`);
    assert.equal((await api('GET', '/v1/containers/c1')).status, 404, '--rm removed the container');
  });

  test('berth run -i without -t forwards stdin', async (t) => {
    cleanUp(t, 'ci');
    const r = await berth(['run', '-i', '--rm', ref, 'ci', 'sh', '-c', 'cat; echo done >&2; exit 4'], 'line one\nline two\n');
    assert.equal(r.code, 4, r.stderr);
    assert.equal(r.stdout, 'line one\nline two\n');
    assert.match(r.stderr, /^done$/m);
  });

  test('a container with tty cannot be started unattached (412, not 501)', async (t) => {
    cleanUp(t, 'tty-plain');
    const made = await api('POST', '/v1/containers', { id: 'tty-plain', image: ref, args: ['sh'], tty: true });
    assert.equal(made.status, 201, made.text);
    const started = await api('POST', '/v1/containers/tty-plain/task');
    assert.equal(started.status, 412, started.text);
    assert.match(started.text, /tty-plain.*attach/);
  });

  describe('exec into a running container', { concurrency: true }, () => {
    test('berth exec -t -i gives a working prompt and the exit code', async (t) => {
      await runningContainer(t, 'c2');
      const pty = berthOnPty(['exec', '-t', '-i', 'c2', 'sh'], { cols: 90, rows: 25 });
      t.after(() => pty.kill());
      const { end } = await pty.waitFor(/^\/dev\/pts\/\d+\r?$/m);
      pty.type('echo hello-$((40+2)) $(stty size)');
      await pty.waitFor(/^hello-42 25 90\r?$/m, end);
      pty.type('exit 5');
      assert.equal(await pty.exited, 5, pty.output);
      const task = JSON.parse((await api('GET', '/v1/containers/c2/task')).text) as { status: string };
      assert.equal(task.status, 'running', 'the container\'s own task runs on');
    });

    test('berth exec without a terminal: stdout, stderr and the exit code', async (t) => {
      await runningContainer(t, 'c3');
      const r = await berth(['exec', 'c3', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
      assert.equal(r.code, 3, r.stderr);
      assert.equal(r.stdout, 'out\n');
      assert.equal(r.stderr, 'err\n');
    });

    test('berth exec -i forwards stdin (cat echoes it) and its end', async (t) => {
      await runningContainer(t, 'c4');
      const input = Array.from({ length: 2000 }, (_, i) => `line ${i}`).join('\n') + '\n';
      const r = await berth(['exec', '-i', 'c4', 'cat'], input);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, input);
    });

    test('errors: a missing container is 404, a container without a running task 412, bad commands 400', async (t) => {
      const missing = await berth(['exec', 'no-such', 'sh']);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /container "no-such": not found/);
      const raw = await api('GET', '/v1/containers/no-such/task/exec?arg=sh');
      assert.equal(raw.status, 404, raw.text);

      cleanUp(t, 'idle', 'ended');
      assert.equal((await api('POST', '/v1/containers', { id: 'idle', image: ref })).status, 201);
      const idle = await api('GET', '/v1/containers/idle/task/exec?arg=sh');
      assert.equal(idle.status, 412, idle.text);
      assert.match(JSON.parse(idle.text).error.message, /container "idle" has no running task/);
      const cli = await berth(['exec', 'idle', 'true']);
      assert.equal(cli.code, 1);
      assert.match(cli.stderr, /container "idle" has no running task/);

      assert.equal((await api('POST', '/v1/containers', { id: 'ended', image: ref, args: ['true'] })).status, 201);
      assert.equal((await api('POST', '/v1/containers/ended/task')).status, 201);
      await api('GET', '/v1/containers/ended/task/wait');
      const ended = await api('GET', '/v1/containers/ended/task/exec?arg=sh');
      assert.equal(ended.status, 412, ended.text);
      assert.match(JSON.parse(ended.text).error.message, /"ended".*stopped/);

      await runningContainer(t, 'c5');
      const noArgs = await api('GET', '/v1/containers/c5/task/exec');
      assert.equal(noArgs.status, 400, noArgs.text);
      const badCommand = await berth(['exec', 'c5', '/no/such/binary']);
      assert.equal(badCommand.code, 1);
      assert.match(badCommand.stderr, /\/no\/such\/binary/);
    });

    test('the upgrade needs the API token like every route', async (t) => {
      await runningContainer(t, 'c6');
      const url = `${server.url.replace(/^http/, 'ws')}/v1/containers/c6/task/exec?arg=true`;
      const statusOf = (headers: Record<string, string>) =>
        new Promise<number>((resolve, reject) => {
          const ws = new WebSocket(url, { headers: { 'berth-namespace': NS, ...headers } });
          ws.once('unexpected-response', (req, res) => {
            req.destroy();
            resolve(res.statusCode ?? 0);
          });
          ws.once('open', () => {
            ws.terminate();
            resolve(101);
          });
          ws.once('error', reject);
        });
      assert.equal(await statusOf({}), 401);
      assert.equal(await statusOf({ authorization: 'Bearer wrong' }), 401);
      assert.equal(await statusOf({ authorization: `Bearer ${TOKEN}` }), 101);
    });
  });
});
