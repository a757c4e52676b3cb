// Spans through @opentelemetry/api. With no SDK registered these are no-ops; a host process (or
// a test) that registers a tracer provider sees every store operation and request.
import { SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';

export const tracer = trace.getTracer('berth');

/** Runs fn inside an active span named `name`; records an error and rethrows it. */
export function withSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}
