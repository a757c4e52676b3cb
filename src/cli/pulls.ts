// `berth pull REF` (start a pull and follow its event stream to the end) and `berth pulls
// ls|get|cancel` (pulls as resources).
import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, BerthClient, seg } from '../client/http.js';
import type { Pull, PullEvent, PullList, PullRequest } from '../client/types.js';
import { readSse } from './events.js';
import { followTransfer } from './follow-transfer.js';
import { listVerb } from './list.js';
import { blobKind, isFinal, PullProgress, rate, shortDigest } from './progress.js';
import { age, humanSize, printFields, printJson, printTable } from './table.js';

const durationMs = (p: Pull): number => (p.finishedAt ? Date.parse(p.finishedAt) : Date.now()) - Date.parse(p.startedAt);

/** `; 6.0 MiB from peers (node-a 4.0 MiB, node-b 2.0 MiB), 2.0 MiB upstream`, when peers gave any. */
function bySource(p: Pull): string {
  if (p.bytesFromPeers === 0) return '';
  const peers = new Map<string, number>();
  for (const b of p.blobs) {
    for (const [source, n] of Object.entries(b.sources)) {
      if (source.startsWith('peer ')) peers.set(source.slice(5), (peers.get(source.slice(5)) ?? 0) + n);
    }
  }
  const each = [...peers].sort(([a], [b]) => a.localeCompare(b)).map(([node, n]) => `${node} ${humanSize(n)}`);
  return `; ${humanSize(p.bytesFromPeers)} from peers (${each.join(', ')}), ${humanSize(p.bytesFromUpstream)} upstream`;
}

/** Where a blob's bytes came from, for the blob table: `upstream`, `node-a`, `node-a+upstream`, or `-`. */
function blobSources(sources: Record<string, number>): string {
  const names = Object.keys(sources).map((s) => (s.startsWith('peer ') ? s.slice(5) : s));
  return names.length > 0 ? names.join('+') : '-';
}

/** `fetched 8.0 MiB in 0.31 s (27.1 MB/s); 5 blobs, 2 already stored` (and the bytes by source in a fleet) */
export function summary(p: Pull): string {
  const stored = p.blobs.filter((b) => b.state === 'exists').length;
  const unpacked = (p.unpacks ?? []).map(
    (u) => `; unpacked into ${u.snapshotter} as ${shortDigest(u.chainId)} (${u.unpacked} layer${u.unpacked === 1 ? '' : 's'} extracted${u.existing ? `, ${u.existing} there already` : ''})`,
  );
  return (
    `fetched ${humanSize(p.bytesFetched)} in ${rate(p.bytesFetched, durationMs(p))}; ` +
    `${p.blobs.length} blob${p.blobs.length === 1 ? '' : 's'}${stored > 0 ? `, ${stored} already stored` : ''}${bySource(p)}${unpacked.join('')}`
  );
}

/** How long `berth pull` tries to re-attach to its pull once the server has gone away. */
export const reattachMs = 120_000;

/**
 * Follows a pull's event stream until its final event; the pull's final state. When the stream
 * drops before that — the server stopped or restarted — it connects again with backoff for up
 * to `reattachMs` and follows the same pull again (the server resumes it under its id after a
 * restart), saying both on stderr.
 */
async function follow(c: BerthClient, id: string, progress: PullProgress | undefined, signal: AbortSignal): Promise<Pull> {
  let lostAt: number | undefined;
  let delay = 250;
  for (;;) {
    let ended = false;
    let why = 'the server ended it before the pull ended';
    try {
      // The server sends a keep-alive every 15 s: a minute of silence means it is gone.
      const res = await c.send('GET', `/v1/pulls/${seg(id)}/events`, { bodyTimeout: 60_000, signal });
      if (lostAt !== undefined) {
        process.stderr.write(`berth: re-attached to pull ${id} on ${c.address}\n`);
        lostAt = undefined;
        delay = 250;
      }
      await readSse(res.body, (event, data) => {
        if (ended) return;
        if (event === 'pull') return progress?.view(JSON.parse(data) as Pull);
        const e = JSON.parse(data) as PullEvent;
        progress?.event(e);
        if (isFinal(e)) ended = true;
      });
    } catch (err) {
      if (signal.aborted) throw err;
      // The server answered, and not with the stream (it does not know the pull, say): nothing to follow.
      if (err instanceof ApiError && err.status !== 0) {
        throw lostAt === undefined ? err : new ApiError(err.status, err.code, `re-attaching to pull ${id} on ${c.address}: ${err.message}`);
      }
      why = (err as Error).message;
    }
    if (ended) return c.json<Pull>('GET', `/v1/pulls/${seg(id)}`);
    if (lostAt === undefined) {
      lostAt = Date.now();
      process.stderr.write(`berth: lost the event stream of pull ${id} (${why}); re-attaching to ${c.address}\n`);
    } else if (Date.now() - lostAt > reattachMs) {
      throw new ApiError(0, 'unavailable', `lost the event stream of pull ${id} from ${c.address}: ${why}; no server to re-attach to for ${reattachMs / 1000} s`);
    }
    await sleep(delay, undefined, { signal });
    delay = Math.min(delay * 2, 2000);
  }
}

export interface PullOptions {
  platform?: string;
  allPlatforms?: boolean;
  /** Default true (commander's --no-unpack sets false). */
  unpack?: boolean;
  snapshotter?: string;
  json?: boolean;
}

/**
 * Starts a pull and follows it with progress to its end: its final state when done; undefined
 * when interrupted (the pull is cancelled on the server, exit code 130); throws when it failed.
 */
export async function pullImage(c: BerthClient, ref: string, opts: PullOptions): Promise<Pull | undefined> {
  const unpack = opts.unpack !== false;
  const started = await c.json<Pull>('POST', '/v1/pulls', {
    json: {
      ref,
      platform: opts.platform || undefined,
      allPlatforms: opts.allPlatforms || undefined,
      unpack: unpack || undefined,
      snapshotter: (unpack && opts.snapshotter) || undefined,
    } satisfies PullRequest,
  });
  const out = process.stdout;
  const progress = opts.json
    ? undefined
    : new PullProgress({ out, tty: out.isTTY === true, columns: () => out.columns ?? 80, rows: () => out.rows ?? 24 });
  return followTransfer({
    kind: 'pull',
    follow: (signal) => follow(c, started.id, progress, signal),
    cancel: () => c.json<Pull>('DELETE', `/v1/pulls/${seg(started.id)}`),
    progress,
    json: opts.json,
    cancelledNote: `berth: pull ${started.id} cancelled: what was fetched is kept; pull again to resume`,
  });
}

export function registerPulls(program: Command, client: () => BerthClient): void {
  program
    .command('pull <ref>')
    .description('pull an image from its registry into the content store, showing progress')
    .option('--platform <platform>', 'the platform to pull from an index, os/arch[/variant] (default: this host\'s)')
    .option('--all-platforms', 'pull every platform of an index')
    .option('--no-unpack', 'only fetch into the content store; do not unpack the layers into snapshots')
    .option('--snapshotter <name>', 'the snapshotter to unpack into (default: the server\'s, overlayfs where it works)')
    .option('--json', 'print only the pull\'s final state, as JSON')
    .addHelpText(
      'after',
      '\nLayers are unpacked into snapshots while they download (--no-unpack: fetch only).' +
        '\nOn a terminal, one line per blob is redrawn as it downloads; otherwise a line is printed each time a' +
        '\nblob changes state. Interrupting (Ctrl-C) cancels the pull: what was fetched is kept, and pulling' +
        '\nagain resumes it. If the server stops or restarts meanwhile, berth pull reconnects (for up to' +
        `\n${reattachMs / 1000} s) and follows the same pull again, which the server resumes by itself at start.`,
    )
    .action(async (ref: string, opts: PullOptions) => {
      const final = await pullImage(client(), ref, opts);
      if (final && !opts.json) process.stdout.write(`${final.image}: ${summary(final)}\n`);
    });

  const pulls = program
    .command('pulls')
    .description('pulls in the namespace: running, interrupted by a restart, and ended (kept 7 days by default, across restarts)');

  listVerb(pulls.command('ls').alias('list').description('list pulls'), {
    fetch: (filter) => client().json<PullList>('GET', '/v1/pulls', { query: { filter } }),
    filterHelp: 'containerd filter on id, ref, state, image, lease, e.g. state==running (repeat for OR)',
    quiet: { help: 'print only ids', key: (p) => p.id },
    columns: ['ID', 'REF', 'STATE', 'BLOBS', 'FETCHED', 'STARTED', 'ERROR'],
    row: (p) => [
      p.id,
      p.ref,
      p.state,
      `${p.blobs.filter((b) => b.state === 'done' || b.state === 'exists').length}/${p.blobs.length}`,
      humanSize(p.bytesFetched),
      age(p.startedAt),
      p.error?.message ?? '-',
    ],
  });

  pulls
    .command('get <id>')
    .description('show one pull and its blobs')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      const p = await client().json<Pull>('GET', `/v1/pulls/${seg(id)}`);
      if (opts.json) return printJson(p);
      const lines: Array<[string, string]> = [
        ['id', p.id],
        ['ref', p.ref],
        ['state', p.state],
        ...(p.error ? [['error', `${p.error.message} (${p.error.code})`] as [string, string]] : []),
        ...(p.image ? [['image', p.image] as [string, string]] : []),
        ['lease', p.lease],
        ['started', p.startedAt],
        ...(p.resumedAt ? [['resumed', `${p.resumedAt} (after a restart of the server)`] as [string, string]] : []),
        ...(p.finishedAt ? [[p.state === 'interrupted' ? 'stopped' : 'finished', p.finishedAt] as [string, string]] : []),
        ['fetched', `${humanSize(p.bytesFetched)} in ${rate(p.bytesFetched, durationMs(p))}`],
        ...(p.bytesFromPeers > 0
          ? [['sources', `${humanSize(p.bytesFromUpstream)} upstream, ${humanSize(p.bytesFromPeers)} from peers`] as [string, string]]
          : []),
      ];
      printFields(lines);
      if (p.blobs.length === 0) return;
      process.stdout.write('\n');
      printTable(
        ['KIND', 'DIGEST', 'STATE', 'OFFSET', 'SIZE', 'FROM'],
        p.blobs.map((b) => [blobKind(b.mediaType) ?? '-', shortDigest(b.digest), b.state, String(b.offset), humanSize(b.size), blobSources(b.sources)]),
      );
    });

  pulls
    .command('cancel <id...>')
    .description('cancel running or interrupted pulls (what they fetched is kept: pulling again resumes it)')
    .action(async (ids: string[]) => {
      for (const id of ids) {
        const p = await client().json<Pull>('DELETE', `/v1/pulls/${seg(id)}`);
        process.stdout.write(`${p.id} ${p.state}\n`);
      }
    });
}
