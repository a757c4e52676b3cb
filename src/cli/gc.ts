// `berth gc [--dry-run]` and `berth gc explain DIGEST`.
import type { Command } from 'commander';
import type { BerthClient } from '../client/http.js';
import type { GcExplanation, GcPathStep, GcResult } from '../client/types.js';
import { humanSize, printJson, until } from './table.js';

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** What a collection did (or, dry, would do), for people. */
export function describeGc(r: GcResult, dryRun: boolean): string {
  const m = r.removed;
  const records = [
    plural(m.images, 'image'),
    plural(m.leases, 'lease'),
    plural(m.content, 'content record'),
    plural(m.ingests, 'ingest record'),
    ...(m.snapshots ? [plural(m.snapshots, 'snapshot')] : []),
  ].join(', ');
  const files =
    `${plural(r.backend.blobs, 'blob')} and ${plural(r.backend.ingests, 'ingest')}` +
    (r.backend.snapshots ? ` (and ${plural(r.backend.snapshots, 'snapshot file system')})` : '');
  const lines = dryRun
    ? [`would remove ${records}`, `would delete ${files} from disk: ${humanSize(r.bytesFreed)} would be freed`]
    : [`removed ${records}`, `deleted ${files} from disk: ${humanSize(r.bytesFreed)} freed`];
  lines.push(
    `took ${r.durationMs} ms (mark ${r.markMs} ms, sweep ${r.sweepMs} ms)` +
      (r.nextExpiry ? `; the next expiry is ${until(r.nextExpiry)} (${r.nextExpiry})` : ''),
  );
  return lines.join('\n') + '\n';
}

/** One namespace's chain: `image x:1 → (target) content sha256:… → (label) content sha256:…`. */
export function describePath(path: GcPathStep[]): string {
  const node = (s: GcPathStep) => `${s.type} ${s.key}${s.flat ? ' (flat)' : ''}`;
  const [first, ...rest] = path;
  const reason = first.via.replace(/^root: /, '');
  let out: string;
  if (reason === first.type) out = node(first);
  else if (reason.startsWith('lease ')) out = `${reason} → (resource) ${node(first)}`;
  else out = `${node(first)} (root: ${reason})`;
  for (const s of rest) out += ` → (${s.via}) ${node(s)}`;
  return out;
}

export function describeExplanation(e: GcExplanation): string {
  if (e.namespaces.length === 0) {
    return `${e.digest} is in no namespace: if its blob is on disk, the next collection removes it\n`;
  }
  const head = e.collectable
    ? `${e.digest} would be collected: nothing keeps it in any namespace`
    : `${e.digest} is kept:`;
  const lines = e.namespaces.map((n) =>
    n.kept && n.path ? `  ${n.namespace}: ${describePath(n.path)}` : `  ${n.namespace}: nothing reaches it; the next collection removes it`,
  );
  return [head, ...lines].join('\n') + '\n';
}

export function registerGc(program: Command, client: () => BerthClient): void {
  const gc = program
    .command('gc')
    .description('collect garbage now: remove what no image, lease or gc.root label keeps, and say what was freed')
    .option('--dry-run', 'remove nothing; say what would be removed')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { dryRun?: boolean; json?: boolean }) => {
      const result = await client().json<GcResult>('POST', '/v1/gc', { query: { dryRun: opts.dryRun ? 'true' : undefined } });
      if (opts.json) return printJson(result);
      process.stdout.write(describeGc(result, opts.dryRun ?? false));
    });

  gc.command('explain <digest>')
    .description('say why a blob is kept: per namespace, the chain of references from a root to it')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExample:\n  $ berth gc explain sha256:4c1f...\n  sha256:4c1f... is kept:\n' +
        '    default: image docker.io/x:1 → (target) content sha256:9a2b... → (containerd.io/gc.ref.content.l.0) content sha256:4c1f...',
    )
    .action(async (digest: string, opts: { json?: boolean }) => {
      const e = await client().json<GcExplanation>('GET', '/v1/gc/explain', { query: { digest } });
      if (opts.json) return printJson(e);
      process.stdout.write(describeExplanation(e));
    });
}
