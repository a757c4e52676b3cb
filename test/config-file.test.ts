// The configuration file and the service unit: contrib/berth.toml is `berth config default`,
// rendered from the table of settings the server checks files against (src/settings.ts), so the
// documented keys and defaults cannot drift from what the server reads; `berth config check`
// names a wrong key or value; contrib/berth.service runs berth as containerd's unit runs containerd.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { loadConfig } from '../src/config.js';
import { builtinPlugins } from '../src/plugins/index.js';
import { fleetPlugin } from '../src/plugins/fleet.js';
import { registryListenerPlugin } from '../src/plugins/registry-listener.js';
import type { InitContext, Registration } from '../src/plugins/registry.js';
import { pluginSettings, renderDefaultConfig, topSettings } from '../src/settings.js';
import { projectRoot } from './fixtures/unpack.js';
import { startTestServer } from './fixtures/server.js';

const contribToml = join(projectRoot, 'contrib', 'berth.toml');
const mainModule = join(projectRoot, 'src', 'cli', 'main.ts');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `berth ARGS…` from the sources, in a child process. */
function berth(...args: string[]): Promise<Run> {
  const script = `import(${JSON.stringify(mainModule)}).then((m) => m.main(['node', 'berth', ...process.argv.slice(1)]))`;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', '-e', script, '--', ...args], { cwd: projectRoot, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

async function withFile<T>(text: string, fn: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-config-'));
  try {
    const file = join(dir, 'berth.toml');
    await writeFile(file, text);
    return await fn(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('contrib/berth.toml', () => {
  test('is what `berth config default` prints, rendered from the settings table', async () => {
    const file = await readFile(contribToml, 'utf8');
    assert.equal(file, renderDefaultConfig(), 'contrib/berth.toml is stale: regenerate it with `berth config default > contrib/berth.toml`');
    const printed = await berth('config', 'default');
    assert.equal(printed.code, 0, printed.stderr);
    assert.equal(printed.stdout, file);
  });

  test('documents every key of the table, each with its default (or, without a fixed one, what happens unset)', async () => {
    const text = await readFile(contribToml, 'utf8');
    // Uncommenting every commented key gives a file that sets every key the server knows.
    const uncommented = parse(text.replace(/^#(\w+ = )/gm, '$1').replace(/^#(\[proxy_plugins\.)/m, '$1')) as Record<string, any>;
    for (const s of topSettings) assert.ok(s.key in uncommented, `top-level key ${s.key} is not in contrib/berth.toml`);
    for (const p of pluginSettings) {
      const table = uncommented.plugins?.[p.plugin] as Record<string, unknown> | undefined;
      assert.ok(table, `[plugins."${p.plugin}"] is not in contrib/berth.toml`);
      for (const s of p.settings) {
        if (s.kind === 'credentials') {
          assert.match(text, /credentials\."registry\.example\.com:5000"\]\n#\s+username = "me"\n#\s+secret = /, 'credentials not documented');
          continue;
        }
        assert.ok(s.key in table, `${p.plugin}: ${s.key} is not in contrib/berth.toml`);
        if (s.default !== undefined) assert.deepEqual(table[s.key], s.default, `${p.plugin}: ${s.key}'s default`);
        else assert.ok(s.computed, `${p.plugin}: ${s.key} has neither a default nor a word on what happens unset`);
      }
      // Nothing in the file the table does not know.
      assert.deepEqual(Object.keys(table).filter((k) => !p.settings.some((s) => s.key === k)), [], `${p.plugin}: keys the table lacks`);
    }
    assert.ok(uncommented.proxy_plugins?.remote, 'proxy_plugins not documented');
  });

  test('loads as the defaults do, and a server started with it loads the same plugins', async () => {
    const fromFile = await loadConfig(contribToml, { root: '/r', state: '/s' });
    const embedded = await loadConfig(undefined, { root: '/r', state: '/s' });
    assert.deepEqual({ ...fromFile, plugins: {} }, { ...embedded, plugins: {} });
    const [a, b] = await Promise.all([
      startTestServer({ config: { plugins: fromFile.plugins } }),
      startTestServer(),
    ]);
    try {
      const status = async (url: string) =>
        ((await (await fetch(`${url}/v1/plugins`)).json()) as { items: Array<{ type: string; id: string; status: string; exports: Record<string, string> }> }).items
          .map((p) => ({ plugin: `${p.type}.${p.id}`, status: p.status, policy: p.exports.policy, default: p.exports.default }));
      assert.deepEqual(await status(a.url), await status(b.url));
    } finally {
      await Promise.all([a.destroy(), b.destroy()]);
    }
  });

  test('names only built-in plugins; the plugins that check their own keys know exactly the documented ones', async () => {
    const builtin = new Set(builtinPlugins.map((r) => `${r.type}.${r.id}`));
    for (const p of pluginSettings) assert.ok(builtin.has(p.plugin), `settings for ${p.plugin}, which is no built-in plugin`);
    // Their unknown-key error lists the keys they know.
    const knownKeys = async (plugin: Registration): Promise<string[]> => {
      const ctx = { config: { no_such_key: 1 }, exports: {}, logger: { info() {}, warn() {} } } as unknown as InitContext;
      const err = await plugin.init(ctx).then(() => undefined, (e: Error) => e);
      assert.ok(err, `${plugin.id} accepted an unknown key`);
      const m = /unknown key "no_such_key" \(known: ([^)]*)\)/.exec(err.message);
      assert.ok(m, `${plugin.id}: ${err.message}`);
      return m[1].split(', ').sort();
    };
    for (const plugin of [registryListenerPlugin, fleetPlugin] as Registration[]) {
      const documented = pluginSettings.find((p) => p.plugin === `${plugin.type}.${plugin.id}`)!.settings.map((s) => s.key).sort();
      assert.deepEqual(await knownKeys(plugin), documented, `${plugin.type}.${plugin.id}: its keys and contrib/berth.toml's differ`);
    }
  });
});

describe('berth config check and the server refuse a wrong file, naming the key or value', () => {
  test('contrib/berth.toml is valid', async () => {
    const r = await berth('config', 'check', contribToml);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${contribToml}: ok\n`);
  });

  const cases: Array<[string, string, RegExp]> = [
    ['an unknown top-level key', 'adress = "127.0.0.1:1"\n', /unknown key "adress"/],
    ['a bad address', 'address = "localhost"\n', /address: .*"localhost".*HOST:PORT/],
    ['an unknown log level', 'log_level = "loud"\n', /log_level: "loud" must be one of fatal, error/],
    ['an unknown plugin key', '[plugins."io.berth.service.v1.pulls"]\nconcurency = 4\n', /plugins\."io\.berth\.service\.v1\.pulls": unknown key "concurency" \(known: hosts_dir, docker_config, concurrency/],
    ['a value of the wrong kind', '[plugins."io.berth.service.v1.pulls"]\nconcurrency = "4"\n', /plugins\."io\.berth\.service\.v1\.pulls"\.concurrency: "4" must be a number/],
    ['a value out of range', '[plugins."io.berth.service.v1.fleet"]\nlease_ttl_s = 1\n', /\.lease_ttl_s: 1 must be from 2 to 3600/],
    ['an unknown sharing policy', '[plugins."io.berth.metadata.v1.level"]\ncontent_sharing_policy = "open"\n', /content_sharing_policy: "open" must be one of shared, isolated/],
    ['a key for a plugin without settings', '[plugins."io.berth.content.v1.content"]\nroot = "/x"\n', /plugins\."io\.berth\.content\.v1\.content": unknown key "root" \(it has no settings\)/],
    ['bad credentials', '[plugins."io.berth.service.v1.pulls".credentials."r.example"]\nusername = "me"\n', /credentials: \."r\.example" needs a username and a secret/],
    ['an unknown plugin', '[plugins."io.berth.service.v1.nope"]\n', /plugins names unknown plugin io\.berth\.service\.v1\.nope/],
    ['an unknown disabled plugin', 'disabled_plugins = ["io.berth.runtime.v1.crun"]\n', /disabled_plugins names unknown plugin io\.berth\.runtime\.v1\.crun/],
    ['not TOML', 'address = \n', /config .*berth\.toml: /],
  ];
  for (const [what, text, expected] of cases) {
    test(what, async () => {
      await withFile(text, async (file) => {
        const r = await berth('config', 'check', file);
        assert.equal(r.code, 1, `exit ${r.code}: ${r.stdout} ${r.stderr}`);
        assert.match(r.stderr, expected);
        assert.equal(r.stdout, '');
      });
    });
  }

  test('berth serve --config refuses the same file before it starts anything', async () => {
    await withFile('[plugins."io.berth.gc.v1.scheduler"]\npause_threshold = 0.9\n', async (file) => {
      await assert.rejects(loadConfig(file), (err: Error) => {
        assert.match(err.message, /plugins\."io\.berth\.gc\.v1\.scheduler"\.pause_threshold: 0\.9 must be from 0 to 0\.5/);
        return true;
      });
    });
  });
});

describe('contrib/berth.service', () => {
  const unit = async (path: string) => {
    const entries = new Map<string, string>();
    for (const line of (await readFile(path, 'utf8')).split('\n')) {
      const m = /^([A-Za-z]+)=(.*)$/.exec(line);
      if (m) entries.set(m[1], m[2]);
    }
    return entries;
  };

  test('runs berth serve with /etc/berth/berth.toml, restarts on failure, kills only berth, waits for the API', async () => {
    const u = await unit(join(projectRoot, 'contrib', 'berth.service'));
    assert.equal(u.get('ExecStart'), '/usr/local/bin/berth serve --config /etc/berth/berth.toml');
    assert.equal(u.get('Type'), 'simple'); // no sd_notify
    assert.match(u.get('ExecStartPost') ?? '', /berth plugins ls/);
    assert.equal(u.get('Restart'), 'on-failure');
    assert.equal(u.get('KillMode'), 'process');
    assert.equal(u.get('WantedBy'), 'multi-user.target');
  });

  test("sets the limits containerd's unit sets", { skip: !existsSync('/lib/systemd/system/containerd.service') && "containerd's unit is not installed" }, async () => {
    const ours = await unit(join(projectRoot, 'contrib', 'berth.service'));
    const containerd = await unit('/lib/systemd/system/containerd.service');
    for (const key of ['LimitNOFILE', 'LimitNPROC', 'LimitCORE', 'TasksMax', 'Delegate', 'OOMScoreAdjust', 'KillMode']) {
      if (containerd.has(key)) assert.equal(ours.get(key), containerd.get(key), key);
    }
  });
});
