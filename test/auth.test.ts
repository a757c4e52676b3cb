// The management API's token and where berth may listen (issue 13, "Authentication"), against real
// servers over real HTTP and a real unix socket:
//   * with auth_token_file, every operation of openapi.yaml but GET /healthz answers 401
//     `unauthenticated` with `WWW-Authenticate: Bearer realm="berth"` without the token or with
//     another one (each path of the document gets a harmless request), and its usual answer with it;
//     the docs page and its assets stay open, the document it loads does not;
//   * the CLI sends the token, from BERTH_TOKEN or --token-file;
//   * 0.0.0.0 without a token refuses to start, naming the settings; with insecure_listen (or a
//     token) it starts;
//   * the unix socket is mode 0660, its group the configured one.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../src/config.js';
import { startTestServer, type TestServer } from './fixtures/server.js';
import { projectRoot } from './fixtures/unpack.js';

type Json = Record<string, any>;

const doc = parseYaml(readFileSync(join(projectRoot, 'openapi.yaml'), 'utf8')) as Json;
const methods = ['get', 'head', 'put', 'post', 'patch', 'delete'];
const operations = Object.entries(doc.paths as Json).flatMap(([path, item]) =>
  methods.filter((m) => item[m]).map((m) => ({ method: m.toUpperCase(), path, operationId: item[m].operationId as string, responses: item[m].responses as Json })),
);

const TOKEN = 'k3y-0f-the-berth-api-7f3a9c';

/**
 * A harmless request to an operation: path parameters name nothing that exists (a digest of
 * zeros, `auth-none`), the collection is asked with dryRun, JSON bodies have only a property no
 * schema knows (a 400). Were the token not checked, each would be a 4xx or a no-op, never a change.
 */
function harmless(path: string, method: string): { url: string; body?: string } {
  const values: Record<string, string> = { digest: `sha256:${'0'.repeat(64)}`, type: 'content' };
  let url = path.replace(/\{([^}]+)\}/g, (_, name: string) => encodeURIComponent(values[name] ?? 'auth-none'));
  if (path === '/v1/gc') url += '?dryRun=true';
  return ['POST', 'PUT', 'PATCH'].includes(method) ? { url, body: '{"authProbe":true}' } : { url };
}

interface Answer {
  status: number;
  headers: Headers;
  json?: Json;
}

/** One request; a body is read only when it is JSON (an event stream is left open and cut). */
async function call(base: string, method: string, url: string, opts: { token?: string; authorization?: string; body?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  if (opts.authorization !== undefined) headers.authorization = opts.authorization;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const abort = new AbortController();
  const res = await fetch(base + url, { method, headers, body: opts.body, signal: abort.signal });
  let json: Json | undefined;
  if (method !== 'HEAD' && (res.headers.get('content-type') ?? '').startsWith('application/json')) json = (await res.json()) as Json;
  abort.abort();
  await res.body?.cancel().catch(() => {});
  return { status: res.status, headers: res.headers, json };
}

function assertRefused(r: Answer, what: string, challenge: RegExp): void {
  assert.equal(r.status, 401, `${what}: ${r.status} ${JSON.stringify(r.json)}`);
  assert.match(r.headers.get('www-authenticate') ?? '', challenge, `${what}: WWW-Authenticate`);
  if (what.startsWith('HEAD ')) return;
  assert.equal(r.json?.error?.code, 'unauthenticated', `${what}: ${JSON.stringify(r.json)}`);
  assert.match(r.json?.error?.message ?? '', /API token.*auth_token_file/, what);
  assert.deepEqual(Object.keys(r.json!), ['error']);
  assert.deepEqual(Object.keys(r.json!.error).sort(), ['code', 'message']);
}

/** `berth ARGS…` from the sources, in a child process, with `env` on top of a clean environment. */
function berth(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const main = pathToFileURL(join(projectRoot, 'src', 'cli', 'main.ts')).href;
  const script = `import(${JSON.stringify(main)}).then((m) => m.main(['node', 'berth', ...process.argv.slice(1)]))`;
  const { BERTH_ADDRESS: _a, BERTH_NAMESPACE: _n, BERTH_TOKEN: _t, ...clean } = process.env;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', '-e', script, '--', ...args], { cwd: projectRoot, timeout: 60_000, env: { ...clean, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** GET over a unix socket. */
function getOverSocket(socketPath: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('a server with an API token', { timeout: 120_000 }, () => {
  let dir: string;
  let tokenFile: string;
  let server: TestServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-auth-'));
    tokenFile = join(dir, 'api.token');
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    server = await startTestServer({ config: { authTokenFile: tokenFile } });
  });
  after(async () => {
    await server?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  test('openapi.yaml declares the bearer scheme for every operation, and a 401 for each but /healthz', () => {
    assert.deepEqual(doc.components.securitySchemes.bearerAuth, { ...doc.components.securitySchemes.bearerAuth, type: 'http', scheme: 'bearer' });
    assert.deepEqual(doc.security, [{ bearerAuth: [] }]);
    assert.ok(operations.length > 60, `${operations.length} operations`);
    for (const op of operations) {
      if (op.path === '/healthz') {
        assert.deepEqual(doc.paths['/healthz'].get.security, []);
        assert.equal(op.responses['401'], undefined);
      } else {
        assert.deepEqual(op.responses['401'], { $ref: '#/components/responses/Unauthenticated' }, `${op.operationId} documents no 401`);
      }
    }
  });

  test('without a token, every operation but /healthz answers 401 unauthenticated with the challenge', async () => {
    let refused = 0;
    for (const op of operations) {
      const { url, body } = harmless(op.path, op.method);
      const r = await call(server.url, op.method, url, { body });
      if (op.path === '/healthz') {
        assert.equal(r.status, 200);
        assert.deepEqual(r.json, { status: 'ok' });
        continue;
      }
      assertRefused(r, `${op.method} ${url}`, /^Bearer realm="berth"$/);
      refused++;
    }
    assert.equal(refused, operations.length - 1);
  });

  test('a wrong token, or another scheme, is refused the same way (invalid_token)', async () => {
    for (const op of operations.filter((o) => o.path !== '/healthz')) {
      const { url, body } = harmless(op.path, op.method);
      assertRefused(await call(server.url, op.method, url, { token: `${TOKEN}x`, body }), `${op.method} ${url}`, /^Bearer realm="berth", error="invalid_token"$/);
    }
    for (const authorization of [`Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}`, TOKEN, 'Bearer', `Bearer ${TOKEN.slice(0, -1)}`, `Bearer ${TOKEN} x`]) {
      assertRefused(await call(server.url, 'GET', '/v1/version', { authorization }), `Authorization: ${authorization}`, /^Bearer realm="berth"/);
    }
  });

  test('with the token, every operation gives its usual answer', async () => {
    for (const op of operations) {
      const { url, body } = harmless(op.path, op.method);
      const r = await call(server.url, op.method, url, { token: TOKEN, body });
      const what = `${op.method} ${url}: ${r.status} ${JSON.stringify(r.json)}`;
      assert.notEqual(r.status, 401, what);
      assert.ok(r.status < 500 || r.status === 501, what);
      assert.ok(r.json?.error?.code !== 'unauthenticated', what);
    }
    // The scheme in any case (RFC 9110), the usual answers.
    const version = await call(server.url, 'GET', '/v1/version', { authorization: `bearer ${TOKEN}` });
    assert.equal(version.status, 200);
    assert.ok(version.json?.version);
    const served = await call(server.url, 'GET', '/openapi.json', { token: TOKEN });
    assert.equal(served.status, 200);
    assert.deepEqual(served.json?.security, [{ bearerAuth: [] }]);
    assert.equal((await call(server.url, 'GET', '/v1/images/auth-none', { token: TOKEN })).status, 404);
  });

  test('the docs page and its assets are open; the document it loads is not; nor is a URL no route serves', async () => {
    for (const url of ['/docs', '/docs/', '/docs/static/swagger-ui-bundle.js', '/docs/static/swagger-ui.css', '/docs/static/swagger-initializer.js', '/docs/static/theme/berth-docs.js']) {
      const r = await fetch(server.url + url);
      const text = await r.text();
      assert.equal(r.status, 200, `${url}: ${text.slice(0, 200)}`);
      assert.ok(!text.includes(TOKEN), url);
    }
    const page = await (await fetch(`${server.url}/docs`)).text();
    assert.match(page, /theme\/berth-docs\.js/);
    for (const url of ['/docs/json', '/docs/yaml', '/v1/nope', '/nope', '/docs/nope']) {
      assertRefused(await call(server.url, 'GET', url), `GET ${url}`, /^Bearer realm="berth"$/);
    }
    const json = await call(server.url, 'GET', '/docs/json', { token: TOKEN });
    assert.equal(json.status, 200);
    assert.deepEqual(json.json?.servers, [{ url: server.url, description: 'this berth server' }]);
    assert.equal((await call(server.url, 'GET', '/v1/nope', { token: TOKEN })).status, 404);
  });

  test('the CLI sends the token from BERTH_TOKEN or --token-file (which wins)', async () => {
    const address = new URL(server.url).host;
    const [none, env, file, wrongEnv, both, missingFile] = await Promise.all([
      berth(['--address', address, 'namespaces', 'ls', '--json']),
      berth(['--address', address, 'namespaces', 'ls', '--json'], { BERTH_TOKEN: TOKEN }),
      berth(['--address', address, '--token-file', tokenFile, 'namespaces', 'ls', '--json']),
      berth(['--address', address, 'plugins', 'ls'], { BERTH_TOKEN: 'wrong' }),
      berth(['--address', address, 'namespaces', 'ls', '--json', '--token-file', tokenFile], { BERTH_TOKEN: 'wrong' }),
      berth(['--address', address, '--token-file', join(dir, 'missing.token'), 'plugins', 'ls']),
    ]);
    assert.equal(none.code, 1, none.stderr);
    assert.match(none.stderr, /^berth: this berth server requires its API token .*BERTH_TOKEN or from --token-file/);
    for (const [r, what] of [[env, 'BERTH_TOKEN'], [file, '--token-file'], [both, '--token-file over a wrong BERTH_TOKEN']] as const) {
      assert.equal(r.code, 0, `${what}: ${r.stderr}`);
      assert.ok(Array.isArray(JSON.parse(r.stdout)), `${what}: ${r.stdout}`);
    }
    assert.equal(wrongEnv.code, 1);
    assert.match(wrongEnv.stderr, /the API token sent is not this server's/);
    assert.equal(missingFile.code, 1);
    assert.match(missingFile.stderr, /--token-file .*missing\.token: cannot read it/);
  });
});

describe('where berth listens', { timeout: 120_000 }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-listen-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('0.0.0.0 without a token refuses to start, naming the settings; nothing is written', async () => {
    const root = join(dir, 'refused');
    await assert.rejects(
      startTestServer({ dir: root, config: { address: '0.0.0.0:0' } }),
      (err: Error) => {
        assert.match(err.message, /refusing to serve the management API on 0\.0\.0\.0:0 without a token/);
        assert.match(err.message, /auth_token_file \(berth serve --auth-token-file FILE\)/);
        assert.match(err.message, /insecure_listen = true \(berth serve --insecure-listen\)/);
        return true;
      },
    );
    await assert.rejects(readdir(join(root, 'root')), { code: 'ENOENT' });
    // The command line says the same, and exits 1.
    const r = await berth(['serve', '--address', '0.0.0.0:0', '--root', join(dir, 'cli-root'), '--state', join(dir, 'cli-state')]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^berth: refusing to serve the management API on 0\.0\.0\.0:0 without a token.*--insecure-listen/);
  });

  test('0.0.0.0 starts with insecure_listen (no token), or with a token (required)', async () => {
    const insecure = await startTestServer({ dir: join(dir, 'insecure'), config: { address: '0.0.0.0:0', insecureListen: true } });
    try {
      const local = `http://127.0.0.1:${new URL(insecure.url).port}`;
      assert.equal((await call(local, 'GET', '/v1/version')).status, 200);
    } finally {
      await insecure.destroy();
    }
    const tokenFile = join(dir, 'api.token');
    await writeFile(tokenFile, TOKEN, { mode: 0o600 });
    const guarded = await startTestServer({ dir: join(dir, 'guarded'), config: { address: '0.0.0.0:0', authTokenFile: tokenFile } });
    try {
      const local = `http://127.0.0.1:${new URL(guarded.url).port}`;
      assertRefused(await call(local, 'GET', '/v1/version'), 'GET /v1/version', /^Bearer realm="berth"$/);
      assert.equal((await call(local, 'GET', '/v1/version', { token: TOKEN })).status, 200);
      assert.equal((await call(local, 'GET', '/healthz')).status, 200);
    } finally {
      await guarded.destroy();
    }
  });

  test('the configuration file sets them; an empty or unreadable token file is refused naming it', async () => {
    const tokenFile = join(dir, 'file.token');
    await writeFile(tokenFile, TOKEN);
    const file = join(dir, 'berth.toml');
    await writeFile(file, `address = "0.0.0.0:7420"\nauth_token_file = ${JSON.stringify(tokenFile)}\ninsecure_listen = true\nsocket_group = "adm"\n`);
    const config = await loadConfig(file);
    assert.equal(config.authTokenFile, tokenFile);
    assert.equal(config.insecureListen, true);
    assert.equal(config.socketGroup, 'adm');
    assert.equal((await loadConfig(undefined)).insecureListen, false);
    await writeFile(file, 'insecure_listen = "yes"\n');
    await assert.rejects(loadConfig(file), /insecure_listen: "yes" must be true or false/);
    await writeFile(file, 'socket_group = "no group"\n');
    await assert.rejects(loadConfig(file), /socket_group: "no group" must match/);

    const empty = join(dir, 'empty.token');
    await writeFile(empty, '\n');
    await assert.rejects(startTestServer({ dir: join(dir, 'empty'), config: { authTokenFile: empty } }), /auth_token_file .*empty\.token is empty/);
    await assert.rejects(startTestServer({ dir: join(dir, 'missing'), config: { authTokenFile: join(dir, 'nope') } }), /auth_token_file .*nope: cannot read it/);
  });

  test('a unix socket is mode 0660, in the configured group; the token holds there too; it is gone after close', async () => {
    // A group the socket is not in by default: adm (as root), else this process's own.
    const groups = (await readFile('/etc/group', 'utf8')).split('\n').map((l) => l.split(':'));
    const adm = groups.find((g) => g[0] === 'adm');
    const gid = process.getuid?.() === 0 && adm ? Number(adm[2]) : process.getgid!();
    const group = groups.find((g) => Number(g[2]) === gid)?.[0] ?? String(gid);

    const socketDir = await mkdtemp(join(tmpdir(), 'berth-sock-'));
    const socket = join(socketDir, 'berth.sock');
    const tokenFile = join(socketDir, 'api.token');
    await writeFile(tokenFile, TOKEN, { mode: 0o600 });
    const server = await startTestServer({ dir: join(dir, 'unix'), config: { address: `unix://${socket}`, socketGroup: group, authTokenFile: tokenFile } });
    try {
      assert.equal(server.url, `unix://${socket}`);
      const st = await stat(socket);
      assert.ok(st.isSocket());
      assert.equal((st.mode & 0o7777).toString(8), '660');
      assert.equal(st.gid, gid, `group ${group}`);
      // Nothing else left beside it (the private folder it was made in is gone).
      assert.deepEqual((await readdir(socketDir)).sort(), ['api.token', 'berth.sock']);

      assert.equal((await getOverSocket(socket, '/healthz')).status, 200);
      const refused = await getOverSocket(socket, '/v1/version');
      assert.equal(refused.status, 401);
      assert.equal(JSON.parse(refused.body).error.code, 'unauthenticated');
      assert.equal((await getOverSocket(socket, '/v1/version', { authorization: `Bearer ${TOKEN}` })).status, 200);
      const cli = await berth(['--address', `unix://${socket}`, 'plugins', 'ls', '--json'], { BERTH_TOKEN: TOKEN });
      assert.equal(cli.code, 0, cli.stderr);
      assert.ok(Array.isArray(JSON.parse(cli.stdout)));
    } finally {
      await server.destroy();
    }
    await assert.rejects(stat(socket), { code: 'ENOENT' });

    // Without socket_group: 0660 in this process's group; a numeric group works as a name does.
    const plain = await startTestServer({ dir: join(dir, 'unix-plain'), config: { address: `unix://${socket}` } });
    try {
      const st = await stat(socket);
      assert.equal((st.mode & 0o7777).toString(8), '660');
      assert.equal(st.gid, process.getgid!());
      assert.equal((await getOverSocket(socket, '/v1/version')).status, 200, 'no token configured: none needed');
    } finally {
      await plain.destroy();
    }
    const numeric = await startTestServer({ dir: join(dir, 'unix-numeric'), config: { address: `unix://${socket}`, socketGroup: String(gid) } });
    try {
      assert.equal((await stat(socket)).gid, gid);
    } finally {
      await numeric.destroy();
    }
    await assert.rejects(
      startTestServer({ dir: join(dir, 'unix-nogroup'), config: { address: `unix://${socket}`, socketGroup: 'no-such-group-berth' } }),
      /socket_group "no-such-group-berth": no such group/,
    );
    await rm(socketDir, { recursive: true, force: true });
  });

  test('a proxy snapshotter sends the other server its token (proxy_plugins.NAME.auth_token_file)', async () => {
    const socketDir = await mkdtemp(join(tmpdir(), 'berth-sock-'));
    const socket = join(socketDir, 'other.sock');
    const tokenFile = join(socketDir, 'other.token');
    await writeFile(tokenFile, TOKEN, { mode: 0o600 });
    const other = await startTestServer({ dir: join(dir, 'other'), config: { address: `unix://${socket}`, authTokenFile: tokenFile } });
    const proxyStatus = async (cfg: { auth_token_file?: string }) => {
      const s = await startTestServer({
        dir: join(dir, `proxy-${Object.keys(cfg).length}`),
        config: { proxyPlugins: { remote: { type: 'snapshot', address: socket, snapshotter: 'native', ...cfg } } },
      });
      try {
        const { items } = (await (await fetch(`${s.url}/v1/plugins`)).json()) as { items: Json[] };
        return items.find((p) => p.type === 'io.berth.snapshotter.v1' && p.id === 'remote')!;
      } finally {
        await s.destroy();
      }
    };
    try {
      const without = await proxyStatus({});
      assert.equal(without.status, 'error');
      assert.match(without.message, /API token/);
      const withToken = await proxyStatus({ auth_token_file: tokenFile });
      assert.equal(withToken.status, 'ok', withToken.message);
    } finally {
      await other.destroy();
      await rm(socketDir, { recursive: true, force: true });
    }
  });
});
