// Trace export over OTLP/HTTP: a berth server (a child process, its environment set as an
// operator would) sends its spans to a loopback OTLP receiver. A pull with unpack from the real
// registry is one trace: `pull` at its root, linked to the request that started it, with resolve,
// one fetch per blob, unpack (its layers below it) and commit as its children. Without the
// environment the SDK is never loaded: the server's module cache is asked, and the same question
// with the environment set shows that the answer can be yes. A collector that refuses the spans
// is a warning in the server's log, nothing more.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { startChildServer, type ChildServer } from './fixtures/child-server.js';
import { buildImage, pushImage, type Image } from './fixtures/images.js';
import { startRegistry, type Registry } from './fixtures/registry.js';

/** One POST the receiver took. */
interface Export {
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

// OTLP/JSON, as the http/json exporter writes it (ids in hex).
interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes?: OtlpAttribute[];
  links?: Array<{ traceId: string; spanId: string }>;
}
interface OtlpRequest {
  resourceSpans: Array<{ resource?: { attributes?: OtlpAttribute[] }; scopeSpans: Array<{ spans?: OtlpSpan[] }> }>;
}

/** A span as the test reads it: with its resource's attributes. */
interface ReceivedSpan extends OtlpSpan {
  resource: Record<string, string>;
}

/** A loopback OTLP/HTTP receiver: keeps every POST, answers `status` (200: taken) at once. */
class Receiver {
  readonly exports: Export[] = [];
  private readonly server: Server;
  private readonly waiters: Array<() => void> = [];

  constructor(status = 200) {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.exports.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(status, { 'content-type': req.headers['content-type'] ?? 'application/json' }).end(req.headers['content-type'] === 'application/json' ? '{}' : '');
        for (const w of this.waiters.splice(0)) w();
      });
    });
  }

  async listen(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    const addr = this.server.address();
    assert.ok(addr && typeof addr === 'object');
    return `http://127.0.0.1:${addr.port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Resolves once `ready()` holds, checked at each export received. */
  async until(what: string, ready: () => boolean, child?: ChildServer): Promise<void> {
    const exited = child ? once(child.process, 'exit').then(() => assert.fail(`server exited before ${what}:\n${child.logs()}`)) : undefined;
    // It exits later anyway (stopped by the test): not a failure then.
    exited?.catch(() => {});
    while (!ready()) await Promise.race([new Promise<void>((resolve) => this.waiters.push(resolve)), ...(exited ? [exited] : [])]);
  }

  /** Every span of the JSON exports, with its resource. */
  spans(): ReceivedSpan[] {
    return this.exports
      .filter((e) => e.headers['content-type'] === 'application/json')
      .flatMap((e) => (JSON.parse(e.body.toString('utf8')) as OtlpRequest).resourceSpans)
      .flatMap((rs) => {
        const resource = Object.fromEntries((rs.resource?.attributes ?? []).map((a) => [a.key, String(a.value.stringValue ?? a.value.intValue)]));
        return rs.scopeSpans.flatMap((ss) => (ss.spans ?? []).map((s) => ({ ...s, resource })));
      });
  }
}

const attr = (s: OtlpSpan, key: string): string | undefined => {
  const v = s.attributes?.find((a) => a.key === key)?.value;
  return v === undefined ? undefined : String(v.stringValue ?? v.intValue);
};

/**
 * The child's onReady: pulls `args[0]` (unpacked into native snapshots) when given, then says
 * which OpenTelemetry packages other than the API the process has loaded (they are CommonJS:
 * an import() of them lands in the module cache) and stops gracefully on SIGTERM.
 */
const pullAndReport = `
  let pull;
  if (args[0]) {
    const res = await fetch(server.url + '/v1/pulls?wait=true', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ref: args[0], unpack: true, snapshotter: 'native' }),
    });
    pull = await res.json();
  }
  process.once('SIGTERM', () => void server.close().then(() => process.exit(0)));
  const { createRequire } = await import('node:module');
  const cache = createRequire(process.cwd() + '/').cache;
  const loaded = [...new Set(Object.keys(cache).map((k) => k.match(/node_modules\\/(@opentelemetry\\/[^/]+)\\//)?.[1]).filter((p) => p && p !== '@opentelemetry/api'))];
  return { pull, loaded };
`;

let registry: Registry;
let receiver: Receiver;
let receiverUrl: string;
let image: Image;
const children = new Set<ChildServer>();

before(async () => {
  registry = await startRegistry();
  image = buildImage({ layers: [{ 'etc/': { type: 'dir' }, 'etc/one': 'first layer\n' }, { 'etc/two': 'second layer\n' }] });
  await pushImage(registry, 'otlp/app', 'v1', image);
  receiver = new Receiver();
  receiverUrl = await receiver.listen();
});

after(async () => {
  for (const c of children) await c.destroy();
  await receiver?.close();
  await registry?.stop();
});

/** A child server whose environment has `env` on top of this process's (OTEL_* removed). */
async function serve(name: string, env: Record<string, string>, args: string[] = []): Promise<ChildServer> {
  // The fixture's child inherits process.env as it is when it spawns: set only for that moment.
  const saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith('OTEL_')) delete process.env[k];
  Object.assign(process.env, env);
  try {
    const child = await startChildServer({ name, dirPrefix: 'berth-otlp-', config: { log_level: 'warn' }, onReady: pullAndReport, args });
    children.add(child);
    return child;
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

async function stop(child: ChildServer): Promise<void> {
  const exited = once(child.process, 'exit');
  child.process.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0, `server did not stop cleanly:\n${child.logs()}`);
}

test('a pull with unpack is one trace at the OTLP receiver: pull → resolve, a fetch per blob, unpack → its layers, commit', { timeout: 120_000 }, async () => {
  const ref = `${registry.host}/otlp/app:v1`;
  const child = await serve(
    'otlp json',
    {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiverUrl,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-berth-test=h1',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=otlp-test',
      // Batches go out at once rather than every 5 s.
      OTEL_BSP_SCHEDULE_DELAY: '20',
    },
    [ref],
  );
  const { pull, loaded } = child.ready as { pull: { id: string; state: string; error?: unknown }; loaded: string[] };
  assert.equal(pull.state, 'done', JSON.stringify(pull));
  assert.ok(loaded.includes('@opentelemetry/sdk-trace-node') && loaded.includes('@opentelemetry/exporter-trace-otlp-http'), `SDK loaded: ${loaded.join(', ')}`);

  const pullSpan = () => receiver.spans().find((s) => s.name === 'pull' && attr(s, 'berth.pull') === pull.id);
  const requestSpan = () => receiver.spans().find((s) => s.name === 'HTTP POST /v1/pulls');
  // The request's span ends after the pull (?wait=true); the pull's children end before it.
  await receiver.until('the pull and request spans', () => pullSpan() !== undefined && requestSpan() !== undefined, child);
  const root = pullSpan()!;
  const request = requestSpan()!;

  for (const e of receiver.exports) {
    assert.equal(e.path, '/v1/traces');
    assert.equal(e.headers['x-berth-test'], 'h1', 'OTEL_EXPORTER_OTLP_HEADERS sent');
  }
  assert.equal(root.resource['service.name'], 'berth');
  assert.equal(root.resource['deployment.environment'], 'otlp-test');

  // Its own trace, at the root, linked to the request that started it.
  assert.equal(root.parentSpanId ?? '', '');
  assert.notEqual(root.traceId, request.traceId);
  assert.deepEqual(root.links?.map((l) => ({ traceId: l.traceId, spanId: l.spanId })), [{ traceId: request.traceId, spanId: request.spanId }]);
  assert.equal(attr(root, 'berth.ref'), ref);

  const trace = receiver.spans().filter((s) => s.traceId === root.traceId);
  const childrenOf = (parent: OtlpSpan, name: string) => trace.filter((s) => s.parentSpanId === parent.spanId && s.name === name);
  const names = (parent: OtlpSpan) => new Set(trace.filter((s) => s.parentSpanId === parent.spanId).map((s) => s.name));
  assert.deepEqual([...names(root)].sort(), ['pull.commit', 'pull.fetch', 'pull.resolve', 'unpack'], 'the pull span\'s children');

  assert.equal(childrenOf(root, 'pull.resolve').length, 1);
  assert.equal(attr(childrenOf(root, 'pull.resolve')[0], 'berth.ref'), ref);
  const fetched = childrenOf(root, 'pull.fetch').map((s) => attr(s, 'berth.digest'));
  assert.deepEqual(fetched.sort(), [image.digest, ...image.blobs.map((b) => b.digest)].sort(), 'one fetch span per blob: manifest, config, layers');
  const [commit] = childrenOf(root, 'pull.commit');
  assert.equal(attr(commit, 'berth.image'), ref);

  const unpacks = childrenOf(root, 'unpack');
  assert.equal(unpacks.length, 1);
  const layers = childrenOf(unpacks[0], 'unpack.layer').map((s) => attr(s, 'berth.digest'));
  assert.deepEqual(layers.sort(), image.layers.map((l) => l.digest).sort(), 'one unpack.layer span per layer, below unpack');

  // Every span of the trace hangs from the pull span (store spans below the fetches included).
  const byId = new Map(trace.map((s) => [s.spanId, s]));
  for (const s of trace) {
    let at: OtlpSpan = s;
    while (at.parentSpanId) {
      const parent = byId.get(at.parentSpanId);
      assert.ok(parent, `span ${s.name}: parent ${at.parentSpanId} of ${at.name} is not in the trace`);
      at = parent;
    }
    assert.equal(at.spanId, root.spanId, `span ${s.name} hangs from ${at.name}`);
  }
  await stop(child);
});

test('the default protocol is http/protobuf, OTEL_SERVICE_NAME names the service, and spans still queued go out at shutdown', { timeout: 60_000 }, async () => {
  const child = await serve('otlp protobuf', {
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiverUrl}/custom/traces`,
    OTEL_SERVICE_NAME: 'berth-node-7',
    // No batch would go out on its own during the test: only the flush at shutdown sends it.
    OTEL_BSP_SCHEDULE_DELAY: '600000',
  });
  const res = await fetch(`${child.url}/v1/version`);
  assert.equal(res.status, 200);
  const before = receiver.exports.length;
  await stop(child);
  const sent = receiver.exports.slice(before);
  assert.ok(sent.length > 0, 'the queued spans were flushed at shutdown');
  for (const e of sent) {
    assert.equal(e.path, '/custom/traces', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is');
    assert.equal(e.headers['content-type'], 'application/x-protobuf');
  }
  // Strings travel as they are in protobuf: the span's name and the service's are in the body.
  const body = Buffer.concat(sent.map((e) => e.body));
  assert.ok(body.includes('HTTP GET /v1/version'), 'the request span was exported');
  assert.ok(body.includes('berth-node-7'), 'service.name from OTEL_SERVICE_NAME');
  assert.ok(!body.includes('unknown_service'), 'no default service name');
});

test('without an OTLP endpoint in the environment the SDK is never loaded, and pulls work as before', { timeout: 120_000 }, async () => {
  const before = receiver.exports.length;
  const ref = `${registry.host}/otlp/app:v1`;
  // Set but switched off counts as unset too.
  for (const [name, env] of [
    ['otlp none', {}],
    ['otlp disabled', { OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: receiverUrl }],
  ] as const) {
    const child = await serve(name, env, [ref]);
    const { pull, loaded } = child.ready as { pull: { state: string }; loaded: string[] };
    assert.equal(pull.state, 'done', `${name}: ${JSON.stringify(pull)}`);
    assert.deepEqual(loaded, [], `${name}: no OpenTelemetry package but the API is loaded`);
    await stop(child);
  }
  assert.equal(receiver.exports.length, before, 'nothing was sent');
});

test('a protocol berth cannot export with is refused at start, naming the variable', { timeout: 60_000 }, async () => {
  await assert.rejects(
    serve('otlp grpc', { OTEL_EXPORTER_OTLP_ENDPOINT: receiverUrl, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }),
    /OTEL_EXPORTER_OTLP_PROTOCOL="grpc": berth exports traces over OTLP\/HTTP only/,
  );
});

test('a collector that refuses the spans is a warning in the log; the server goes on', { timeout: 60_000 }, async () => {
  // 400 is not retried: the export fails at once.
  const refusing = new Receiver(400);
  const url = await refusing.listen();
  try {
    const child = await serve('otlp refused', { OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_BSP_SCHEDULE_DELAY: '20' });
    let out = child.logs();
    const warned = new Promise<void>((resolve) => {
      child.process.stdout!.on('data', (b: Buffer) => {
        out += b.toString('utf8');
        if (/"level":40.*trace export/.test(out)) resolve();
      });
    });
    assert.equal((await fetch(`${child.url}/v1/version`)).status, 200);
    await refusing.until('an export', () => refusing.exports.length > 0, child);
    await warned;
    assert.equal((await fetch(`${child.url}/v1/version`)).status, 200, 'still serving');
    await stop(child);
  } finally {
    await refusing.close();
  }
});

test('a collector that refuses the spans flushed at shutdown: a warning, and the server still stops cleanly', { timeout: 60_000 }, async () => {
  const refusing = new Receiver(400);
  const url = await refusing.listen();
  try {
    // No batch goes out before the stop: the one export is the flush at SIGTERM.
    const child = await serve('otlp refused at shutdown', { OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_BSP_SCHEDULE_DELAY: '600000' });
    assert.equal((await fetch(`${child.url}/v1/version`)).status, 200);
    await stop(child); // exit code 0, or it fails naming the logs
    assert.ok(refusing.exports.length > 0, 'the flush at shutdown reached the collector');
    assert.match(child.logs(), /"level":40.*trace export: the spans queued at shutdown were not sent/);
  } finally {
    await refusing.close();
  }
});
