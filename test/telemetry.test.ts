// Spans through @opentelemetry/api: with a tracer provider registered (as a host process would),
// every request and every store operation shows up, and a failed operation is marked as one.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import {
  InMemorySpanExporter,
  NodeTracerProvider,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-node';
import { backendRef } from './fixtures/ingest.js';
import { startTestServer, type TestServer } from './fixtures/server.js';

// Registered before any server starts.
const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();

const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * The ended spans named `name` that satisfy `match`, waiting for them: a request's span ends in
 * fastify's onResponse hook, which may run just after the client has the answer.
 */
async function spansNamed(
  name: string,
  match: (s: ReadableSpan) => boolean = () => true,
  count = 1,
): Promise<ReadableSpan[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const found = exporter.getFinishedSpans().filter((s) => s.name === name && match(s));
    if (found.length >= count) return found;
    if (Date.now() > deadline) {
      const names = exporter.getFinishedSpans().map((s) => s.name);
      assert.fail(`expected ${count} span(s) ${name}, found ${found.length}; spans recorded: ${names.join(', ')}`);
    }
    await sleep(10);
  }
}

const attr = (ref: string) => (s: ReadableSpan) => s.attributes['berth.ref'] === ref;

describe('telemetry', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  beforeEach(() => exporter.reset());
  after(async () => {
    await server?.destroy();
    await provider.shutdown();
    trace.disable();
  });

  async function patch(ref: string, offset: number, body: Buffer): Promise<Response> {
    return fetch(`${server.url}/v1/ingests/${encodeURIComponent(ref)}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/offset+octet-stream', 'upload-offset': String(offset) },
      body: new Uint8Array(body),
    });
  }

  async function commit(ref: string, body: object): Promise<Response> {
    return fetch(`${server.url}/v1/ingests/${encodeURIComponent(ref)}/commit`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  test('an upload and its commit record request spans and store spans', async () => {
    const ref = 'telemetry/upload:1';
    const data = Buffer.from('bytes traced on their way into the store');
    const first = await patch(ref, 0, data.subarray(0, 10));
    assert.equal(first.status, 200, await first.text());
    // The store (backend) spans name the ingest by its backend ref, `default/<seq>/<ref>`; the
    // service's by the ref the client gave. The bref is known while the ingest exists.
    const bref = await backendRef(server, ref);
    assert.match(bref, /^default\/\d+\//);
    assert.ok(bref.endsWith(`/${ref}`), bref);
    const second = await patch(ref, 10, data.subarray(10));
    assert.equal(second.status, 200, await second.text());
    const done = await commit(ref, { digest: digestOf(data), size: data.length });
    assert.equal(done.status, 201, await done.text());

    // Requests: one span per request, named by method and route (not by the URL with the ref).
    const patches = await spansNamed('HTTP PATCH /v1/ingests/:ref', () => true, 2);
    assert.equal(patches.length, 2);
    for (const s of patches) {
      assert.equal(s.attributes['http.method'], 'PATCH');
      assert.equal(s.attributes['http.route'], '/v1/ingests/:ref');
      assert.equal(s.attributes['http.status_code'], 200);
      assert.notEqual(s.status.code, SpanStatusCode.ERROR);
    }
    const [post] = await spansNamed('HTTP POST /v1/ingests/:ref/commit');
    assert.equal(post.attributes['http.status_code'], 201);
    assert.notEqual(post.status.code, SpanStatusCode.ERROR);

    // Store operations, each naming the ingest: the service's by the client's ref, the backend
    // store's by the bref (and never by the bare ref, which the store does not know).
    const [writer] = await spansNamed('content.writer', attr(bref));
    assert.notEqual(writer.status.code, SpanStatusCode.ERROR);
    await spansNamed('content.append', attr(ref), 2);
    const [committed] = await spansNamed('content.commit', attr(bref));
    assert.notEqual(committed.status.code, SpanStatusCode.ERROR);
    for (const name of ['content.writer', 'content.commit']) {
      const spans = exporter.getFinishedSpans().filter((s) => s.name === name);
      assert.ok(spans.every((s) => s.attributes['berth.ref'] === bref), `${name} spans carry the bref ${bref}`);
    }

    // Every span recorded has ended and has a duration.
    for (const s of exporter.getFinishedSpans()) {
      assert.ok(s.ended, `${s.name} ended`);
      assert.ok(s.duration[0] >= 0 && s.duration[1] >= 0, `${s.name} has a duration`);
    }
    const names = exporter.getFinishedSpans().map((s) => s.name);
    assert.ok(!names.some((n) => n.includes(encodeURIComponent(ref)) || n.includes(ref)), `span names carry the route, not the ref: ${names.join(', ')}`);
  });

  test('a commit with the wrong digest records an error status on its span', async () => {
    const ref = 'telemetry/wrong-digest';
    const data = Buffer.from('these bytes do not hash to what the client claims');
    const wrong = digestOf(Buffer.from('something else'));
    assert.equal((await patch(ref, 0, data)).status, 200);
    const bref = await backendRef(server, ref); // the store's spans name the backend ref
    const res = await commit(ref, { digest: wrong });
    assert.equal(res.status, 412, await res.text());

    const [failed] = await spansNamed('content.commit', attr(bref));
    assert.equal(failed.status.code, SpanStatusCode.ERROR, 'the failed commit is an error');
    assert.match(failed.status.message ?? '', /unexpected commit digest/);
    assert.ok(failed.status.message?.includes(wrong), `the status names the expected digest: ${failed.status.message}`);
    const exception = failed.events.find((e) => e.name === 'exception');
    assert.ok(exception, 'the exception is recorded on the span');
    assert.match(String(exception.attributes?.['exception.message']), /unexpected commit digest/);

    // The request's span carries the status; a 4xx is the client's doing, not a server error.
    const [post] = await spansNamed('HTTP POST /v1/ingests/:ref/commit');
    assert.equal(post.attributes['http.status_code'], 412);
    assert.notEqual(post.status.code, SpanStatusCode.ERROR);

    // The ingest is kept; committing it with the right digest succeeds and is not an error.
    exporter.reset();
    assert.equal(await backendRef(server, ref), bref, 'the kept ingest keeps its backend ref');
    const ok = await commit(ref, { digest: digestOf(data) });
    assert.equal(ok.status, 201, await ok.text());
    const [retried] = await spansNamed('content.commit', attr(bref));
    assert.notEqual(retried.status.code, SpanStatusCode.ERROR);
  });

  test('a one-shot put and a delete record their store spans', async () => {
    const data = Buffer.from('put in one request, then deleted');
    const digest = digestOf(data);
    const put = await fetch(`${server.url}/v1/content/${digest}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array(data),
    });
    assert.equal(put.status, 201, await put.text());
    const [putSpan] = await spansNamed('content.put', (s) => s.attributes['berth.digest'] === digest);
    assert.notEqual(putSpan.status.code, SpanStatusCode.ERROR);
    await spansNamed('HTTP PUT /v1/content/:digest', (s) => s.attributes['http.status_code'] === 201);

    const del = await fetch(`${server.url}/v1/content/${digest}`, { method: 'DELETE' });
    assert.equal(del.status, 204);
    await spansNamed('content.delete', (s) => s.attributes['berth.digest'] === digest);
    await spansNamed('HTTP DELETE /v1/content/:digest', (s) => s.attributes['http.status_code'] === 204);
  });

  test('a put whose bytes do not match records an error on content.put', async () => {
    const digest = digestOf(Buffer.from('claimed'));
    const res = await fetch(`${server.url}/v1/content/${digest}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: 'actual',
    });
    assert.equal(res.status, 412, await res.text());
    const [span] = await spansNamed('content.put', (s) => s.attributes['berth.digest'] === digest);
    assert.equal(span.status.code, SpanStatusCode.ERROR);
  });
});
