// `berth content ...`: committed blobs and ingests.
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { BerthClient, seg } from '../client/http.js';
import type { CommitRequest, Info, InfoList, StatusList, VerifyReport } from '../client/types.js';
import { collect, labelPatch, parseLabelArgs } from './args.js';
import { listVerb } from './list.js';
import { age, formatLabels, humanSize, printJson } from './table.js';

export function registerContent(program: Command, client: () => BerthClient): void {
  const content = program.command('content').description('manage committed blobs and ingests');

  listVerb(content.command('ls').alias('list').description('list committed blobs'), {
    fetch: (filter) => client().json<InfoList>('GET', '/v1/content', { query: { filter } }),
    filterHelp: 'containerd filter, e.g. labels."containerd.io/gc.root" (repeat for OR)',
    quiet: { help: 'print only digests', key: (i) => i.digest },
    columns: ['DIGEST', 'SIZE', 'AGE', 'LABELS'],
    row: (i) => [i.digest, humanSize(i.size), age(i.createdAt), formatLabels(i.labels)],
  });

  content
    .command('info <digest>')
    .description('show a blob\'s size, times and labels (JSON)')
    .action(async (digest: string) => {
      printJson(await client().json<Info>('GET', `/v1/content/${seg(digest)}/info`));
    });

  content
    .command('get <digest>')
    .description('write a blob\'s bytes to stdout or a file')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .action(async (digest: string, opts: { output?: string }) => {
      const res = await client().send('GET', `/v1/content/${seg(digest)}`);
      await pipeline(res.body, opts.output ? createWriteStream(opts.output) : process.stdout);
    });

  content
    .command('put [file]')
    .description('store a file (or stdin) as a blob and print its digest')
    .option('--digest <digest>', 'the expected digest: the upload fails and leaves nothing if it differs')
    .option('--label <k=v>', 'label the blob (repeatable)', collect)
    .option('--json', 'print the blob\'s info as JSON')
    .action(async (file: string | undefined, opts: { digest?: string; label?: string[]; json?: boolean }) => {
      const c = client();
      const labels = parseLabelArgs(opts.label ?? []);
      const { body, size } = !file || file === '-' ? { body: process.stdin, size: undefined } : await openFile(file);
      let info: Info;
      if (opts.digest) {
        info = await c.json<Info>('PUT', `/v1/content/${seg(opts.digest)}`, {
          body,
          headers: {
            'content-type': 'application/octet-stream',
            'berth-labels': JSON.stringify(labels),
            ...(size !== undefined ? { 'content-length': String(size) } : {}),
          },
        });
      } else {
        // No digest to check against: upload into an ingest and let the server compute it.
        const ref = `berth-cli-put-${randomUUID()}`;
        try {
          await c.json('PATCH', `/v1/ingests/${seg(ref)}`, {
            body,
            headers: { 'content-type': 'application/offset+octet-stream', 'upload-offset': '0' },
          });
          info = await c.json<Info>('POST', `/v1/ingests/${seg(ref)}/commit`, { json: { size: size ?? 0, labels } satisfies CommitRequest });
        } catch (err) {
          await c.send('DELETE', `/v1/ingests/${seg(ref)}`).then((r) => r.body.dump(), () => {});
          throw err;
        }
      }
      if (opts.json) printJson(info);
      else process.stdout.write(info.digest + '\n');
    });

  content
    .command('rm <digest...>')
    .alias('delete')
    .description('remove blobs')
    .action(async (digests: string[]) => {
      for (const d of digests) {
        await client().json('DELETE', `/v1/content/${seg(d)}`);
        process.stdout.write(d + '\n');
      }
    });

  content
    .command('label <digest> [labels...]')
    .description('set labels (k=v) or remove them (k=) on a blob; others stay (a bare k is refused)')
    .option('--replace', 'replace all labels with the given ones')
    .action(async (digest: string, args: string[], opts: { replace?: boolean }) => {
      const info = await client().json<Info>('PATCH', `/v1/content/${seg(digest)}`, {
        json: labelPatch(args, opts.replace),
      });
      process.stdout.write(`${info.digest} ${formatLabels(info.labels)}\n`);
    });

  content
    .command('verify')
    .description('re-hash every blob and report those that no longer match their digest')
    .option('--repair', 'remove corrupt blobs so that they are fetched again')
    .option('--json', 'print JSON')
    .action(async (opts: { repair?: boolean; json?: boolean }) => {
      const report = await client().json<VerifyReport>('POST', '/v1/content/verify', { query: { repair: opts.repair ? 'true' : undefined } });
      if (opts.json) return printJson(report);
      for (const c of report.corrupt) {
        process.stdout.write(`corrupt ${c.digest}${report.removed.includes(c.digest) ? ' (removed)' : ''}: ${c.reason}\n`);
      }
      process.stdout.write(
        `checked ${report.checked} blobs (${humanSize(report.bytes)}) in ${report.durationMs} ms: ${report.corrupt.length} corrupt\n`,
      );
      if (report.corrupt.length > report.removed.length) process.exitCode = 1;
    });

  listVerb(content.command('active').description('list ingests in progress'), {
    fetch: (filter) => client().json<StatusList>('GET', '/v1/ingests', { query: { filter } }),
    filterHelp: 'containerd filter on ref, e.g. ref~=layer (repeat for OR)',
    columns: ['REF', 'SIZE', 'TOTAL', 'UPDATED'],
    row: (s) => [s.ref, humanSize(s.offset), s.total ? humanSize(s.total) : '-', age(s.updatedAt)],
  });

  content
    .command('abort <ref...>')
    .description('abort ingests, removing what they hold')
    .action(async (refs: string[]) => {
      for (const ref of refs) {
        await client().json('DELETE', `/v1/ingests/${seg(ref)}`);
        process.stdout.write(ref + '\n');
      }
    });
}

/**
 * A file to upload, opened before anything is sent: a missing, unreadable or directory path is
 * one line naming it (not a stream error later, nor a failed upload). The size is known for a
 * regular file only (a FIFO or device streams until its end).
 */
async function openFile(file: string): Promise<{ body: Readable; size: number | undefined }> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.message;
    throw new Error(`${file}: ${why}`);
  }
  try {
    const st = await handle.stat();
    if (st.isDirectory()) throw new Error(`${file} is a directory`);
    return { body: handle.createReadStream({ highWaterMark: 1 << 20 }), size: st.isFile() ? st.size : undefined };
  } catch (err) {
    await handle.close();
    throw err;
  }
}
