// `berth events`: prints the server's events as they happen, one line each, until interrupted.
import type { Command } from 'commander';
import { ApiError, BerthClient } from '../client/http.js';
import type { ServerEvent } from '../client/types.js';
import { collect } from './args.js';

/**
 * Splits a server-sent-events byte stream into messages: `onMessage(event, data)` for each
 * message with data; comments (keep-alives) are skipped.
 */
export async function readSse(body: AsyncIterable<Buffer | string>, onMessage: (event: string, data: string) => void): Promise<void> {
  let buffered = '';
  const decoder = new TextDecoder();
  for await (const chunk of body) {
    buffered += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    buffered = buffered.replace(/\r\n?/g, '\n');
    for (let end = buffered.indexOf('\n\n'); end >= 0; end = buffered.indexOf('\n\n')) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line === '' || line.startsWith(':')) continue;
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length > 0) onMessage(event, data.join('\n'));
    }
  }
}

export function formatEvent(e: ServerEvent): string {
  return `${e.timestamp} ${e.namespace || '-'} ${e.topic} ${JSON.stringify(e.event)}`;
}

export function registerEvents(program: Command, client: () => BerthClient): void {
  program
    .command('events')
    .description('print the server\'s events as they happen (all namespaces), one per line, until interrupted')
    .option('--filter <expr>', 'containerd filter on topic, namespace, event.<field>, e.g. topic~=^/images/ (repeat for OR)', collect)
    .option('--json', 'print each event as one line of JSON')
    .addHelpText('after', '\nLines are: TIMESTAMP NAMESPACE TOPIC EVENT, e.g.\n  2026-11-23T01:02:03.456000000Z default /images/create {"name":"docker.io/x:1","labels":{}}')
    .action(async (opts: { filter?: string[]; json?: boolean }) => {
      const abort = new AbortController();
      const interrupted = () => abort.abort();
      process.once('SIGINT', interrupted);
      process.once('SIGTERM', interrupted);
      try {
        // The server sends a keep-alive every 15 s: a minute of silence means it is gone.
        const c = client();
        const res = await c.send('GET', '/v1/events', { query: { filter: opts.filter }, bodyTimeout: 60_000, signal: abort.signal });
        let why = 'the server ended it';
        try {
          await readSse(res.body, (_event, data) => {
            const e = JSON.parse(data) as ServerEvent;
            process.stdout.write((opts.json ? JSON.stringify(e) : formatEvent(e)) + '\n');
          });
        } catch (err) {
          if (abort.signal.aborted) throw err;
          why = (err as Error).message;
        }
        // Exit status 2, as for a server that cannot be reached.
        throw new ApiError(0, 'unavailable', `lost the event stream from ${c.address}: ${why}`);
      } catch (err) {
        if (abort.signal.aborted) return; // interrupted: the normal way to stop
        throw err;
      } finally {
        process.off('SIGINT', interrupted);
        process.off('SIGTERM', interrupted);
      }
    });
}
