// A fleet over TLS to etcd (issue 12): a real etcd serving https with client-certificate auth,
// certificates made by openssl for this test. A node with the CA and a client certificate joins;
// one that does not trust etcd's certificate, or has no client certificate, works alone and says
// why (no hang); TLS files that cannot be used are start-up errors naming the file.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startEtcd, type Etcd } from './fixtures/etcd.js';
import { fleetExports, FLEET_PLUGIN, REGISTRY_PLUGIN, type Json } from './fixtures/fleet.js';
import { startTestServer, type TestServer } from './fixtures/server.js';

const run = promisify(execFile);

let dir: string;
let etcd: Etcd;
const cleanups: Array<() => Promise<unknown>> = [];

/** A CA, a certificate for 127.0.0.1 signed by it (with `ext`), or a self-signed one. */
async function openssl(...args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

async function makeCertificates(): Promise<void> {
  const days = ['-days', '2'];
  for (const ca of ['ca', 'other-ca']) {
    await openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${ca}-key.pem`, '-out', `${ca}.pem`, '-subj', `/CN=berth test ${ca}`, ...days);
  }
  await writeFile(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await writeFile(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, ext] of [['server', 'server.ext'], ['client', 'client.ext']]) {
    await openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=berth test ${name}`);
    await openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', `${name}.pem`, '-extfile', ext, ...days);
  }
}

const file = (name: string) => join(dir, name);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-etcd-tls-'));
  await makeCertificates();
  etcd = await startEtcd({
    tls: {
      certFile: file('server.pem'),
      keyFile: file('server-key.pem'),
      clientCaFile: file('ca.pem'),
      check: { ca: await readFile(file('ca.pem')), cert: await readFile(file('client.pem')), key: await readFile(file('client-key.pem')) },
    },
  });
});
after(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
  await etcd?.destroy();
  await rm(dir, { recursive: true, force: true });
});

async function startNode(name: string, fleet: Json): Promise<TestServer> {
  const server = await startTestServer({
    config: {
      plugins: {
        [REGISTRY_PLUGIN]: { address: '127.0.0.1:0' },
        [FLEET_PLUGIN]: { etcd_endpoints: [etcd.endpoint], node_name: name, lease_ttl_s: 5, prefix: `/berth-tls-test/${process.pid}`, ...fleet },
      },
    },
  });
  cleanups.push(() => server.destroy());
  return server;
}

describe('a fleet over TLS to etcd', { timeout: 90_000 }, () => {
  test('with the CA and a client certificate the node joins; the others work alone, saying why', async (t) => {
    assert.match(etcd.endpoint, /^https:\/\//);
    const trusted = await startNode('trusted', { etcd_ca_file: file('ca.pem'), etcd_cert_file: file('client.pem'), etcd_key_file: file('client-key.pem') });
    const ex = await fleetExports(trusted);
    assert.equal(ex.state, 'joined', `joined over TLS (${ex.reason})`);
    assert.equal(ex.tls, 'on');
    const nodes = (await (await fetch(`${trusted.url}/v1/fleet/nodes`)).json()) as Json;
    assert.deepEqual(nodes.items.map((n: Json) => n.name), ['trusted']);

    // etcd's certificate signed by a CA the node does not trust: no hang at start, alone with the reason.
    const wrongCa = await startNode('wrong-ca', { etcd_ca_file: file('other-ca.pem'), etcd_cert_file: file('client.pem'), etcd_key_file: file('client-key.pem') });
    const w = await fleetExports(wrongCa);
    assert.equal(w.status, 'ok');
    assert.equal(w.state, 'alone');
    assert.match(w.reason, new RegExp(`etcd 127\\.0\\.0\\.1:${etcd.clientPort}`));
    // No client certificate, where etcd requires one.
    const noCert = await startNode('no-cert', { etcd_ca_file: file('ca.pem') });
    const n = await fleetExports(noCert);
    assert.equal(n.state, 'alone');
    assert.match(n.reason, new RegExp(`etcd 127\\.0\\.0\\.1:${etcd.clientPort}`));
    t.diagnostic(`wrong CA: ${w.reason}`);
    t.diagnostic(`no client certificate: ${n.reason}`);
    // Neither is in the fleet.
    const again = (await (await fetch(`${trusted.url}/v1/fleet/nodes`)).json()) as Json;
    assert.deepEqual(again.items.map((x: Json) => x.name), ['trusted']);
  });

  test('TLS files that cannot be used are start-up errors naming the setting', async () => {
    const cases: Array<[Json, RegExp]> = [
      [{ etcd_ca_file: file('missing.pem') }, /etcd_ca_file .*missing\.pem: ENOENT/],
      [{ etcd_ca_file: file('server.ext') }, /etcd_ca_file .*server\.ext: not a PEM file/],
      [{ etcd_ca_file: file('ca.pem'), etcd_cert_file: file('client.pem') }, /etcd_cert_file and etcd_key_file go together/],
      [{ etcd_endpoints: ['http://127.0.0.1:2379'], etcd_ca_file: file('ca.pem') }, /etcd_ca_file: TLS files given, but etcd_endpoints are http:\/\//],
      [{ etcd_endpoints: ['https://127.0.0.1:2379', 'http://127.0.0.1:2380'] }, /mixes http:\/\/ and https:\/\//],
    ];
    for (const [fleet, message] of cases) {
      const server = await startNode('bad', fleet);
      const ex = await fleetExports(server);
      assert.equal(ex.status, 'error', JSON.stringify(fleet));
      assert.match(ex.message, message);
      await server.destroy();
    }
  });
});
