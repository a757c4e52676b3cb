// Credentials go only to the host they are for: a registry that redirects a blob to storage on
// another host gets its Authorization; the storage host gets none — and the blob still arrives.
// Debian's registry with filesystem storage never redirects, so both ends are small node:http
// servers here (on 127.0.0.1 and 127.0.0.2: two hosts on loopback).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { Authorizer } from '../src/remotes/auth.js';
import { RegistryClient } from '../src/remotes/client.js';
import { credentialsFrom } from '../src/remotes/credentials.js';
import { parseDockerRef } from '../src/remotes/reference.js';
import { Resolver } from '../src/remotes/resolver.js';
import { fetchToken } from '../src/remotes/token.js';

const blob = Buffer.from('bytes kept in object storage, not on the registry');
const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
const servers: Server[] = [];
after(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));

function listen(host: string, handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  return new Promise((resolve) => server.listen(0, host, () => resolve(`${host}:${(server.address() as AddressInfo).port}`)));
}

test('a blob redirect to another host carries no registry credentials', async () => {
  const seenByStorage: IncomingHttpHeaders[] = [];
  const seenByRegistry: IncomingHttpHeaders[] = [];
  const storage = await listen('127.0.0.2', (req, res) => {
    seenByStorage.push(req.headers);
    res.writeHead(200, { 'content-length': blob.length });
    res.end(blob);
  });
  const registry = await listen('127.0.0.1', (req, res) => {
    seenByRegistry.push(req.headers);
    if (req.headers.authorization !== `Basic ${Buffer.from('user:secret').toString('base64')}`) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="test"' });
      return res.end();
    }
    res.writeHead(307, { location: `http://${storage}/bucket/${digest}?signature=abc` });
    res.end();
  });

  const creds = credentialsFrom({ [registry]: { username: 'user', secret: 'secret' } }, {});
  const resolver = new Resolver(new RegistryClient(new Authorizer(creds, fetchToken), { backoffMs: 10 }));
  const ref = parseDockerRef(`${registry}/team/app:1`);
  const body = await resolver.fetch(ref, { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: blob.length });
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  assert.deepEqual(Buffer.concat(chunks), blob);

  assert.ok(seenByRegistry.some((h) => h.authorization?.startsWith('Basic ')), 'the registry got its credentials');
  assert.ok(seenByStorage.length >= 1, 'the redirect was followed');
  for (const h of seenByStorage) assert.equal(h.authorization, undefined, 'storage on another host gets no Authorization');
});

test('hosts.toml mirrors: a blob the mirror lacks is fetched from the next host, with ?ns= on the mirror', async () => {
  const mirrorSaw: string[] = [];
  const upstreamSaw: string[] = [];
  const mirror = await listen('127.0.0.1', (req, res) => {
    mirrorSaw.push(req.url ?? '');
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}');
  });
  const upstream = await listen('127.0.0.2', (req, res) => {
    upstreamSaw.push(req.url ?? '');
    res.writeHead(200, { 'content-length': blob.length });
    res.end(blob);
  });
  const { mkdtemp, mkdir, writeFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const hostsDir = await mkdtemp(join(tmpdir(), 'berth-hosts-'));
  try {
    const [name, port] = upstream.split(':');
    await mkdir(join(hostsDir, `${name}_${port}_`));
    await writeFile(
      join(hostsDir, `${name}_${port}_`, 'hosts.toml'),
      `server = "http://${upstream}"\n[host."http://${mirror}"]\n  capabilities = ["pull"]\n`,
    );
    const resolver = new Resolver(new RegistryClient(new Authorizer(async () => undefined, fetchToken)), { hostsDir });
    const ref = parseDockerRef(`${upstream}/team/app:1`);
    const body = await resolver.fetch(ref, { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: blob.length });
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    assert.deepEqual(Buffer.concat(chunks), blob);
    assert.deepEqual(mirrorSaw, [`/v2/team/app/blobs/${digest}?ns=${encodeURIComponent(upstream)}`], 'the mirror was asked first, told the namespace');
    assert.deepEqual(upstreamSaw, [`/v2/team/app/blobs/${digest}`], 'then the upstream');
  } finally {
    await rm(hostsDir, { recursive: true, force: true });
  }
});
