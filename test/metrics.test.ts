// GET /metrics (issue 14, "Prometheus metrics"): a real server with its registry listener on pulls
// a real image from a real registry (Debian's docker-registry), serves it through the listener,
// holds a lease and an ingest in progress, and collects a lease's blob; the scrape, parsed as the
// text exposition format, has every berth family non-zero, the process metrics, and HTTP route
// labels that are route patterns, never raw URLs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { buildImage, MANIFEST_ACCEPT, pushImage } from './fixtures/images.js';
import { mirrorPlugins } from './fixtures/registry-listener.js';
import { startRegistry, type Registry } from './fixtures/registry.js';
import { startTestServer, type TestServer } from './fixtures/server.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  types: Map<string, string>;
  samples: Sample[];
}

/** The text exposition format (version 0.0.4): `# TYPE` lines and samples; other comments skipped. */
function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      types.set(type[1], type[2]);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    assert.ok(m, `not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    assert.ok(!Number.isNaN(value) || m[3] === 'NaN', `bad value in ${JSON.stringify(line)}`);
    samples.push({ name: m[1], labels, value });
  }
  return { types, samples };
}

let registry: Registry;
let server: TestServer;
let pullId: string;
let pullBytes: number;

async function api(method: string, path: string, opts: { body?: unknown; raw?: Buffer; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...opts.headers };
  let body: string | Uint8Array<ArrayBuffer> | undefined;
  if (opts.raw) body = new Uint8Array(opts.raw);
  else if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  const res = await fetch(server.url + path, { method, headers, body });
  const text = await res.text();
  return { status: res.status, text, json: /json/.test(res.headers.get('content-type') ?? '') && text ? JSON.parse(text) : undefined, res };
}

before(async () => {
  registry = await startRegistry({ auth: 'none' });
  const image = buildImage({ format: 'oci', layers: [{ 'etc/hello': 'hello from the metrics test\n' }, { 'data.bin': Buffer.alloc(20_000, 7) }] });
  const pushed = await pushImage(registry.url, 'metrics/app', 'v1', image);
  server = await startTestServer({ config: { plugins: mirrorPlugins({ upstream: registry.host }) } });

  // A pull from the real registry.
  const pull = await api('POST', '/v1/pulls?wait=true', { body: { ref: pushed.reference, unpack: false } });
  assert.equal(pull.status, 200, pull.text);
  assert.equal(pull.json.state, 'done', pull.text);
  pullId = pull.json.id;
  pullBytes = pull.json.bytesFetched;
  assert.ok(pullBytes > 0, pull.text);
  assert.equal((await api('GET', `/v1/pulls/${pullId}`)).status, 200);

  // The registry listener serves the pulled image.
  const { address } = (await api('GET', '/v1/registry/stats')).json as { address: string };
  const served = await fetch(`http://${address}/v2/metrics/app/manifests/v1`, { headers: { accept: MANIFEST_ACCEPT } });
  assert.equal(served.status, 200, await served.clone().text());
  await served.arrayBuffer();

  // A lease that stays, an ingest in progress, and a lease's blob for the GC to free.
  assert.equal((await api('POST', '/v1/leases', { body: { id: 'metrics-keep' } })).status, 201);
  const partial = await api('PATCH', `/v1/ingests/${encodeURIComponent('metrics/partial')}`, {
    raw: Buffer.alloc(10, 1),
    headers: { 'content-type': 'application/offset+octet-stream', 'upload-offset': '0', 'upload-length': '100' },
  });
  assert.ok(partial.status < 300, partial.text);
  assert.equal((await api('POST', '/v1/leases', { body: { id: 'metrics-gc' } })).status, 201);
  const blob = Buffer.from(`garbage for the metrics test ${Date.now()}\n`);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const put = await api('PUT', `/v1/content/${digest}`, { raw: blob, headers: { 'content-type': 'application/octet-stream', 'berth-lease': 'metrics-gc' } });
  assert.equal(put.status, 201, put.text);
  assert.equal((await api('DELETE', '/v1/leases/metrics-gc?sync=true')).status, 204);
  const gc = await api('POST', '/v1/gc');
  assert.equal(gc.status, 200, gc.text);
  assert.equal((await api('GET', `/v1/content/${digest}/info`)).status, 404, 'the GC removed the lease\'s blob');
});

after(async () => {
  await server?.destroy();
  await registry?.stop();
});

test('GET /metrics: every berth family is non-zero after a pull and a GC, HTTP routes are patterns', async () => {
  const res = await fetch(`${server.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const { types, samples } = parseExposition(await res.text());
  const of = (name: string, labels: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  const total = (name: string, labels: Record<string, string> = {}) => of(name, labels).reduce((n, s) => n + s.value, 0);

  const expected: Array<[string, string]> = [
    ['berth_pulls_total', 'counter'],
    ['berth_pull_bytes_total', 'counter'],
    ['berth_gc_runs_total', 'counter'],
    ['berth_gc_bytes_freed_total', 'counter'],
    ['berth_gc_duration_seconds', 'histogram'],
    ['berth_content_bytes', 'gauge'],
    ['berth_content_blobs', 'gauge'],
    ['berth_ingests_in_progress', 'gauge'],
    ['berth_leases', 'gauge'],
    ['berth_http_requests_total', 'counter'],
    ['berth_http_request_duration_seconds', 'histogram'],
    ['berth_registry_served_total', 'counter'],
    ['berth_registry_bytes_served_total', 'counter'],
    ['process_cpu_user_seconds_total', 'counter'],
    ['nodejs_heap_size_used_bytes', 'gauge'],
  ];
  for (const [name, type] of expected) {
    assert.equal(types.get(name), type, `# TYPE ${name}`);
    const value = type === 'histogram' ? total(`${name}_count`) : total(name);
    assert.ok(value > 0, `${name} is ${value}`);
  }
  assert.ok(total('berth_pulls_total', { state: 'done' }) >= 1, 'the pull counted as done');
  assert.equal(total('berth_pull_bytes_total', { source: 'upstream' }), pullBytes, 'the pull\'s bytes came from the upstream');
  assert.equal(total('berth_pull_bytes_total', { source: 'peer' }), 0, 'no fleet: nothing from peers');
  assert.ok(total('berth_gc_bytes_freed_total') > 0);
  assert.ok(total('berth_content_blobs') >= 4, 'the image\'s manifest, config and two layers');
  assert.ok(total('berth_ingests_in_progress') >= 1);
  assert.ok(total('berth_leases') >= 1);

  // Route labels are fastify's patterns, never a URL with its values.
  const routes = new Set(of('berth_http_requests_total').map((s) => s.labels.route));
  for (const route of ['/v1/pulls', '/v1/pulls/:id', '/v1/ingests/:ref', '/v1/content/:digest', '/v1/leases/:id', '/v1/gc']) {
    assert.ok(routes.has(route), `route ${route} among ${[...routes].join(', ')}`);
  }
  for (const route of routes) {
    assert.ok(!route.includes(pullId) && !route.includes('sha256:') && !route.includes('metrics-gc') && !route.includes('?'), `raw URL as a route label: ${route}`);
  }
  assert.ok(total('berth_http_requests_total', { route: '/v1/pulls/:id', method: 'GET', status: '200' }) >= 1);
  assert.ok(total('berth_http_request_duration_seconds_count', { route: '/v1/pulls', method: 'POST' }) >= 1);
  assert.ok(total('berth_http_requests_total', { route: '/v1/content/:digest/info', method: 'GET', status: '404' }) >= 1);
});
