// `berth push REF` (as `ctr images push`): starts a push of the image named REF (or --image) to
// REF's registry and follows its event stream to the end, with progress as `berth pull` shows
// it — on a terminal one line per blob redrawn in place, otherwise a line per change of state —
// and `berth pushes ls|get|cancel` (pushes as resources).
import type { Command } from 'commander';
import { BerthClient, seg } from '../client/http.js';
import type { components } from '../client/openapi.js';
import { readSse } from './events.js';
import { followTransfer } from './follow-transfer.js';
import { listVerb } from './list.js';
import { bar, blobKind, rate, shortDigest, TerminalFrame } from './progress.js';
import { age, humanSize, printFields, printJson, printTable } from './table.js';

type Push = components['schemas']['Push'];
type PushEvent = components['schemas']['PushEvent'];
type PushBlob = components['schemas']['PushBlobProgress'];

const durationMs = (p: Push): number => (p.finishedAt ? Date.parse(p.finishedAt) : Date.now()) - Date.parse(p.startedAt);

/** What a blob's final state says on its line. */
const said: Record<string, string> = { exists: 'exists (the registry has it)', mounted: 'mounted (from another repository)', uploaded: 'uploaded' };

/** `pushed sha256:… ; sent 8.0 MiB in 0.31 s (27.1 MB/s); 5 blobs, 2 there already, 1 mounted` */
export function pushSummary(p: Push): string {
  const count = (state: string) => p.blobs.filter((b) => b.state === state).length;
  const existed = count('exists');
  const mounted = count('mounted');
  return (
    `pushed ${p.digest}; sent ${humanSize(p.bytesSent)} in ${rate(p.bytesSent, durationMs(p))}; ${p.blobs.length} blob${p.blobs.length === 1 ? '' : 's'}` +
    `${existed ? `, ${existed} there already` : ''}${mounted ? `, ${mounted} mounted` : ''}`
  );
}

/** The push as the stream tells it: lines per change of state, or a frame redrawn on a terminal. */
class PushProgress {
  private readonly blobs = new Map<string, PushBlob>();
  private readonly frame: TerminalFrame;
  private readonly timer?: NodeJS.Timeout;
  private ref = '';
  private started = Date.now();

  constructor(private readonly out: NodeJS.WriteStream) {
    this.frame = new TerminalFrame(out);
    if (out.isTTY) {
      out.write('\x1b[?25l');
      this.timer = setInterval(() => this.draw(), 200);
      this.timer.unref();
    }
  }

  view(p: Push): void {
    this.ref = p.ref;
    this.started = Date.parse(p.startedAt) || this.started;
    if (!this.out.isTTY) this.out.write(`pushing ${p.image} to ${p.ref} (push ${p.id})\n`);
    for (const b of p.blobs) {
      this.blobs.set(b.digest, { ...b });
      // What happened before the stream started (all of it, for a push that ended first) is said too.
      if (!this.out.isTTY && b.state !== 'waiting') this.line(b, b.state);
    }
  }

  private line(b: PushBlob, state: string): void {
    this.out.write(`${blobKind(b.mediaType) ?? 'blob'} ${shortDigest(b.digest)} ${said[state] ?? state} ${humanSize(b.size)}\n`);
  }

  event(e: PushEvent): void {
    if (!e.digest) return;
    const b = this.blobs.get(e.digest) ?? { digest: e.digest, mediaType: e.mediaType ?? '', size: e.size ?? 0, offset: 0, state: 'waiting', bytesSent: 0 };
    this.blobs.set(e.digest, b);
    if (e.mediaType) b.mediaType = e.mediaType;
    if (e.type === 'progress') b.offset = e.offset ?? b.offset;
    if (e.type === 'progress' || e.type === 'pushing') return;
    b.state = e.type as PushBlob['state'];
    if (e.type !== 'uploading') b.offset = b.size;
    if (!this.out.isTTY) this.line(b, e.type);
  }

  finish(final?: Push): void {
    if (final) for (const b of final.blobs) this.blobs.set(b.digest, { ...b });
    clearInterval(this.timer);
    if (this.out.isTTY) {
      this.draw();
      this.out.write('\x1b[?25h');
    }
  }

  private draw(): void {
    const columns = Math.max(40, this.out.columns || 80);
    const lines = [...this.blobs.values()].slice(-Math.max(2, (this.out.rows || 24) - 3)).map(
      (b) => `${(blobKind(b.mediaType) ?? 'blob').padEnd(8)} ${shortDigest(b.digest).padEnd(19)}  ${b.state.padEnd(9)} ${bar(b.offset, b.size, 20)} ${humanSize(b.offset)}/${humanSize(b.size)}`,
    );
    lines.push(`${this.ref}  elapsed ${((Date.now() - this.started) / 1000).toFixed(1)} s`);
    this.frame.draw(lines, columns);
  }
}

export interface PushOptions {
  image?: string;
  platform?: string;
  json?: boolean;
}

/** Starts a push and follows it to its end; throws when it failed. Ctrl-C cancels it (exit 130). */
export async function pushImage(c: BerthClient, ref: string, opts: PushOptions): Promise<Push | undefined> {
  const started = await c.json<Push>('POST', '/v1/pushes', {
    json: { ref, image: opts.image || undefined, platform: opts.platform || undefined } satisfies components['schemas']['PushRequest'],
  });
  const progress = opts.json ? undefined : new PushProgress(process.stdout);
  return followTransfer({
    kind: 'push',
    follow: async (signal) => {
      const res = await c.send('GET', `/v1/pushes/${seg(started.id)}/events`, { bodyTimeout: 60_000, signal });
      await readSse(res.body, (event, data) => {
        if (event === 'push') return progress?.view(JSON.parse(data) as Push);
        progress?.event(JSON.parse(data) as PushEvent);
      });
      return c.json<Push>('GET', `/v1/pushes/${seg(started.id)}`);
    },
    cancel: () => c.json<Push>('DELETE', `/v1/pushes/${seg(started.id)}`),
    progress,
    json: opts.json,
    cancelledNote: `berth: push ${started.id} cancelled: blobs the registry received stay there; push again to go on`,
  });
}

export function registerPush(program: Command, client: () => BerthClient): void {
  program
    .command('push <ref>')
    .description("push an image to its registry (the image named REF, to REF's registry and repository), showing progress")
    .option('--image <name>', 'push this image instead of the one named REF (as `ctr images push REF LOCAL`)')
    .option('--platform <platform>', 'of an index, push only this platform\'s manifest, os/arch[/variant] (default: the whole image)')
    .option('--json', "print only the push's final state, as JSON")
    .addHelpText(
      'after',
      '\nOnly what the registry lacks is sent: a blob it has is skipped, one another repository of the same' +
        '\nregistry has is mounted from there, the rest is uploaded in chunks; after a cut connection the' +
        '\nupload goes on where the registry\'s upload session says (or starts the blob again if the registry' +
        '\ndropped the session). The manifests go last. Credentials and hosts.toml are the pull\'s.' +
        '\nInterrupting (Ctrl-C) cancels the push; pushing again skips what arrived.',
    )
    .action(async (ref: string, opts: PushOptions) => {
      const final = await pushImage(client(), ref, opts);
      if (final && !opts.json) process.stdout.write(`${final.ref}: ${pushSummary(final)}\n`);
    });

  const pushes = program.command('pushes').description('pushes in the namespace: running and recently ended (kept in memory)');

  listVerb(pushes.command('ls').alias('list').description('list pushes'), {
    fetch: (filter) => client().json<components['schemas']['PushList']>('GET', '/v1/pushes', { query: { filter } }),
    filterHelp: 'containerd filter on id, ref, image, state, e.g. state==running (repeat for OR)',
    quiet: { help: 'print only ids', key: (p) => p.id },
    columns: ['ID', 'REF', 'STATE', 'BLOBS', 'SENT', 'STARTED', 'ERROR'],
    row: (p) => [
      p.id,
      p.ref,
      p.state,
      `${p.blobs.filter((b) => b.state === 'exists' || b.state === 'mounted' || b.state === 'uploaded').length}/${p.blobs.length}`,
      humanSize(p.bytesSent),
      age(p.startedAt),
      p.error?.message ?? '-',
    ],
  });

  pushes
    .command('get <id>')
    .description('show one push and its blobs')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      const p = await client().json<Push>('GET', `/v1/pushes/${seg(id)}`);
      if (opts.json) return printJson(p);
      const lines: Array<[string, string]> = [
        ['id', p.id],
        ['ref', p.ref],
        ['image', p.image],
        ['state', p.state],
        ...(p.error ? [['error', `${p.error.message} (${p.error.code})`] as [string, string]] : []),
        ...(p.digest ? [['digest', p.digest] as [string, string]] : []),
        ['started', p.startedAt],
        ...(p.finishedAt ? [['finished', p.finishedAt] as [string, string]] : []),
        ['sent', `${humanSize(p.bytesSent)} in ${rate(p.bytesSent, durationMs(p))}`],
      ];
      printFields(lines);
      if (p.blobs.length === 0) return;
      process.stdout.write('\n');
      printTable(
        ['KIND', 'DIGEST', 'STATE', 'OFFSET', 'SIZE', 'SENT'],
        p.blobs.map((b) => [blobKind(b.mediaType) ?? '-', shortDigest(b.digest), b.state, String(b.offset), humanSize(b.size), humanSize(b.bytesSent)]),
      );
    });

  pushes
    .command('cancel <id...>')
    .description('cancel running pushes')
    .action(async (ids: string[]) => {
      for (const id of ids) {
        const p = await client().json<Push>('DELETE', `/v1/pushes/${seg(id)}`);
        process.stdout.write(`${p.id} ${p.state}\n`);
      }
    });
}
