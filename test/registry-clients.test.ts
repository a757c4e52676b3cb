// Real clients of berth's registry listener (issue 11), in front of a real upstream (Debian's
// docker-registry behind the loopback proxy of test/fixtures/proxy.ts, which counts what the
// upstream serves):
//   * skopeo: `inspect --raw` gives the manifest's bytes; `copy docker://<berth>/<repo>:<tag>
//     oci:DIR` (and by digest) gives blobs byte-identical to the upstream's;
//   * `berth registry hosts-toml REGISTRY [--dir DIR]` writes (or prints) the hosts.toml that puts
//     this berth before the upstream; containerd (Debian's, started here with its own root, state,
//     socket and config) pulls through it with `ctr images pull --hosts-dir`, the image complete
//     by `ctr images check`, the upstream serving each blob once (berth's fetch, not containerd's);
//     and again with the upstream stopped once berth holds the image;
//   * a second berth pulls through the first with that hosts.toml as its pulls plugin's mirror;
//   * `berth registry stats [--json]`.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { parse as parseToml } from 'smol-toml';

import { registryHosts } from '../src/remotes/hosts.js';
import { seededBytes } from './fixtures/helpers.js';
import { bigLayer, buildImage, pushImage, type Image } from './fixtures/images.js';
import { startProxy, type Proxy, type ProxyResponse } from './fixtures/proxy.js';
import {
  blobBytes,
  commandOk,
  ContainerdUnavailable,
  managementApi,
  PULLS_PLUGIN,
  runCommand,
  startContainerd,
  startMirror,
  waitUntil,
  type Containerd,
  type Mirror,
} from './fixtures/registry-listener.js';
import { startRegistry, type Registry } from './fixtures/registry.js';
import { startTestServer } from './fixtures/server.js';
import { berth, cliOk } from './fixtures/unpack.js';

const T = { timeout: 180_000 };

let registry: Registry;
/** The upstream as berth and the clients see it: a proxy in front of the registry. */
let up: Proxy;
let mirror: Mirror;
const proxies: Proxy[] = [];

before(async () => {
  registry = await startRegistry({ auth: 'none' });
  up = await startProxy(registry.host);
  proxies.push(up);
  mirror = await startMirror({ upstream: up.host });
});

after(async () => {
  await mirror?.destroy();
  for (const p of proxies) await p.stop();
  await registry?.stop();
});

// ---------------------------------------------------------------------------------------------

const pathOnly = (p: string): string => p.split('?')[0];
const blobGets = (proxy: Proxy, digest: string): ProxyResponse[] =>
  proxy.responses.filter((r) => r.method === 'GET' && pathOnly(r.path).endsWith(`/blobs/${digest}`));

async function temp(t: TestContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The management API address of the mirror, as the CLI takes it. */
const mgmt = (): string => new URL(mirror.server.url).host;

/** An image with gzip layers that unpack (containerd unpacks what it pulls). */
async function image(seed: number, name: string): Promise<Image> {
  const big = await bigLayer(2 * 1024 * 1024, { seed });
  return buildImage({ format: 'oci', layers: [{ 'etc/': { type: 'dir' }, 'etc/client': `${name}\n` }, big, { 'data.bin': seededBytes(seed + 1, 50_000) }] });
}

/** Each blob of `img` was fetched from `proxy` once: by berth, so no client went around it. */
function assertFetchedOnce(proxy: Proxy, img: Image, what: string): void {
  for (const b of img.blobs) {
    const gets = blobGets(proxy, b.digest);
    assert.equal(gets.length, 1, `${what}: blob ${b.digest} was fetched from the upstream ${gets.length} times`);
  }
}

/** `berth registry hosts-toml REGISTRY --dir DIR` → the file, parsed; checks its content. */
async function writeHostsToml(registryHost: string, dir: string): Promise<Record<string, any>> {
  cliOk(await berth(mgmt(), ['registry', 'hosts-toml', registryHost, '--dir', dir]), 'berth registry hosts-toml --dir');
  const file = join(dir, registryHost, 'hosts.toml');
  const text = await readFile(file, 'utf8').catch((err: Error) => assert.fail(`${file}: ${err.message}`));
  const doc = parseToml(text) as Record<string, any>;
  assert.equal(doc.server, `http://${registryHost}`, `${file}: server (the upstream, last)\n${text}`);
  const hosts = (doc.host ?? {}) as Record<string, Record<string, unknown>>;
  const mine = hosts[`http://${mirror.address}`];
  assert.ok(mine, `${file}: no [host."http://${mirror.address}"]\n${text}`);
  assert.deepEqual([...(mine.capabilities as string[])].sort(), ['pull', 'resolve'], `${file}: capabilities`);
  // As containerd (and berth's own pulls) read it: this berth first, then the upstream.
  const order = await registryHosts(registryHost, dir);
  assert.deepEqual(order.map((h) => `${h.scheme}://${h.host}`), [`http://${mirror.address}`, `http://${registryHost}`]);
  return doc;
}

// ---------------------------------------------------------------------------------------------

describe('skopeo', () => {
  test('inspect --raw gives the manifest’s bytes; copy by tag and by digest to oci: gives the upstream’s blobs', T, async (t) => {
    const img = await image(1301, 'skopeo');
    await pushImage(registry, 'cl/skopeo', 'v1', img);
    const src = `docker://${mirror.address}/cl/skopeo`;

    const raw = commandOk(await runCommand('skopeo', ['inspect', '--raw', '--tls-verify=false', `${src}:v1`]), 'skopeo inspect --raw');
    const manifestText = img.manifest.data.toString('utf8');
    assert.ok(raw === manifestText || raw === `${manifestText}\n`, `skopeo inspect --raw:\n${raw}\nwant:\n${manifestText}`);

    for (const [what, ref, dest] of [
      ['by tag', `${src}:v1`, 'tag'],
      ['by digest', `${src}@${img.digest}`, 'digest'],
    ] as const) {
      const dir = await temp(t, `berth-skopeo-${dest}-`);
      const layout = dest === 'tag' ? `oci:${dir}:v1` : `oci:${dir}`;
      commandOk(await runCommand('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', ref, layout]), `skopeo copy ${what}`);
      const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
      assert.deepEqual(index.manifests.map((m) => m.digest), [img.digest], `${what}: index.json names the manifest`);
      const file = (digest: string): string => join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
      assert.ok((await readFile(file(img.digest))).equals(img.manifest.data), `${what}: manifest bytes`);
      for (const b of img.blobs) {
        const got = await readFile(file(b.digest)).catch(() => undefined);
        assert.ok(got, `${what}: blob ${b.digest} missing from the layout`);
        assert.ok(got.equals(await blobBytes(b)), `${what}: blob ${b.digest} differs from the upstream's`);
      }
    }
    assertFetchedOnce(up, img, 'two copies and an inspect');
    await waitUntil('the image recorded in berth', async () => (await mirror.images()).get(`${up.host}/cl/skopeo:v1`)?.digest === img.digest);
  });
});

describe('containerd through the hosts.toml berth writes', () => {
  test('hosts-toml writes or prints the file that puts berth first', T, async (t) => {
    const dir = await temp(t, 'berth-hosts-');
    const doc = await writeHostsToml(up.host, dir);
    const printed = cliOk(await berth(mgmt(), ['registry', 'hosts-toml', up.host]), 'berth registry hosts-toml (print)');
    assert.deepEqual(parseToml(printed), doc, 'printed and written agree');
  });

  test('ctr images pull --hosts-dir: complete through berth; again with the upstream stopped', T, async (t) => {
    // An upstream of this test's own, stopped half-way.
    const upstream = await startProxy(registry.host);
    proxies.push(upstream);
    const img = await image(1311, 'containerd');
    await pushImage(registry, 'cl/ctr', 'v1', img);
    const ref = `${upstream.host}/cl/ctr:v1`;
    const hostsDir = await temp(t, 'berth-ctr-hosts-');
    await writeHostsToml(upstream.host, hostsDir);

    const dir = await temp(t, 'berth-containerd-');
    let containerd: Containerd;
    try {
      containerd = await startContainerd(dir);
    } catch (err) {
      if (err instanceof ContainerdUnavailable) {
        t.skip(`containerd cannot start on this machine: ${err.message}`);
        return;
      }
      throw err;
    }
    t.after(() => containerd.stop());
    const ctr = async (args: string[], what: string): Promise<string> => commandOk(await containerd.ctr(args), `${what}\ncontainerd log:\n${containerd.logs().slice(-3000)}`);
    const pull = (): Promise<string> => ctr(['images', 'pull', '--hosts-dir', hostsDir, '--plain-http', '--snapshotter', 'native', ref], `ctr images pull ${ref}`);
    const assertComplete = async (what: string): Promise<void> => {
      const check = await ctr(['images', 'check'], 'ctr images check');
      const line = check.split('\n').find((l) => l.startsWith(`${ref} `));
      assert.ok(line, `${what}: ${ref} not listed by ctr images check:\n${check}`);
      assert.ok(line.includes(img.digest), `${what}: ${line}`);
      assert.match(line, /\bcomplete \((\d+)\/\1\)/, `${what}: ${line}`);
      const content = new Set((await ctr(['content', 'ls', '-q'], 'ctr content ls')).split('\n').map((l) => l.trim()));
      for (const d of [img.digest, ...img.blobs.map((b) => b.digest)]) assert.ok(content.has(d), `${what}: containerd lacks ${d}`);
    };

    const before = await mirror.stats();
    await pull();
    await assertComplete('through berth');
    assertFetchedOnce(upstream, img, 'containerd through berth');
    const during = await mirror.stats();
    assert.ok(during.requests >= before.requests + 1 + img.blobs.length, `berth served containerd: requests ${before.requests} → ${during.requests}`);
    await waitUntil('berth holds the image', async () => (await mirror.images()).get(ref)?.digest === img.digest);
    for (const b of img.blobs) await waitUntil(`berth holds ${b.digest}`, () => mirror.hasBlob(b.digest));

    // containerd forgets the image; the upstream goes away; berth alone serves it.
    await ctr(['images', 'rm', '--sync', ref], 'ctr images rm');
    const left = (await ctr(['content', 'ls', '-q'], 'ctr content ls')).split('\n').map((l) => l.trim()).filter(Boolean);
    if (left.length > 0) await ctr(['content', 'rm', ...left], 'ctr content rm');
    assert.equal((await ctr(['content', 'ls', '-q'], 'ctr content ls')).trim(), '', 'containerd’s store is empty');
    await upstream.stop();
    await pull();
    await assertComplete('with the upstream stopped');
  });
});

describe('berth → berth', () => {
  test('a second berth pulls through the first with a hosts.toml mirror', T, async (t) => {
    const img = await image(1321, 'peer');
    await pushImage(registry, 'cl/peer', 'v1', img);
    const ref = `${up.host}/cl/peer:v1`;
    const hostsDir = await temp(t, 'berth-peer-hosts-');
    await writeHostsToml(up.host, hostsDir);
    const second = await startTestServer({ config: { plugins: { [PULLS_PLUGIN]: { hosts_dir: hostsDir } } } });
    t.after(() => second.destroy());
    const api = managementApi(second);

    const before = await mirror.stats();
    const pulled = await api('POST', '/v1/pulls?wait=true', { ref });
    assert.equal(pulled.status, 200, pulled.text);
    assert.equal(pulled.json.state, 'done', pulled.text);
    assert.equal(pulled.json.image, ref);
    const images = (await api('GET', '/v1/images')).json.items as Array<{ name: string; target: { digest: string } }>;
    assert.equal(images.find((i) => i.name === ref)?.target.digest, img.digest, 'the second berth records the image');
    for (const b of img.blobs) {
      const info = await api('GET', `/v1/content/${encodeURIComponent(b.digest)}/info`);
      assert.equal(info.status, 200, `the second berth lacks ${b.digest}: ${info.text}`);
      const got = Buffer.from(await (await fetch(`${second.url}/v1/content/${encodeURIComponent(b.digest)}`)).arrayBuffer());
      assert.ok(got.equals(await blobBytes(b)), `${b.digest}: bytes differ from the upstream's`);
    }
    // The first berth served it and fetched each blob once; the second never reached the upstream.
    assertFetchedOnce(up, img, 'berth → berth');
    const afterStats = await mirror.stats();
    assert.ok(afterStats.requests >= before.requests + 1 + img.blobs.length, `the first berth served the second: requests ${before.requests} → ${afterStats.requests}`);
    await waitUntil('the first berth records the image too', async () => (await mirror.images()).get(ref)?.digest === img.digest);
  });
});

describe('berth registry stats', () => {
  test('--json prints the stats of GET /v1/registry/stats; without it, a readable summary', T, async () => {
    const json = JSON.parse(cliOk(await berth(mgmt(), ['registry', 'stats', '--json']), 'berth registry stats --json')) as Record<string, unknown>;
    assert.equal(json.address, mirror.address);
    assert.equal(json.namespace, 'default');
    for (const k of ['requests', 'hits', 'pullThroughs', 'followers', 'bytesServed', 'bytesFetchedUpstream', 'hitRatio']) {
      assert.equal(typeof json[k], 'number', `${k} in ${JSON.stringify(json)}`);
    }
    const text = cliOk(await berth(mgmt(), ['registry', 'stats']), 'berth registry stats');
    assert.ok(text.includes(mirror.address), `the summary names the address:\n${text}`);
  });
});
