// Registry configuration: credentials from berth's config and docker's config.json (including a
// credential helper, a real executable on PATH), containerd's hosts.toml layout, Retry-After.
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parseChallenges } from '../src/remotes/auth.js';
import { retryAfter } from '../src/remotes/client.js';
import { credentialsFrom } from '../src/remotes/credentials.js';
import { defaultHost, isLoopback, registryHosts } from '../src/remotes/hosts.js';
import { errorCode } from '../store/errors.js';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
async function temp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'berth-remotes-'));
  dirs.push(d);
  return d;
}

describe('credentials', () => {
  test('berth config first, then config.json auths; only for the exact host', async () => {
    const creds = credentialsFrom(
      { 'reg.example:5000': { username: 'mine', secret: 's1' } },
      {
        auths: {
          'reg.example:5000': { auth: Buffer.from('docker:s2').toString('base64') },
          'other.example': { username: 'u', password: 'p' },
          'https://index.docker.io/v1/': { auth: Buffer.from('hub:s3').toString('base64') },
        },
      },
    );
    assert.deepEqual(await creds('reg.example:5000'), { username: 'mine', secret: 's1' });
    assert.deepEqual(await creds('other.example'), { username: 'u', secret: 'p' });
    // Docker Hub's entry serves registry-1.docker.io, the host requests go to.
    assert.deepEqual(await creds('registry-1.docker.io'), { username: 'hub', secret: 's3' });
    assert.equal(await creds('reg.example'), undefined, 'another port is another host');
    assert.equal(await creds('evil.example'), undefined);
  });

  test('credHelpers run docker-credential-<name> get with the host on stdin', async () => {
    const bin = await temp();
    const helper = join(bin, 'docker-credential-berthtest');
    await writeFile(
      helper,
      '#!/bin/sh\nread host\nif [ "$host" = "helped.example" ]; then echo \'{"ServerURL":"helped.example","Username":"hu","Secret":"hs"}\'; else echo "credentials not found in native keychain"; exit 1; fi\n',
    );
    await chmod(helper, 0o755);
    const oldPath = process.env.PATH;
    process.env.PATH = `${bin}:${oldPath}`;
    try {
      const creds = credentialsFrom({}, { credHelpers: { 'helped.example': 'berthtest', 'missing.example': 'berthtest' } });
      assert.deepEqual(await creds('helped.example'), { username: 'hu', secret: 'hs' });
      assert.equal(await creds('missing.example'), undefined, '"not found" is no credentials, not an error');
    } finally {
      process.env.PATH = oldPath;
    }
  });
});

describe('hosts', () => {
  test('defaults: docker.io is served by registry-1.docker.io over https; loopback over http', async () => {
    assert.deepEqual([defaultHost('docker.io').host, defaultHost('docker.io').scheme], ['registry-1.docker.io', 'https']);
    assert.equal(defaultHost('127.0.0.1:5000').scheme, 'http');
    assert.equal(defaultHost('localhost:5000').scheme, 'http');
    assert.equal(defaultHost('[::1]:5000').scheme, 'http');
    assert.equal(defaultHost('registry.example').scheme, 'https');
    for (const h of ['localhost', '127.0.0.1', '127.1.2.3:80', '[::1]:5000', 'localhost:5000']) assert.ok(isLoopback(h), h);
    for (const h of ['10.0.0.1', 'example.com', 'localhost.example.com', '128.0.0.1']) assert.ok(!isLoopback(h), h);
  });

  test('hosts.toml: mirrors in file order with capabilities, headers, override_path, then server', async () => {
    const root = await temp();
    await mkdir(join(root, 'reg.example_5000_'), { recursive: true });
    await writeFile(
      join(root, 'reg.example_5000_', 'hosts.toml'),
      [
        'server = "https://reg.example:5000"',
        '[host."http://mirror-b.example:8080"]',
        '  capabilities = ["pull"]',
        '  [host."http://mirror-b.example:8080".header]',
        '    x-token = "t"',
        '[host."https://mirror-a.example/custom/path"]',
        '  capabilities = ["pull", "resolve"]',
        '  override_path = true',
        '  skip_verify = true',
      ].join('\n'),
    );
    const hosts = await registryHosts('reg.example:5000', root);
    assert.deepEqual(
      hosts.map((h) => [h.scheme, h.host, h.path, [...h.capabilities].sort().join(',')]),
      [
        ['http', 'mirror-b.example:8080', '/v2', 'pull'],
        ['https', 'mirror-a.example', '/custom/path', 'pull,resolve'],
        ['https', 'reg.example:5000', '/v2', 'pull,push,referrers,resolve'],
      ],
    );
    assert.deepEqual(hosts[0].headers, { 'x-token': ['t'] });
    assert.equal(hosts[1].skipVerify, true);
    // No folder for a host: the default upstream alone; `_default` applies to every host.
    assert.deepEqual((await registryHosts('elsewhere.example', root)).map((h) => h.host), ['elsewhere.example']);
    await mkdir(join(root, '_default'));
    await writeFile(join(root, '_default', 'hosts.toml'), '[host."https://everyone.example"]\n');
    assert.deepEqual((await registryHosts('elsewhere.example', root)).map((h) => h.host), ['everyone.example', 'elsewhere.example']);
  });

  test('hosts.toml errors name the file and what is wrong', async () => {
    const root = await temp();
    await mkdir(join(root, 'bad.example'));
    await writeFile(join(root, 'bad.example', 'hosts.toml'), '[host."https://m.example"]\ncapabilities = ["pull", "fly"]\n');
    await assert.rejects(registryHosts('bad.example', root), (err: Error) => errorCode(err) === 'invalid_argument' && /hosts\.toml.*unknown capability fly/.test(err.message));
    await writeFile(join(root, 'bad.example', 'hosts.toml'), 'server = [oops');
    await assert.rejects(registryHosts('bad.example', root), (err: Error) => errorCode(err) === 'invalid_argument' && /hosts\.toml/.test(err.message));
  });
});

describe('protocol details', () => {
  test('WWW-Authenticate: bearer before basic, quoted params with escapes, unknown schemes dropped', () => {
    const got = parseChallenges([
      'Basic realm="reg"',
      'Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull push",error="insufficient_scope"',
      'Negotiate abc',
    ]);
    assert.deepEqual(got.map((c) => c.scheme), ['bearer', 'basic']);
    assert.deepEqual(got[0].params, {
      realm: 'https://auth.example/token',
      service: 'reg.example',
      scope: 'repository:a/b:pull push',
      error: 'insufficient_scope',
    });
    assert.deepEqual(parseChallenges('Bearer realm="a\\"b"')[0].params.realm, 'a"b');
  });

  test('Retry-After as seconds or an HTTP date', () => {
    assert.equal(retryAfter('1'), 1000);
    assert.equal(retryAfter(['3']), 3000);
    const inTwo = new Date(Date.now() + 2000).toUTCString();
    const ms = retryAfter(inTwo)!;
    assert.ok(ms > 0 && ms <= 2000, String(ms));
    assert.equal(retryAfter('soon'), undefined);
    assert.equal(retryAfter(undefined), undefined);
  });
});
