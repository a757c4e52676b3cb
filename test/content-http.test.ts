// The content store's behaviour over HTTP, against a real server (test/fixtures/server.ts) on a
// loopback port with a temporary root:
//   * containerd's content conformance cases (reference §2.2) in HTTP form: pieces, resume,
//     CommitExists, CommitErrorState, the per-ref lock, labels (case 11), Range/HEAD/ETag;
//   * one-shot PUT (201 / 409 before the body / 412 leaving nothing behind);
//   * restart: a half-written ingest resumes, committed labels persist;
//   * bad input: a clear 4xx JSON error naming the object, never a 500, nothing lost;
//   * a client that disconnects mid-upload, a 64 MiB streamed round trip;
//   * the CLI (bin/berth.js) against a running server, and a second `serve` on a held root.
// Every request goes through node:http (no URL normalisation, so refs like `..` reach the server
// as written), with a fresh connection each time (agent: false).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { backendRef, contentRoot, ingestDir, ingestFolderName } from './fixtures/ingest.js';
import { startTestServer, type TestServer } from './fixtures/server.js';

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const T = { timeout: 30_000 };
const KiB = 1024;
const MiB = 1024 * 1024;

const sha256hex = (data: Uint8Array | string): string => createHash('sha256').update(data).digest('hex');
const sha256 = (data: Uint8Array | string): string => `sha256:${sha256hex(data)}`;

let seed = 0;
/** Distinct content for every call (a counter makes each blob unique within the run). */
function content(size: number, tag = 'c'): Buffer {
  seed += 1;
  const out = Buffer.alloc(size);
  let block = Buffer.alloc(0);
  for (let i = 0, n = 0; i < size; i += 32, n++) {
    block = createHash('sha256').update(`${process.pid}:${tag}:${seed}:${n}`).digest();
    block.copy(out, i, 0, Math.min(32, size - i));
  }
  return out;
}

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

interface ReqOpts {
  headers?: Record<string, string | number>;
  body?: Buffer | string | Readable;
  json?: unknown;
}

/** One HTTP request on a fresh connection; the path is sent exactly as given. */
function call(base: string, method: string, path: string, opts: ReqOpts = {}): Promise<Res> {
  const u = new URL(base);
  const headers: Record<string, string | number> = { ...opts.headers };
  let body = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['content-type'] = 'application/json';
  }
  if (typeof body === 'string') body = Buffer.from(body);
  if (Buffer.isBuffer(body)) headers['content-length'] = body.length;
  return new Promise((resolveP, reject) => {
    const req = http.request(
      { host: u.hostname, port: Number(u.port), method, path, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const buf = Buffer.concat(chunks);
          let json: unknown;
          try {
            json = buf.length ? JSON.parse(buf.toString('utf8')) : undefined;
          } catch {
            json = undefined;
          }
          resolveP({ status: res.statusCode ?? 0, headers: res.headers, body: buf, json });
        });
      },
    );
    req.on('error', reject);
    if (body instanceof Readable) body.pipe(req);
    else req.end(body);
  });
}

const seg = (s: string): string => encodeURIComponent(s);

/** What a test sees of a server: requests, and where its content store lives on disk. */
class Api {
  constructor(public server: TestServer) {}
  get url(): string {
    return this.server.url;
  }
  get contentRoot(): string {
    return contentRoot(this.server);
  }
  /** The backend (local store) ref of an ingest of the default namespace: `default/<seq>/<ref>`. */
  backendRef(ref: string): Promise<string> {
    return backendRef(this.server, ref);
  }
  /**
   * `ingest/<sha256(bref)>` of an ingest of the default namespace. The bref is known only while
   * the ingest exists: take the folder before a commit or an abort that removes it.
   */
  ingestDir(ref: string): Promise<string> {
    return ingestDir(this.server, ref);
  }
  blobFile(digest: string): string {
    const [alg, hex] = digest.split(':');
    return join(this.contentRoot, 'blobs', alg, hex);
  }
  req(method: string, path: string, opts?: ReqOpts): Promise<Res> {
    return call(this.url, method, path, opts);
  }
  patch(ref: string, offset: number | undefined, body: Buffer, extra: Record<string, string | number> = {}): Promise<Res> {
    const headers: Record<string, string | number> = { 'content-type': 'application/offset+octet-stream', ...extra };
    if (offset !== undefined) headers['upload-offset'] = offset;
    return this.req('PATCH', `/v1/ingests/${seg(ref)}`, { headers, body });
  }
  status(ref: string): Promise<Res> {
    return this.req('GET', `/v1/ingests/${seg(ref)}`);
  }
  commit(ref: string, body: { size?: number; digest?: string; labels?: Record<string, string> }): Promise<Res> {
    return this.req('POST', `/v1/ingests/${seg(ref)}/commit`, { json: body });
  }
  abort(ref: string): Promise<Res> {
    return this.req('DELETE', `/v1/ingests/${seg(ref)}`);
  }
  info(digest: string): Promise<Res> {
    return this.req('GET', `/v1/content/${seg(digest)}/info`);
  }
  get(digest: string, headers: Record<string, string> = {}): Promise<Res> {
    return this.req('GET', `/v1/content/${seg(digest)}`, { headers });
  }
  put(digest: string, body: Buffer, headers: Record<string, string> = {}): Promise<Res> {
    return this.req('PUT', `/v1/content/${seg(digest)}`, {
      headers: { 'content-type': 'application/octet-stream', ...headers },
      body,
    });
  }
  updateLabels(digest: string, body: { labels: Record<string, string>; fieldpaths?: string[] }): Promise<Res> {
    return this.req('PATCH', `/v1/content/${seg(digest)}`, { json: body });
  }
  async ingestRefs(): Promise<string[]> {
    const res = await this.req('GET', '/v1/ingests');
    assert.equal(res.status, 200, `GET /v1/ingests: ${res.body}`);
    return (res.json.items as Array<{ ref: string }>).map((s) => s.ref);
  }
  /** Names of the folders under `ingest/` on disk. */
  async ingestFolders(): Promise<string[]> {
    return (await readdir(join(this.contentRoot, 'ingest')).catch(() => [])).sort();
  }
}

async function newApi(): Promise<Api> {
  return new Api(await startTestServer());
}

function describeRes(res: Res): string {
  const body = res.json !== undefined ? JSON.stringify(res.json).slice(0, 500) : `<${res.body.length} bytes>`;
  return `${res.status} ${body}`;
}

/** Asserts a berth error: status, JSON body `{error: {code, message}}`, message naming `names`. */
function assertError(res: Res, status: number, code: string, names: string[] | string, what: string): void {
  assert.equal(res.status, status, `${what}: expected ${status} ${code}, got ${describeRes(res)}`);
  assert.match(String(res.headers['content-type']), /application\/json/, `${what}: error content-type`);
  assert.ok(res.json && typeof res.json.error === 'object', `${what}: body must be {"error":{...}}, got ${res.body}`);
  assert.equal(res.json.error.code, code, `${what}: error code (message: ${res.json.error.message})`);
  assert.equal(typeof res.json.error.message, 'string', `${what}: error message`);
  for (const name of Array.isArray(names) ? names : [names]) {
    assert.ok(
      res.json.error.message.includes(name),
      `${what}: message ${JSON.stringify(res.json.error.message)} must name ${JSON.stringify(name)}`,
    );
  }
}

/** Milliseconds of an RFC 3339 time; asserts it is one, with nanosecond digits. */
function ms(t: string, what: string): number {
  assert.match(t, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}(Z|[+-]\d{2}:\d{2})$/, `${what}: RFC 3339 nanoseconds`);
  const m = /^(.*\.\d{3})\d*(.*)$/.exec(t)!;
  return Date.parse(m[1] + m[2]);
}

/** File times come from the kernel's coarse clock, which may trail Date.now() by a tick. */
const CLOCK_SLACK = 50;

function assertWithin(t: string, lo: number, hi: number, what: string): void {
  const v = ms(t, what);
  assert.ok(lo - CLOCK_SLACK <= v && v <= hi + CLOCK_SLACK, `${what} ${t} not within [${new Date(lo).toISOString()}, ${new Date(hi).toISOString()}]`);
}

const sleep = (n: number) => new Promise((r) => setTimeout(r, n));

/** Polls `fn` until it returns a value (not undefined) or `ms` pass. */
async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** Every path under `dir` (files and folders), relative, sorted. */
async function tree(dir: string, skip: (rel: string) => boolean = () => false): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const rel = relative(dir, p);
      if (skip(rel)) continue;
      out.push(rel);
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out.sort();
}

/**
 * A PATCH whose body the test holds open: the headers and `first` are sent, the rest only when
 * `finish()` is called. `response` settles when the server answers.
 */
function slowPatch(base: string, ref: string, total: number, first: Buffer) {
  const u = new URL(base);
  const req = http.request({
    host: u.hostname,
    port: Number(u.port),
    method: 'PATCH',
    path: `/v1/ingests/${seg(ref)}`,
    agent: false,
    headers: {
      'content-type': 'application/offset+octet-stream',
      'upload-offset': 0,
      'content-length': total,
    },
  });
  const response = new Promise<Res>((resolveP, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        let json: unknown;
        try {
          json = body.length ? JSON.parse(body.toString()) : undefined;
        } catch {
          json = undefined;
        }
        resolveP({ status: res.statusCode ?? 0, headers: res.headers, body, json });
      });
    });
  });
  response.catch(() => {}); // observed by the test when it awaits
  req.write(first);
  return {
    response,
    finish: (rest: Buffer) => req.end(rest),
    destroy: () => req.destroy(),
  };
}

// ---------------------------------------------------------------------------------------------
// Conformance over HTTP (reference §2.2)
// ---------------------------------------------------------------------------------------------

describe('conformance over HTTP (containerd content testsuite)', () => {
  let api: Api;
  before(async () => {
    api = await newApi();
  });
  after(async () => {
    await api.server.destroy();
  });

  test('Writer/UpdateStatus: write in several PATCH pieces, status after each, commit', T, async () => {
    const ref = 'c1-update-status';
    const data = content(256);
    const d = sha256(data);
    const tOpen0 = Date.now();
    // An empty PATCH at offset 0 opens the ingest: offset 0, total known, expected remembered.
    let res = await api.patch(ref, 0, Buffer.alloc(0), { 'upload-length': 256, 'upload-digest': d });
    const tOpen1 = Date.now();
    assert.equal(res.status, 200, `open: ${describeRes(res)}`);
    assert.equal(res.headers['upload-offset'], '0');
    assert.equal(res.json.ref, ref);
    assert.equal(res.json.offset, 0);
    assert.equal(res.json.total, 256);
    assert.equal(res.json.expected, d);
    assertWithin(res.json.startedAt, tOpen0, tOpen1, 'startedAt');
    const startedAt = res.json.startedAt as string;

    let offset = 0;
    for (const n of [64, 128, 64]) {
      const t0 = Date.now();
      res = await api.patch(ref, offset, data.subarray(offset, offset + n));
      const t1 = Date.now();
      offset += n;
      assert.equal(res.status, 200, `piece ending at ${offset}: ${describeRes(res)}`);
      assert.equal(res.headers['upload-offset'], String(offset), 'Upload-Offset response header');
      assert.deepEqual(
        { ref: res.json.ref, offset: res.json.offset, total: res.json.total, expected: res.json.expected },
        { ref, offset, total: 256, expected: d },
        'PATCH response status',
      );
      assertWithin(res.json.updatedAt, t0, t1, `updatedAt after piece ending at ${offset}`);
      const st = await api.status(ref);
      assert.equal(st.status, 200, describeRes(st));
      assert.deepEqual(
        { ref: st.json.ref, offset: st.json.offset, total: st.json.total, expected: st.json.expected },
        { ref, offset, total: 256, expected: d },
        'GET status',
      );
      assert.equal(st.json.startedAt, startedAt, 'startedAt does not move');
      assertWithin(st.json.updatedAt, t0, Date.now(), `GET status updatedAt after piece ending at ${offset}`);
      // The data file holds exactly the prefix written so far.
      assert.deepEqual(await readFile(join(await api.ingestDir(ref), 'data')), data.subarray(0, offset), 'ingest data on disk');
    }

    const ingest = await api.ingestDir(ref); // the bref is gone with the ingest record after commit
    const labels = { 'containerd.io/gc.root': new Date().toISOString() };
    const c0 = Date.now();
    res = await api.commit(ref, { size: 256, digest: d, labels });
    const c1 = Date.now();
    assert.equal(res.status, 201, `commit: ${describeRes(res)}`);
    assert.equal(res.json.digest, d);
    assert.equal(res.json.size, 256);
    assert.deepEqual(res.json.labels, labels);
    assertWithin(res.json.createdAt, c0, c1, 'createdAt');
    assertWithin(res.json.updatedAt, c0, c1, 'updatedAt');
    assertError(await api.status(ref), 404, 'not_found', ref, 'status after commit');
    assert.ok(!existsSync(ingest), 'ingest folder removed by commit');
    const got = await api.get(d);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, data);
  });

  test('Resume: PATCH half, status shows the offset, PATCH the rest at it, commit', T, async () => {
    const ref = 'cb-resume';
    const data = content(256);
    const d = sha256(data);
    let res = await api.patch(ref, 0, data.subarray(0, 128), { 'upload-length': 256 });
    assert.equal(res.status, 200, describeRes(res));
    const st = await api.status(ref);
    assert.equal(st.status, 200);
    assert.equal(st.json.offset, 128);
    assert.equal(st.json.total, 256);
    // The second half at the wrong offset is refused, and nothing moves.
    res = await api.patch(ref, 0, data.subarray(128));
    assertError(res, 416, 'range_not_satisfiable', ref, 'second half at offset 0');
    assert.equal(res.headers['upload-offset'], '128');
    res = await api.patch(ref, st.json.offset, data.subarray(st.json.offset));
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.json.offset, 256);
    const labels = { k: 'v', 'containerd.io/gc.root': 'now' };
    res = await api.commit(ref, { labels });
    assert.equal(res.status, 201, describeRes(res));
    assert.equal(res.json.digest, d);
    assert.equal(res.json.size, 256);
    assert.deepEqual(res.json.labels, labels);
    const info = await api.info(d);
    assert.equal(info.status, 200);
    assert.deepEqual([info.json.digest, info.json.size, info.json.labels], [d, 256, labels]);
    assert.deepEqual((await api.get(d)).body, data);
  });

  test('CommitExists: committing content that exists is 409 and the ingest is gone', T, async () => {
    const data = content(256);
    const d = sha256(data);
    const put = await api.put(d, data);
    assert.equal(put.status, 201, describeRes(put));
    for (const [i, digest] of [d, undefined].entries()) {
      const ref = `c1-commitexists-${i}`;
      const res = await api.patch(ref, 0, data);
      assert.equal(res.status, 200, describeRes(res));
      const ingest = await api.ingestDir(ref);
      assert.ok(existsSync(ingest), `ingest folder of ${ref} exists before the commit`);
      const c = await api.commit(ref, { size: data.length, digest });
      assertError(c, 409, 'already_exists', d, `commit ${ref} (digest ${digest ?? 'none'})`);
      assertError(await api.status(ref), 404, 'not_found', ref, `status of ${ref} after 409`);
      assert.ok(!existsSync(ingest), `ingest folder of ${ref} removed`);
      assert.ok(!(await api.ingestRefs()).includes(ref), `${ref} not listed`);
    }
    // The existing blob is untouched.
    assert.deepEqual((await api.get(d)).body, data);
  });

  test('CommitErrorState: wrong digest / wrong size → 412, ingest kept; right commit → 201', T, async () => {
    const c1 = content(256);
    const d1 = sha256(c1);
    assert.equal((await api.put(d1, c1)).status, 201);
    const ref = 'c1-commiterror-state';

    // a. write c1, commit with its digest → 409; b. again, without digest → 409. Both remove the ingest.
    for (const digest of [d1, undefined]) {
      const w = await api.patch(ref, 0, c1);
      assert.equal(w.status, 200, `write c1 (commit digest ${digest ?? 'none'}): ${describeRes(w)}`);
      assertError(await api.commit(ref, { size: c1.length, digest }), 409, 'already_exists', d1, 'commit of existing c1');
      assert.equal((await api.status(ref)).status, 404, 'ingest removed after 409');
    }

    // c. write c1+"more", commit with a wrong digest → 412, kept.
    const c2 = Buffer.concat([c1, Buffer.from('more')]);
    const d2 = sha256(c2);
    const wrong = sha256('something else');
    assert.equal((await api.patch(ref, 0, c2)).status, 200);
    let res = await api.commit(ref, { size: c2.length, digest: wrong });
    assertError(res, 412, 'failed_precondition', [wrong], 'commit with a wrong digest');
    let st = await api.status(ref);
    assert.equal(st.status, 200, `ingest kept after a wrong digest: ${describeRes(st)}`);
    assert.equal(st.json.offset, c2.length);
    assert.ok((await api.ingestRefs()).includes(ref), 'listed after a wrong digest');

    // d. wrong size → 412, kept.
    res = await api.commit(ref, { size: c1.length });
    assertError(res, 412, 'failed_precondition', [String(c1.length), String(c2.length)], 'commit with a wrong size');
    st = await api.status(ref);
    assert.equal(st.status, 200, `ingest kept after a wrong size: ${describeRes(st)}`);
    assert.equal(st.json.offset, c2.length);
    assert.deepEqual(await readFile(join(await api.ingestDir(ref), 'data')), c2, 'data intact');
    assert.equal((await api.info(d2)).status, 404, 'nothing committed yet');

    // e. the right commit succeeds with the resumed data.
    res = await api.commit(ref, { size: c2.length });
    assert.equal(res.status, 201, describeRes(res));
    assert.equal(res.json.digest, d2);
    assert.equal(res.json.size, c2.length);
    assert.equal((await api.status(ref)).status, 404);

    // f. the same ref again, fresh: c1 with its digest → 409.
    assert.equal((await api.patch(ref, 0, c1)).status, 200);
    assertError(await api.commit(ref, { size: c1.length, digest: d1 }), 409, 'already_exists', d1, 'f: commit c1');
  });

  test('lock: while a PATCH streams, a second PATCH, a commit and a DELETE of the ref get 423', T, async () => {
    const ref = 'locked-ref';
    const data = content(2 * MiB);
    const d = sha256(data);
    const first = Math.floor(1.5 * MiB);
    const slow = slowPatch(api.url, ref, data.length, data.subarray(0, first));
    try {
      // The server writes in ~1 MiB batches: once the data file has grown, the request is streaming.
      const offset = await until('the streaming PATCH to reach the disk', async () => {
        const st = await api.status(ref);
        return st.status === 200 && st.json.offset >= MiB ? (st.json.offset as number) : undefined;
      });
      const second = await api.patch(ref, offset, Buffer.from('x'));
      assertError(second, 423, 'unavailable', ref, 'second PATCH while streaming');
      assertError(await api.commit(ref, {}), 423, 'unavailable', ref, 'commit while streaming');
      assertError(await api.abort(ref), 423, 'unavailable', ref, 'DELETE while streaming');
      assert.ok(existsSync(join(await api.ingestDir(ref), 'data')), 'the refused DELETE removed nothing');
      slow.finish(data.subarray(first));
      const res = await slow.response;
      assert.equal(res.status, 200, `the streaming PATCH completes: ${describeRes(res)}`);
      assert.equal(res.json.offset, data.length);
    } catch (err) {
      slow.destroy(); // a failed test must not leave a request open (the server would not close)
      throw err;
    }
    const c = await api.commit(ref, { size: data.length, digest: d });
    assert.equal(c.status, 201, describeRes(c));
  });

  test('labels: commit with labels, replace, fieldpaths (case 11), list by label filter', T, async () => {
    const ref = 'c1-checklabels';
    const data = content(256);
    const d = sha256(data);
    const root = new Date().toISOString();
    const labels = { k1: 'v1', k2: 'v2', 'containerd.io/gc.root': root };
    assert.equal((await api.patch(ref, 0, data)).status, 200);
    let res = await api.commit(ref, { size: 256, digest: d, labels });
    assert.equal(res.status, 201, describeRes(res));
    assert.deepEqual(res.json.labels, labels);
    const createdAt = res.json.createdAt as string;
    assert.deepEqual((await api.info(d)).json.labels, labels);

    // Replace (no fieldpaths).
    const replaced = { k1: 'newvalue', k3: 'v3', 'containerd.io/gc.root': root };
    let u0 = Date.now();
    res = await api.updateLabels(d, { labels: replaced });
    let u1 = Date.now();
    assert.equal(res.status, 200, describeRes(res));
    assert.deepEqual(res.json.labels, replaced);
    assertWithin(res.json.updatedAt, u0, u1, 'updatedAt after replace');
    assert.equal(res.json.createdAt, createdAt, 'createdAt unchanged by replace');
    let info = await api.info(d);
    assert.deepEqual(info.json.labels, replaced, 'GET info after replace');
    assert.equal(info.json.createdAt, createdAt);
    assertWithin(info.json.updatedAt, u0, u1, 'GET info updatedAt after replace');

    // Fieldpaths: k3 is absent from the map → removed; k1 set; gc.root untouched.
    u0 = Date.now();
    res = await api.updateLabels(d, {
      labels: { k1: 'v1', 'containerd.io/gc.root': root },
      fieldpaths: ['labels.k3', 'labels.k1'],
    });
    u1 = Date.now();
    assert.equal(res.status, 200, describeRes(res));
    const expected = { k1: 'v1', 'containerd.io/gc.root': root };
    assert.deepEqual(res.json.labels, expected);
    assertWithin(res.json.updatedAt, u0, u1, 'updatedAt after fieldpath update');
    info = await api.info(d);
    assert.deepEqual(info.json.labels, expected, 'GET info after fieldpath update');
    assert.equal(info.json.createdAt, createdAt);

    // A fieldpath for a key the map does not carry, with another key in the map: only the path counts.
    res = await api.updateLabels(d, { labels: { k9: 'ignored' }, fieldpaths: ['labels.k2'] });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json.labels, expected, 'labels.k2 absent → stays absent; k9 not in fieldpaths → not set');

    // Another blob with k1 set differently, to show the filter selects.
    const other = content(100);
    const od = sha256(other);
    assert.equal((await api.put(od, other, { 'berth-labels': JSON.stringify({ k1: 'other' }) })).status, 201);
    const list = await api.req('GET', `/v1/content?filter=${seg('labels.k1==v1')}`);
    assert.equal(list.status, 200, describeRes(list));
    const digests = (list.json.items as Array<{ digest: string }>).map((i) => i.digest);
    assert.ok(digests.includes(d), 'labels.k1==v1 lists the blob');
    assert.ok(!digests.includes(od), 'labels.k1==v1 does not list the blob with k1=other');
    for (const item of list.json.items) assert.equal(item.labels.k1, 'v1', `${item.digest} matches`);
    // Quoted label key, and OR across filter parameters.
    const both = await api.req(
      'GET',
      `/v1/content?filter=${seg('labels."containerd.io/gc.root"')}&filter=${seg(`digest==${od}`)}`,
    );
    assert.equal(both.status, 200, describeRes(both));
    const bothDigests = (both.json.items as Array<{ digest: string }>).map((i) => i.digest);
    assert.ok(bothDigests.includes(d) && bothDigests.includes(od), `OR of two filters: ${bothDigests}`);
  });

  describe('reads', () => {
    const data = content(1000);
    const d = sha256(data);
    const etag = `"${d}"`;
    before(async () => {
      assert.equal((await api.put(d, data)).status, 201);
    });

    test('GET: 200 with the bytes, Content-Length, ETag = quoted digest', T, async () => {
      const whole = await api.get(d);
      assert.equal(whole.status, 200);
      assert.deepEqual(whole.body, data);
      assert.equal(whole.headers.etag, etag);
      assert.equal(whole.headers['content-length'], '1000');
      assert.equal(whole.headers['docker-content-digest'], d);
    });

    test('Range: 206 slices (first-last, first-, -suffix)', T, async () => {
      const cases: Array<[string, number, number]> = [
        ['bytes=0-99', 0, 99],
        ['bytes=100-199', 100, 199],
        ['bytes=900-', 900, 999],
        ['bytes=0-', 0, 999],
        ['bytes=999-', 999, 999],
        ['bytes=-100', 900, 999],
        ['bytes=990-5000', 990, 999],
        ['bytes=-5000', 0, 999],
        ['bytes=999-999', 999, 999],
      ];
      for (const [range, first, last] of cases) {
        const res = await api.get(d, { range });
        assert.equal(res.status, 206, `${range}: ${describeRes(res)}`);
        assert.equal(res.headers['content-range'], `bytes ${first}-${last}/1000`, range);
        assert.equal(res.headers['content-length'], String(last - first + 1), range);
        assert.deepEqual(res.body, data.subarray(first, last + 1), range);
      }
      // A syntactically invalid range is ignored (RFC 9110): the whole blob.
      const ignored = await api.get(d, { range: 'bytes=500-100' });
      assert.equal(ignored.status, 200);
      assert.deepEqual(ignored.body, data);
    });

    test('Range: unsatisfiable → 416 with Content-Range: bytes */size', T, async () => {
      const problems: string[] = [];
      for (const range of ['bytes=5000-6000', 'bytes=1000-1001', 'bytes=-0', 'bytes=1000-', 'bytes=5000-']) {
        const res = await api.get(d, { range });
        try {
          assertError(res, 416, 'range_not_satisfiable', d, range);
          assert.equal(res.headers['content-range'], 'bytes */1000', `${range}: Content-Range`);
        } catch (err) {
          problems.push((err as Error).message.split('\n')[0]);
        }
      }
      assert.deepEqual(problems, [], 'every unsatisfiable range answers 416');
    });

    test('HEAD: Content-Length and ETag, no body; 404 for a missing blob', T, async () => {
      const head = await api.req('HEAD', `/v1/content/${seg(d)}`);
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], '1000');
      assert.equal(head.headers.etag, etag);
      assert.equal(head.body.length, 0);
      const headMissing = await api.req('HEAD', `/v1/content/${seg(sha256('missing blob'))}`);
      assert.equal(headMissing.status, 404);
    });

    test('If-None-Match: the ETag → 304, another → 200, a missing blob → 404', T, async () => {
      const notModified = await api.get(d, { 'if-none-match': etag });
      assert.equal(notModified.status, 304);
      assert.equal(notModified.body.length, 0);
      assert.equal(notModified.headers.etag, etag);
      const listed = await api.get(d, { 'if-none-match': `"${sha256('x')}", ${etag}` });
      assert.equal(listed.status, 304, 'a list containing the ETag');
      const modified = await api.get(d, { 'if-none-match': `"${sha256('other')}"` });
      assert.equal(modified.status, 200);
      assert.deepEqual(modified.body, data);
      const gone = sha256('never stored');
      assertError(await api.get(gone, { 'if-none-match': `"${gone}"` }), 404, 'not_found', gone, 'If-None-Match of a missing blob');
    });
  });
});

// ---------------------------------------------------------------------------------------------
// PUT /v1/content/{digest}
// ---------------------------------------------------------------------------------------------

describe('PUT /v1/content/{digest}', () => {
  let api: Api;
  before(async () => {
    api = await newApi();
  });
  after(async () => {
    await api.server.destroy();
  });

  test('201 with Info and labels; the blob reads back', T, async () => {
    const data = content(5000);
    const d = sha256(data);
    const labels = { a: '1', 'containerd.io/gc.root': 'x' };
    const res = await api.put(d, data, { 'berth-labels': JSON.stringify(labels) });
    assert.equal(res.status, 201, describeRes(res));
    assert.deepEqual([res.json.digest, res.json.size, res.json.labels], [d, 5000, labels]);
    assert.deepEqual((await api.get(d)).body, data);
    assert.deepEqual(await readFile(api.blobFile(d)), data, 'blob at blobs/sha256/<hex>');
    assert.equal((await stat(api.blobFile(d))).mode & 0o333, 0, 'committed blob has no write/exec bits');
    assert.deepEqual(await api.ingestRefs(), [], 'no ingest left');
    assert.deepEqual(await api.ingestFolders(), [], 'no ingest folder left');
  });

  test('409 when the blob exists, answered before the body is read', T, async () => {
    const data = content(300);
    const d = sha256(data);
    assert.equal((await api.put(d, data)).status, 201);
    // Announce 10 MiB and send none of it: the answer must come anyway.
    const u = new URL(api.url);
    const res = await new Promise<Res>((resolveP, reject) => {
      const req = http.request({
        host: u.hostname,
        port: Number(u.port),
        method: 'PUT',
        path: `/v1/content/${seg(d)}`,
        agent: false,
        headers: { 'content-type': 'application/octet-stream', 'content-length': 10 * MiB },
      });
      const timer = setTimeout(() => {
        req.destroy();
        reject(new Error('no answer to a PUT of existing content before its body was sent'));
      }, 5000);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.on('response', (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => {
          clearTimeout(timer);
          const body = Buffer.concat(chunks);
          req.destroy();
          let json: unknown;
          try {
            json = JSON.parse(body.toString());
          } catch {
            json = undefined;
          }
          resolveP({ status: r.statusCode ?? 0, headers: r.headers, body, json });
        });
      });
      req.flushHeaders();
    });
    assertError(res, 409, 'already_exists', d, 'PUT of existing content');
    assert.deepEqual((await api.get(d)).body, data, 'existing blob intact');
    // The refused upload's ingest is removed once the server has finished with its request.
    await until('the refused PUT\'s ingest to be removed', async () =>
      (await api.ingestRefs()).length === 0 && (await api.ingestFolders()).length === 0 ? true : undefined,
    );
  });

  test('412 when the bytes do not match the digest; nothing left behind', T, async () => {
    const data = content(4096);
    const claimed = sha256(content(4096));
    const res = await api.put(claimed, data, { 'berth-labels': JSON.stringify({ a: 'b' }) });
    assertError(res, 412, 'failed_precondition', claimed, 'PUT with wrong bytes');
    assert.equal((await api.info(claimed)).status, 404, 'no blob under the claimed digest');
    assert.equal((await api.info(sha256(data))).status, 404, 'no blob under the actual digest');
    assert.ok(!existsSync(api.blobFile(claimed)));
    assert.ok(!existsSync(api.blobFile(sha256(data))));
    assert.deepEqual(await api.ingestRefs(), [], 'no ingest listed');
    assert.deepEqual(await api.ingestFolders(), [], 'no stray folder under ingest/');
    // A correct PUT of the same digest afterwards works.
    const real = content(10);
    const ok = await api.put(sha256(real), real);
    assert.equal(ok.status, 201);
  });

  test('a PUT cut mid-body leaves nothing behind', T, async () => {
    const data = content(512 * KiB);
    const d = sha256(data);
    const u = new URL(api.url);
    const req = http.request({
      host: u.hostname,
      port: Number(u.port),
      method: 'PUT',
      path: `/v1/content/${seg(d)}`,
      agent: false,
      headers: { 'content-type': 'application/octet-stream', 'content-length': data.length },
    });
    req.on('error', () => {});
    await new Promise<void>((r) => req.write(data.subarray(0, 200 * KiB), () => r()));
    await sleep(100);
    req.destroy();
    await until('the cut PUT to be cleaned up', async () =>
      (await api.ingestFolders()).length === 0 && (await api.ingestRefs()).length === 0 ? true : undefined,
    );
    assert.equal((await api.info(d)).status, 404);
  });
});

// ---------------------------------------------------------------------------------------------
// Restart
// ---------------------------------------------------------------------------------------------

describe('restart', () => {
  let api: Api;
  before(async () => {
    api = await newApi();
  });
  after(async () => {
    await api.server.destroy();
  });

  test('a half-written ingest survives a restart and resumes at its offset; labels persist', T, async () => {
    const ref = 'registry.example/layer:sha256-half';
    const data = content(300 * KiB);
    const d = sha256(data);
    const half = 123_457;
    let res = await api.patch(ref, 0, data.subarray(0, half), { 'upload-length': data.length, 'upload-digest': d });
    assert.equal(res.status, 200, describeRes(res));
    const beforeRestart = (await api.status(ref)).json;

    const kept = content(1000);
    const kd = sha256(kept);
    const labels = { 'containerd.io/gc.root': 'yes', team: 'storage' };
    assert.equal((await api.put(kd, kept, { 'berth-labels': JSON.stringify(labels) })).status, 201);
    const other = content(10);
    assert.equal((await api.put(sha256(other), other)).status, 201);

    api.server = await api.server.restart();

    const st = await api.status(ref);
    assert.equal(st.status, 200, `status after restart: ${describeRes(st)}`);
    assert.equal(st.json.offset, half);
    assert.equal(st.json.total, data.length);
    assert.equal(st.json.startedAt, beforeRestart.startedAt, 'startedAt kept');
    assert.equal(st.json.expected, d, 'expected digest kept');
    res = await api.patch(ref, 0, data);
    assertError(res, 416, 'range_not_satisfiable', ref, 'PATCH at 0 after restart');
    assert.equal(res.headers['upload-offset'], String(half));
    res = await api.patch(ref, st.json.offset, data.subarray(st.json.offset));
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.json.offset, data.length);
    res = await api.commit(ref, { size: data.length, digest: d });
    assert.equal(res.status, 201, describeRes(res));
    assert.equal(res.json.digest, d);
    assert.deepEqual((await api.get(d)).body, data);

    const info = await api.info(kd);
    assert.equal(info.status, 200);
    assert.deepEqual(info.json.labels, labels, 'labels survive the restart');
    const list = await api.req('GET', `/v1/content?filter=${seg('labels.team==storage')}`);
    assert.deepEqual(
      (list.json.items as Array<{ digest: string }>).map((i) => i.digest),
      [kd],
      'label filter after restart',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

describe('bad input: a clear 4xx, never a 500, nothing lost', () => {
  let api: Api;
  const keep = content(777);
  const keepDigest = sha256(keep);
  const keepLabels = { keep: 'me' };
  const keepRef = 'keep/this:ingest';
  const keepPart = content(1000);

  before(async () => {
    api = await newApi();
    assert.equal((await api.put(keepDigest, keep, { 'berth-labels': JSON.stringify(keepLabels) })).status, 201);
    assert.equal((await api.patch(keepRef, 0, keepPart, { 'upload-length': 5000 })).status, 200);
  });
  after(async () => {
    await api.server.destroy();
  });

  const badDigests = [
    ['sha256:zz', 'invalid'],
    [`sha256:${'A'.repeat(64)}`, 'uppercase hex'],
    [`sha256:${'a'.repeat(63)}`, '63 hex chars'],
    [`md5:${'0'.repeat(32)}`, 'unknown algorithm'],
    ['sha256', 'no colon'],
  ] as const;

  test('invalid digests → 400 invalid_argument naming the digest, on every content route', T, async () => {
    for (const [bad, why] of badDigests) {
      const p = `/v1/content/${seg(bad)}`;
      assertError(await api.req('GET', `${p}/info`), 400, 'invalid_argument', bad, `GET info ${why}`);
      assertError(await api.req('GET', p), 400, 'invalid_argument', bad, `GET ${why}`);
      assertError(await api.req('GET', p, { headers: { 'if-none-match': `"${bad}"` } }), 400, 'invalid_argument', bad, `GET If-None-Match ${why}`);
      const head = await api.req('HEAD', p);
      assert.equal(head.status, 400, `HEAD ${why}: ${head.status}`);
      assertError(
        await api.req('PUT', p, { headers: { 'content-type': 'application/octet-stream' }, body: Buffer.from('x') }),
        400,
        'invalid_argument',
        bad,
        `PUT ${why}`,
      );
      assertError(await api.updateLabels(bad, { labels: { a: 'b' } }), 400, 'invalid_argument', bad, `PATCH labels ${why}`);
      assertError(await api.req('DELETE', p), 400, 'invalid_argument', bad, `DELETE ${why}`);
      assertError(await api.patch('bad-digest-ref', 0, Buffer.from('x'), { 'upload-digest': bad }), 400, 'invalid_argument', bad, `Upload-Digest ${why}`);
      assertError(await api.commit(keepRef, { digest: bad }), 400, 'invalid_argument', bad, `commit digest ${why}`);
    }
    assert.equal((await api.status('bad-digest-ref')).status, 404, 'a refused Upload-Digest creates no ingest');
    assert.deepEqual(await api.ingestFolders(), [ingestFolderName(await api.backendRef(keepRef))]);
  });

  test('odd refs (/ encoded, .., ../../etc) work and create nothing outside their ingest folder', T, async () => {
    const dir = api.server.dir;
    const skip = (rel: string) => rel.includes('io.berth.metadata.v1');
    for (const ref of ['a/b/c', 'docker.io/library/alpine:latest', '..', '../../etc', '../../../tmp/x', '.', '%2e%2e']) {
      const beforeTree = await tree(dir, skip);
      const data = content(100);
      let res = await api.patch(ref, 0, data);
      assert.equal(res.status, 200, `PATCH ref ${JSON.stringify(ref)}: ${describeRes(res)}`);
      assert.equal(res.json.ref, ref);
      const bref = await api.backendRef(ref);
      assert.match(bref, /^default\/\d+\//, `backend ref ${JSON.stringify(bref)} is <namespace>/<seq>/<ref>`);
      assert.equal(bref.replace(/^default\/\d+\//, ''), ref, `backend ref ${JSON.stringify(bref)} ends in the ref`);
      const ingest = await api.ingestDir(ref);
      const created = (await tree(dir, skip)).filter((p) => !beforeTree.includes(p));
      const allowed = relative(dir, ingest);
      assert.ok(created.length > 0, 'something was created');
      for (const p of created) {
        assert.ok(p === allowed || p.startsWith(allowed + '/'), `ref ${JSON.stringify(ref)} created ${p} outside ${allowed}`);
      }
      assert.equal(await readFile(join(ingest, 'ref'), 'utf8'), bref, 'ref file holds the backend ref');
      const st = await api.status(ref);
      assert.equal(st.status, 200);
      assert.equal(st.json.ref, ref);
      assert.ok((await api.ingestRefs()).includes(ref), `${ref} listed`);
      const filtered = await api.req('GET', `/v1/ingests?filter=${seg(`ref==${JSON.stringify(ref)}`)}`);
      assert.deepEqual(filtered.json.items.map((s: { ref: string }) => s.ref), [ref], `filter ref==${ref}`);
      res = await api.commit(ref, { size: 100, digest: sha256(data) });
      assert.equal(res.status, 201, `commit ${JSON.stringify(ref)}: ${describeRes(res)}`);
      assert.ok(!existsSync(ingest));
    }
    for (const p of ['etc', '../etc', '../../etc', 'tmp']) {
      assert.ok(!existsSync(resolve(api.contentRoot, 'ingest', p)), `nothing at ingest/${p}`);
      assert.ok(!existsSync(resolve(api.contentRoot, p)), `nothing at content root/${p}`);
    }
  });

  test('a ref with a NUL byte → 400 on every ingest route, nothing created', T, async () => {
    const path = '/v1/ingests/bad%00ref';
    const foldersBefore = await api.ingestFolders();
    const results: Array<[string, Res]> = [
      [
        'PATCH',
        await api.req('PATCH', path, {
          headers: { 'content-type': 'application/offset+octet-stream', 'upload-offset': 0 },
          body: Buffer.from('x'),
        }),
      ],
      ['GET', await api.req('GET', path)],
      ['POST commit', await api.req('POST', `${path}/commit`, { json: {} })],
      ['DELETE', await api.req('DELETE', path)],
    ];
    const problems: string[] = [];
    for (const [what, res] of results) {
      try {
        assertError(res, 400, 'invalid_argument', 'bad\\u0000ref', `${what} of a NUL ref`);
      } catch (err) {
        problems.push((err as Error).message.split('\n')[0]);
      }
    }
    assert.deepEqual(problems, [], 'every route refuses a NUL ref with 400');
    assert.deepEqual(await api.ingestFolders(), foldersBefore);
  });

  test('Upload-Offset: wrong → 416 with the current offset; missing or negative → 400', T, async () => {
    for (const wrong of [0, 999, 5000]) {
      const res = await api.patch(keepRef, wrong, Buffer.from('zzz'));
      assertError(res, 416, 'range_not_satisfiable', [keepRef, String(wrong)], `Upload-Offset ${wrong}`);
      assert.equal(res.headers['upload-offset'], String(keepPart.length), 'current offset in Upload-Offset');
    }
    // A new ingest is at 0.
    const res = await api.patch('fresh-ingest', 10, Buffer.from('zzz'));
    assertError(res, 416, 'range_not_satisfiable', 'fresh-ingest', 'new ingest at 10');
    assert.equal(res.headers['upload-offset'], '0');
    assert.equal((await api.status('fresh-ingest')).status, 404, 'a refused PATCH creates no ingest');

    assertError(await api.patch(keepRef, undefined, Buffer.from('zzz')), 400, 'invalid_argument', 'upload-offset', 'missing Upload-Offset');
    assertError(await api.patch('no-offset', undefined, Buffer.from('zzz')), 400, 'invalid_argument', 'upload-offset', 'missing Upload-Offset (new)');
    assert.equal((await api.status('no-offset')).status, 404);
    for (const v of ['-1', 'abc', '1.5']) {
      const r = await api.req('PATCH', `/v1/ingests/${seg(keepRef)}`, {
        headers: { 'content-type': 'application/offset+octet-stream', 'upload-offset': v },
        body: Buffer.from('zzz'),
      });
      assertError(r, 400, 'invalid_argument', 'upload-offset', `Upload-Offset ${v}`);
    }
  });

  test('Upload-Length disagreeing with the total → 412; Upload-Digest of existing content → 409', T, async () => {
    let res = await api.patch(keepRef, keepPart.length, Buffer.from('zzz'), { 'upload-length': 4000 });
    assertError(res, 412, 'failed_precondition', [keepRef, '5000', '4000'], 'Upload-Length 4000 vs 5000');
    res = await api.patch('exists-ref', 0, keep, { 'upload-digest': keepDigest });
    assertError(res, 409, 'already_exists', keepDigest, 'Upload-Digest of existing content');
    assert.equal((await api.status('exists-ref')).status, 404, 'no ingest created for existing content');
  });

  test('malformed filters → 400 naming the filter error', T, async () => {
    for (const f of ['labels.', 'labels.a==', 'labels.key==/value', ',']) {
      for (const p of ['/v1/content', '/v1/ingests']) {
        const res = await api.req('GET', `${p}?filter=${seg(f)}`);
        assertError(res, 400, 'invalid_argument', 'filters', `${p} filter ${f}`);
      }
    }
  });

  test('PATCH labels: bad fieldpath → 400 naming it and the digest; unknown digest → 404; bad body → 400', T, async () => {
    for (const fp of ['size', 'labels.', 'annotations.x', 'digest']) {
      const res = await api.updateLabels(keepDigest, { labels: { keep: 'changed' }, fieldpaths: [fp] });
      assertError(res, 400, 'invalid_argument', [fp, keepDigest], `fieldpath ${fp}`);
    }
    const missing = sha256('not here');
    assertError(await api.updateLabels(missing, { labels: { a: 'b' } }), 404, 'not_found', missing, 'labels of a missing blob');
    const noLabels = await api.req('PATCH', `/v1/content/${seg(keepDigest)}`, { json: { fieldpaths: [] } });
    assertError(noLabels, 400, 'invalid_argument', 'labels', 'no labels property');
    const notArray = await api.req('PATCH', `/v1/content/${seg(keepDigest)}`, { json: { labels: {}, fieldpaths: { a: 1 } } });
    assertError(notArray, 400, 'invalid_argument', 'fieldpaths', 'fieldpaths not an array');
    const notObject = await api.req('PATCH', `/v1/content/${seg(keepDigest)}`, { json: { labels: ['a'] } });
    assertError(notObject, 400, 'invalid_argument', 'labels', 'labels not an object');
    const badJson = await api.req('PATCH', `/v1/content/${seg(keepDigest)}`, {
      headers: { 'content-type': 'application/json' },
      body: '{"labels":',
    });
    assertError(badJson, 400, 'invalid_argument', 'JSON', 'broken JSON');
    const badHeader = await api.put(sha256('x'), Buffer.from('x'), { 'berth-labels': '{nope' });
    assertError(badHeader, 400, 'invalid_argument', 'Berth-Labels', 'PUT with a broken Berth-Labels');
    const arrHeader = await api.put(sha256('x'), Buffer.from('x'), { 'berth-labels': '["a"]' });
    assertError(arrHeader, 400, 'invalid_argument', 'Berth-Labels', 'PUT with Berth-Labels an array');
  });

  test('unknown properties are refused, not dropped (openapi: additionalProperties false)', T, async () => {
    // A typo must not turn a partial label update into a replace, nor skip a digest check.
    const data = content(50);
    const d = sha256(data);
    const labels = { a: '1', b: '2' };
    assert.equal((await api.put(d, data, { 'berth-labels': JSON.stringify(labels) })).status, 201);
    const typo = await api.req('PATCH', `/v1/content/${seg(d)}`, { json: { labels: { a: 'x' }, fieldpath: ['labels.a'] } });
    const labelsAfter = (await api.info(d)).json.labels;

    const ref = 'typo-commit';
    const part = content(64);
    assert.equal((await api.patch(ref, 0, part)).status, 200);
    const wrong = sha256('not the content');
    const commit = await api.commit(ref, { size: 64, digets: wrong } as never);
    const committed = (await api.info(sha256(part))).status === 200;
    if ((await api.status(ref)).status === 200) assert.equal((await api.abort(ref)).status, 204);

    const problems: string[] = [];
    if (typo.status !== 400) {
      problems.push(`PATCH labels {labels, fieldpath (typo)} → ${describeRes(typo)}; labels now ${JSON.stringify(labelsAfter)}`);
    }
    if (commit.status !== 400) {
      problems.push(`commit {size, digets (typo)} → ${describeRes(commit)}; blob committed without a digest check: ${committed}`);
    }
    assert.deepEqual(problems, []);
    assert.deepEqual(labelsAfter, labels, 'labels untouched');
  });

  test('commit/abort/status of an unknown ref → 404 naming it; unknown blob → 404; unknown route → 404 JSON', T, async () => {
    const ref = 'no/such:ref';
    assertError(await api.status(ref), 404, 'not_found', ref, 'status');
    assertError(await api.commit(ref, {}), 404, 'not_found', ref, 'commit');
    assertError(await api.abort(ref), 404, 'not_found', ref, 'abort');
    assert.equal((await api.status(ref)).status, 404, 'commit of an unknown ref creates no ingest');
    const missing = sha256('no such blob');
    assertError(await api.info(missing), 404, 'not_found', missing, 'info');
    assertError(await api.get(missing), 404, 'not_found', missing, 'get');
    assertError(await api.req('DELETE', `/v1/content/${seg(missing)}`), 404, 'not_found', missing, 'delete');
    assertError(await api.req('GET', '/v1/nope'), 404, 'not_found', '/v1/nope', 'unknown route');
    assertError(await api.req('POST', '/v1/content'), 404, 'not_found', '/v1/content', 'unknown method');
  });

  test('bad commit bodies → 400, the ingest kept', T, async () => {
    const ref = 'bad-commit-bodies';
    assert.equal((await api.patch(ref, 0, content(10))).status, 200);
    for (const body of [{ size: -1 }, { size: 'ten' }, { size: 1.5 }, [], { labels: 'x' }]) {
      const res = await api.commit(ref, body as never);
      assertError(res, 400, 'invalid_argument', [], `commit ${JSON.stringify(body)}`);
    }
    const broken = await api.req('POST', `/v1/ingests/${seg(ref)}/commit`, {
      headers: { 'content-type': 'application/json' },
      body: '{',
    });
    assertError(broken, 400, 'invalid_argument', [], 'commit with broken JSON');
    const st = await api.status(ref);
    assert.equal(st.status, 200);
    assert.equal(st.json.offset, 10);
    assert.equal((await api.abort(ref)).status, 204);
  });

  test('URLs the router refuses (bad %-encoding, a ref over the length limit) still answer {"error":{code,message}}', T, async () => {
    const problems: string[] = [];
    const badEncoding = await api.req('GET', '/v1/ingests/%E0%A4%A');
    const longRef = 'r'.repeat(9000);
    const tooLong = await api.patch(longRef, 0, Buffer.from('x'));
    for (const [what, res] of [['bad %-encoding', badEncoding], ['9000-byte ref', tooLong]] as const) {
      try {
        assert.ok(res.status >= 400 && res.status < 500, `${what}: 4xx, got ${res.status}`);
        assert.equal(typeof res.json?.error?.code, 'string', `${what}: error.code`);
        assert.equal(typeof res.json?.error?.message, 'string', `${what}: error.message`);
      } catch (err) {
        problems.push(`${(err as Error).message.split('\n')[0]} — body ${describeRes(res).slice(0, 200)}`);
      }
    }
    // A ref over 4096 bytes but within the router's limit: berth's own 400.
    const long = await api.patch('r'.repeat(5000), 0, Buffer.from('x'));
    assertError(long, 400, 'invalid_argument', 'rrrr', '5000-byte ref');
    assert.deepEqual(problems, []);
  });

  test('nothing lost: the blob, its labels and the ingest are as they were', T, async () => {
    const info = await api.info(keepDigest);
    assert.equal(info.status, 200);
    assert.deepEqual(info.json.labels, keepLabels);
    assert.deepEqual((await api.get(keepDigest)).body, keep);
    const st = await api.status(keepRef);
    assert.equal(st.status, 200);
    assert.equal(st.json.offset, keepPart.length);
    assert.equal(st.json.total, 5000);
    assert.deepEqual(await readFile(join(await api.ingestDir(keepRef), 'data')), keepPart);
    assert.deepEqual(await api.ingestRefs(), [keepRef], 'no other ingest left by refused requests');
    assert.deepEqual(await api.ingestFolders(), [ingestFolderName(await api.backendRef(keepRef))]);
  });
});

// ---------------------------------------------------------------------------------------------
// Disconnects and big uploads
// ---------------------------------------------------------------------------------------------

describe('streams', () => {
  let api: Api;
  before(async () => {
    api = await newApi();
  });
  after(async () => {
    await api.server.destroy();
  });

  test('a client that disconnects mid-upload leaves a resumable ingest at what arrived', T, async () => {
    const ref = 'cut/mid:upload';
    const data = content(MiB);
    const d = sha256(data);
    const sent = 300 * KiB;
    const u = new URL(api.url);
    const sock = net.connect(Number(u.port), u.hostname);
    await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
    sock.on('error', () => {});
    sock.write(
      `PATCH /v1/ingests/${seg(ref)} HTTP/1.1\r\nHost: ${u.host}\r\n` +
        `Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nUpload-Length: ${MiB}\r\n` +
        `Content-Length: ${MiB}\r\n\r\n`,
    );
    await new Promise<void>((r) => sock.write(data.subarray(0, sent), () => r()));
    await sleep(150);
    sock.destroy();

    // Wait until the server has let go of the ref: a PATCH at an impossible offset answers 416
    // with the ingest's offset once no request streams into it (423 while one does).
    await until('the ingest to exist', async () => ((await api.status(ref)).status === 200 ? true : undefined));
    const offset = await until('the cut request to release the ref', async () => {
      const res = await api.patch(ref, 2 ** 40, Buffer.alloc(0));
      if (res.status === 423) return undefined;
      assertError(res, 416, 'range_not_satisfiable', ref, 'probe');
      return Number(res.headers['upload-offset']);
    });
    assert.ok(offset >= 0 && offset <= sent, `offset ${offset} within [0, ${sent}]`);
    const st = await api.status(ref);
    assert.equal(st.json.offset, offset, 'status offset equals the offset in the 416');
    assert.equal(st.json.total, MiB, 'total kept');
    const onDisk = await readFile(join(await api.ingestDir(ref), 'data'));
    assert.equal(onDisk.length, offset, 'offset equals the size of data on disk');
    assert.deepEqual(onDisk, data.subarray(0, offset), 'what is on disk is what was sent');

    const res = await api.patch(ref, offset, data.subarray(offset));
    assert.equal(res.status, 200, describeRes(res));
    assert.equal(res.json.offset, MiB);
    const c = await api.commit(ref, { size: MiB, digest: d });
    assert.equal(c.status, 201, describeRes(c));
    assert.equal(c.json.digest, d);
    assert.deepEqual((await api.get(d)).body, data);
  });

  test('64 MiB in one PATCH, streamed both ways, sha256 compared', { timeout: 60_000 }, async () => {
    const ref = 'big-64';
    const chunk = randomBytes(MiB);
    const count = 64;
    function* gen(): Generator<Buffer> {
      for (let i = 0; i < count; i++) {
        const b = Buffer.from(chunk); // 1 MiB at a time, each different
        b.writeUInt32BE(i, 0);
        yield b;
      }
    }
    const h = createHash('sha256');
    for (const b of gen()) h.update(b);
    const d = `sha256:${h.digest('hex')}`;
    const size = count * MiB;

    const up = await api.req('PATCH', `/v1/ingests/${seg(ref)}`, {
      headers: {
        'content-type': 'application/offset+octet-stream',
        'upload-offset': 0,
        'upload-length': size,
        'upload-digest': d,
        'content-length': size,
      },
      body: Readable.from(gen()),
    });
    assert.equal(up.status, 200, describeRes(up));
    assert.equal(up.json.offset, size);
    const c = await api.commit(ref, { size, digest: d });
    assert.equal(c.status, 201, describeRes(c));
    assert.equal(c.json.size, size);

    const head = await api.req('HEAD', `/v1/content/${seg(d)}`);
    assert.equal(head.headers['content-length'], String(size));
    // Download, hashing as it arrives.
    const u = new URL(api.url);
    const got = await new Promise<{ status: number; digest: string; bytes: number }>((resolveP, reject) => {
      http
        .get({ host: u.hostname, port: Number(u.port), path: `/v1/content/${seg(d)}`, agent: false }, (res) => {
          const hh = createHash('sha256');
          let bytes = 0;
          res.on('data', (b: Buffer) => {
            bytes += b.length;
            hh.update(b);
          });
          res.on('end', () => resolveP({ status: res.statusCode ?? 0, digest: `sha256:${hh.digest('hex')}`, bytes }));
          res.on('error', reject);
        })
        .on('error', reject);
    });
    assert.equal(got.status, 200);
    assert.equal(got.bytes, size);
    assert.equal(got.digest, d);
    const del = await api.req('DELETE', `/v1/content/${seg(d)}`);
    assert.equal(del.status, 204);
  });
});

// ---------------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------------

/** True when a compiled file under dist/ is missing or older than its .ts source. */
async function distIsStale(): Promise<boolean> {
  for (const top of ['src', 'store', 'routes']) {
    const files = await readdir(join(projectRoot, top), { recursive: true });
    for (const f of files) {
      if (!f.endsWith('.ts')) continue;
      const src = join(projectRoot, top, f);
      const out = join(projectRoot, 'dist', top, f.replace(/\.ts$/, '.js'));
      const [s, o] = await Promise.all([stat(src), stat(out).catch(() => undefined)]);
      if (!o || o.mtimeMs < s.mtimeMs) return true;
    }
  }
  return false;
}

interface Run {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], timeout = 15_000): Promise<Run> {
  return new Promise((resolveP) => {
    execFile(
      process.execPath,
      [join(projectRoot, 'bin', 'berth.js'), ...args],
      { cwd: projectRoot, timeout, env: { ...process.env, BERTH_ADDRESS: '' } },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: string }) | null;
        resolveP({
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          signal: e?.signal ?? null,
          stdout: String(stdout),
          stderr: String(stderr),
        });
      },
    );
  });
}

describe('CLI (bin/berth.js) against a running server', () => {
  let api: Api;
  let work: string;
  let address: string;
  const cli = (...args: string[]) => run(['--address', address, ...args]);
  const ok = (r: Run, what: string) => assert.equal(r.code, 0, `${what}: exit ${r.code} ${r.signal ?? ''}\n${r.stderr}`);

  before(async () => {
    // The CLI runs from dist/: compile it first when any source is newer than its output.
    if (await distIsStale()) {
      try {
        execFileSync(process.execPath, [join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], {
          cwd: projectRoot,
          stdio: 'pipe',
        });
      } catch (err) {
        // tsc emits despite type errors; only a missing CLI stops us.
        if (!existsSync(join(projectRoot, 'dist', 'src', 'cli', 'main.js'))) throw err;
        const out = (err as { stdout?: Buffer }).stdout?.toString() ?? '';
        console.error(`tsc reported errors (continuing with what it emitted):\n${out}`);
      }
    }
    api = await newApi();
    address = new URL(api.url).host;
    work = await mkdtemp(join(tmpdir(), 'berth-cli-'));
  });
  after(async () => {
    await api?.server.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  // CLI start-up costs about a second, so independent commands run side by side.
  test('content put / ls / ls --json / info / get -o / label / rm', T, async () => {
    const data = content(200 * KiB);
    const d = sha256(data);
    const file = join(work, 'blob.bin');
    await writeFile(file, data);
    const small = content(1000);
    const sd = sha256(small);
    const smallFile = join(work, 'small.bin');
    await writeFile(smallFile, small);

    // put through an ingest (no digest given), and put --digest (one-shot PUT) with a label.
    const [put, put2] = await Promise.all([
      cli('content', 'put', file),
      cli('content', 'put', smallFile, '--digest', sd, '--label', 'x=y'),
    ]);
    ok(put, 'content put');
    assert.equal(put.stdout.trim(), d, 'put prints the digest');
    const info = await api.info(d);
    assert.equal(info.status, 200, 'the blob is on the server');
    assert.equal(info.json.size, data.length);
    ok(put2, 'content put --digest');
    assert.equal(put2.stdout.trim(), sd);
    assert.deepEqual((await api.info(sd)).json.labels, { x: 'y' });
    assert.deepEqual(await api.ingestRefs(), [], 'put leaves no ingest');

    const out = join(work, 'out.bin');
    const [ls, lsJson, inf, get] = await Promise.all([
      cli('content', 'ls'),
      cli('content', 'ls', '--json'),
      cli('content', 'info', d),
      cli('content', 'get', d, '-o', out),
    ]);
    ok(ls, 'content ls');
    const lines = ls.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^DIGEST\s+SIZE\s+AGE\s+LABELS$/, 'table header');
    const row = lines.find((l) => l.startsWith(d));
    assert.ok(row, `a row for ${d} in:\n${ls.stdout}`);
    assert.match(row!, /200\.0 KiB/, 'size column');
    assert.match(lines.find((l) => l.startsWith(sd)) ?? '', /x=y$/, 'labels column');
    assert.equal(lines.length, 3, 'header and two rows');

    ok(lsJson, 'content ls --json');
    const items = JSON.parse(lsJson.stdout) as Array<{ digest: string; size: number; labels: Record<string, string> }>;
    assert.deepEqual(
      items.map((i) => [i.digest, i.size]).sort(),
      [[d, data.length], [sd, small.length]].sort(),
    );

    ok(inf, 'content info');
    const infJson = JSON.parse(inf.stdout);
    assert.equal(infJson.digest, d);
    assert.equal(infJson.size, data.length);
    assert.deepEqual(infJson.labels, {});

    ok(get, 'content get -o');
    assert.deepEqual(await readFile(out), data, 'bytes equal');

    const label = await cli('content', 'label', d, 'k=v', 'team=storage');
    ok(label, 'content label');
    assert.match(label.stdout, /k=v/);
    assert.deepEqual((await api.info(d)).json.labels, { k: 'v', team: 'storage' });
    const [unlabel, filtered] = await Promise.all([
      cli('content', 'label', d, 'k='),
      cli('content', 'ls', '-q', '--filter', 'labels.team==storage'),
    ]);
    ok(unlabel, 'content label k=');
    assert.deepEqual((await api.info(d)).json.labels, { team: 'storage' }, 'k= removes k, team stays');
    ok(filtered, 'content ls --filter');
    assert.equal(filtered.stdout.trim(), d);

    const rmRes = await cli('content', 'rm', d);
    ok(rmRes, 'content rm');
    assert.equal(rmRes.stdout.trim(), d);
    assert.equal((await api.info(d)).status, 404, 'removed');
    // The record goes at once; the bytes go with the garbage collection the deletion schedules.
    await until('the blob file to be removed by the GC', async () => (existsSync(api.blobFile(d)) ? undefined : true));
    const rmAgain = await cli('content', 'rm', d);
    assert.notEqual(rmAgain.code, 0, 'rm of a missing blob fails');
    assert.ok(rmAgain.stderr.includes(d), `stderr names the digest: ${rmAgain.stderr}`);
  });

  test('content active / abort; plugins ls', T, async () => {
    const ref = 'cli/active:ref';
    assert.equal((await api.patch(ref, 0, content(3000), { 'upload-length': 9000 })).status, 200);
    const ingest = await api.ingestDir(ref);
    assert.ok(existsSync(ingest), 'ingest folder exists before the abort');
    const [active, activeJson, plugins] = await Promise.all([
      cli('content', 'active'),
      cli('content', 'active', '--json'),
      cli('plugins', 'ls'),
    ]);
    ok(active, 'content active');
    const lines = active.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^REF\s+SIZE\s+TOTAL\s+UPDATED$/);
    const row = lines.find((l) => l.startsWith(ref));
    assert.ok(row, `row for ${ref}:\n${active.stdout}`);
    assert.match(row!, /2\.9 KiB\s+8\.8 KiB/);
    ok(activeJson, 'content active --json');
    const items = JSON.parse(activeJson.stdout);
    assert.deepEqual(items.map((s: { ref: string; offset: number; total: number }) => [s.ref, s.offset, s.total]), [[ref, 3000, 9000]]);

    ok(plugins, 'plugins ls');
    const plines = plugins.stdout.trimEnd().split('\n');
    assert.match(plines[0], /^TYPE\s+ID\s+STATUS\s+DETAIL$/);
    assert.ok(plines.some((l) => /^io\.berth\.content\.v1\s+content\s+ok\b/.test(l)), plugins.stdout);
    assert.ok(plines.some((l) => /^io\.berth\.metadata\.v1\s+level\s+ok\b/.test(l)), plugins.stdout);

    const abort = await cli('content', 'abort', ref);
    ok(abort, 'content abort');
    assert.equal(abort.stdout.trim(), ref);
    assert.equal((await api.status(ref)).status, 404, 'aborted');
    assert.ok(!existsSync(ingest), 'ingest folder removed');
    const abortAgain = await cli('content', 'abort', ref);
    assert.notEqual(abortAgain.code, 0);
    assert.ok(abortAgain.stderr.includes(ref), `stderr names the ref: ${abortAgain.stderr}`);
  });

  test('an error exits non-zero and prints the server\'s message on stderr', T, async () => {
    const server = await api.info('sha256:zz');
    assert.equal(server.status, 400);
    const missing = sha256('cli missing');
    const [r, r2, r3] = await Promise.all([
      cli('content', 'info', 'sha256:zz'),
      cli('content', 'get', missing, '-o', join(work, 'never.bin')),
      // An unreachable server is a different exit code, and says where it tried.
      run(['--address', '127.0.0.1:1', 'content', 'ls']),
    ]);
    assert.equal(r.code, 1, `exit code: ${r.code}, stderr ${r.stderr}`);
    assert.ok(
      r.stderr.includes(server.json.error.message),
      `stderr ${JSON.stringify(r.stderr)} carries the server's message ${JSON.stringify(server.json.error.message)}`,
    );
    assert.equal(r.stdout, '');
    assert.notEqual(r2.code, 0);
    assert.ok(r2.stderr.includes(missing), r2.stderr);
    assert.equal(r3.code, 2, r3.stderr);
    assert.match(r3.stderr, /127\.0\.0\.1:1/);
  });

  test('a second serve on the same root exits non-zero naming the holder\'s pid', T, async () => {
    const state = await mkdtemp(join(tmpdir(), 'berth-state-'));
    try {
      const r = await run(
        ['--address', '127.0.0.1:0', 'serve', '--root', api.server.config.root, '--state', state, '--log-level', 'error'],
        15_000,
      );
      assert.equal(r.signal, null, `the second serve must exit on its own, not be killed (stderr: ${r.stderr})`);
      assert.notEqual(r.code, 0, 'non-zero exit');
      assert.ok(r.stderr.includes(`pid ${process.pid}`), `stderr names pid ${process.pid}: ${r.stderr}`);
      assert.ok(r.stderr.includes(api.server.config.root), `stderr names the root: ${r.stderr}`);
    } finally {
      await rm(state, { recursive: true, force: true });
    }
    // The running server still holds its root and answers.
    const lock = JSON.parse(await readFile(join(api.server.config.root, 'berth.lock'), 'utf8'));
    assert.equal(lock.pid, process.pid, 'the lock file still names the running server');
    assert.equal((await api.req('GET', '/healthz')).status, 200);
  });
});
