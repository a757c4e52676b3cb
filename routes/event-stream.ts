// Server-sent events (`event: <type>`, `data: <JSON>`) — a pull's or push's progress, the event
// bus: the messages a follower writes, a comment line while idle, the stream dropped when the
// client falls too far behind, and the follower unsubscribed when the stream ends or the client
// goes away.
import type { FastifyReply } from 'fastify';
import { PassThrough } from 'node:stream';

export interface EventStreamOptions {
  /** How often an idle stream gets a comment line (ms). */
  keepAliveMs: number;
  /** Bytes a client may fall behind by before its stream is dropped. */
  maxBacklog: number;
  /** How the messages' data is turned into JSON (JSON.stringify's replacer). */
  replacer?: (this: Record<string, unknown>, key: string, value: unknown) => unknown;
  /**
   * Send a `: subscribed` comment once `follow` has subscribed: the first bytes send the headers,
   * so a client of a stream whose first message may be long in coming knows it is subscribed.
   */
  announceSubscribed?: boolean;
}

/**
 * Sends the event stream `follow` writes to. `follow` subscribes (returning the unsubscribe
 * function) and calls `end` after the last message; it runs before anything is sent, so an
 * error it throws (an unknown id: a 404) is a plain answer, not a stream.
 */
export function sendEventStream(
  reply: FastifyReply,
  opts: EventStreamOptions,
  follow: (write: (type: string, data: unknown) => void, end: () => void) => () => void,
): FastifyReply {
  const stream = new PassThrough();
  let keepAlive: NodeJS.Timeout | undefined;
  let unsubscribe = () => {};
  const stop = () => {
    clearInterval(keepAlive);
    unsubscribe();
  };
  const write = (type: string, data: unknown) => {
    if (stream.writableEnded) return;
    if (stream.writableLength > opts.maxBacklog) {
      stream.end(': dropped: the client fell too far behind\n\n');
      return stop();
    }
    stream.write(`event: ${type}\ndata: ${JSON.stringify(data, opts.replacer)}\n\n`);
  };
  unsubscribe = follow(write, () => stream.end());
  if (opts.announceSubscribed && !stream.writableEnded) stream.write(': subscribed\n\n');
  if (!stream.writableEnded) {
    keepAlive = setInterval(() => {
      if (!stream.writableEnded) stream.write(': keep-alive\n\n');
    }, opts.keepAliveMs);
    keepAlive.unref();
  }
  // Closed when it ends, when the client disconnects (fastify destroys the payload) or at shutdown.
  stream.once('close', stop);
  stream.once('finish', stop);
  return reply
    .header('content-type', 'text/event-stream; charset=utf-8')
    .header('cache-control', 'no-cache')
    .header('x-accel-buffering', 'no')
    .send(stream);
}
