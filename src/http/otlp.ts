// Trace export over OTLP/HTTP, asked for the standard way: OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT in the server's environment. Then the OpenTelemetry SDK
// becomes the process's tracer provider, and every span berth makes through @opentelemetry/api
// (requests, store operations, pulls) goes out in batches. Unset, the SDK is never imported (the
// imports below are dynamic): the API stays a no-op and costs nothing.
//
// The SDK reads the rest of the OTEL_* variables itself (headers, timeout, compression, TLS files,
// sampler, span limits, batch processor); berth reads only what picks the exporter. See README,
// "Traces (issue 14)".
import { context, diag, DiagLogLevel, propagation, ProxyTracerProvider, trace } from '@opentelemetry/api';
import type { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { BerthError } from '../../store/errors.js';

export interface TraceLogger {
  warn(obj: object, msg: string): void;
}

/** OTLP/HTTP encodings, as OTEL_EXPORTER_OTLP_PROTOCOL names them (grpc is not offered). */
const protocols = ['http/protobuf', 'http/json'] as const;
type Protocol = (typeof protocols)[number];

/** The tracer provider of this process, shared by the servers in it (tests start several). */
let shared: { provider: Promise<NodeTracerProvider | undefined>; users: number } | undefined;

// process.env, not a parameter: the SDK reads its own settings from there too.
const value = (name: string): string | undefined => process.env[name]?.trim() || undefined;

/** Whether the environment asks for trace export (and does not switch it off). */
function traceExportWanted(): boolean {
  if (value('OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return false;
  if (value('OTEL_TRACES_EXPORTER')?.toLowerCase() === 'none') return false;
  return value('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') !== undefined || value('OTEL_EXPORTER_OTLP_ENDPOINT') !== undefined;
}

/** The encoding asked for (the specification's default: http/protobuf); anything else is refused. */
function protocolOf(): Protocol {
  const name = value('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const asked = value(name) ?? 'http/protobuf';
  if (!(protocols as readonly string[]).includes(asked)) {
    throw new BerthError('invalid_argument', `${name}=${JSON.stringify(asked)}: berth exports traces over OTLP/HTTP only: ${protocols.join(' or ')}`);
  }
  return asked as Protocol;
}

/**
 * Starts exporting spans when the environment asks for it; returns what stops it (flushing the
 * spans still queued), or undefined when nothing was started.
 */
export async function startTraceExport(log: TraceLogger): Promise<(() => Promise<void>) | undefined> {
  if (!traceExportWanted()) return undefined;
  const exporters = value('OTEL_TRACES_EXPORTER');
  if (exporters !== undefined && exporters.toLowerCase() !== 'otlp') {
    log.warn({ OTEL_TRACES_EXPORTER: exporters }, 'trace export: berth exports over OTLP only; other exporters named there are ignored');
  }
  const protocol = protocolOf();
  shared ??= { provider: newProvider(protocol, log), users: 0 };
  const mine = shared;
  mine.users++;
  if (!(await mine.provider)) {
    // Nothing to share: a later start asks again.
    if (shared === mine) shared = undefined;
    return undefined;
  }
  let stopped = false;
  return async () => {
    if (stopped) return;
    stopped = true;
    if (--mine.users > 0) return;
    if (shared === mine) shared = undefined;
    // Shutting down flushes the batch processor: the spans of the last moments go out too. A
    // collector that refuses them rejects the flush; that is a warning, as any refused export
    // is, never a failed stop.
    try {
      await (await mine.provider)!.shutdown();
    } catch (err) {
      log.warn({ err }, `trace export: the spans queued at shutdown were not sent: ${(err as Error)?.message ?? err}`);
    }
    trace.disable();
    context.disable();
    propagation.disable();
    diag.disable();
  };
}

/** The provider, registered as the process's; undefined when the process had one already. */
async function newProvider(protocol: Protocol, log: TraceLogger): Promise<NodeTracerProvider | undefined> {
  // (A fresh proxy delegates to the API's no-op provider: anything else was registered by a host.)
  if ((trace.getTracerProvider() as ProxyTracerProvider).getDelegate() !== new ProxyTracerProvider().getDelegate()) {
    // A host running berth in-process registered its own: that one stays, and sees the spans.
    log.warn({}, 'trace export: this process has a tracer provider already; OTEL_EXPORTER_OTLP_* ignored');
    return undefined;
  }
  const [{ NodeTracerProvider, BatchSpanProcessor }, resources, { OTLPTraceExporter }] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/resources'),
    protocol === 'http/json' ? import('@opentelemetry/exporter-trace-otlp-http') : import('@opentelemetry/exporter-trace-otlp-proto'),
  ]);
  // The SDK reports failed exports through its diagnostic logger; they belong in berth's log.
  diag.setLogger(
    {
      error: (message, ...args) => log.warn({ args }, `trace export: ${message}`),
      warn: (message, ...args) => log.warn({ args }, `trace export: ${message}`),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    DiagLogLevel.WARN,
  );
  // service.name is berth's unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise.
  const resource = resources
    .defaultResource()
    .merge(resources.resourceFromAttributes({ 'service.name': 'berth' }))
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  // The exporter and the processor take their settings from OTEL_EXPORTER_OTLP_* and OTEL_BSP_*.
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
  // Also installs the AsyncLocalStorage context manager, which carries the active span across awaits.
  provider.register();
  return provider;
}
