// Checks committed content against its digest (as cacache's verify): a blob whose bytes no
// longer hash to its name is reported and, when asked, removed so that a later pull fetches it
// again. ssri does the streaming check; it costs no more than node's crypto (measured in the
// README), and sha256 only is asked of it (its default would hash sha512 too).
import ssri from 'ssri';
import { errorCode } from './errors.js';
import { withSpan } from './telemetry.js';
import { parseDigest } from './digest.js';
import type { ContentStore } from './types.js';

export interface VerifyReport {
  /** Blobs read and hashed. */
  checked: number;
  bytes: number;
  corrupt: Array<{ digest: string; reason: string }>;
  /** Corrupt blobs removed (only with `repair`). */
  removed: string[];
  durationMs: number;
}

export async function verifyContent(
  store: Pick<ContentStore, 'walk' | 'readerAt' | 'delete'>,
  { repair = false }: { repair?: boolean } = {},
): Promise<VerifyReport> {
  return withSpan('content.verify', { 'berth.repair': repair }, async () => {
    const started = Date.now();
    const report: VerifyReport = { checked: 0, bytes: 0, corrupt: [], removed: [], durationMs: 0 };
    const digests: string[] = [];
    await store.walk((info) => void digests.push(info.digest));
    for (const digest of digests) {
      const reason = await checkBlob(store, digest);
      if (reason === 'gone') continue; // deleted while we verified
      report.checked++;
      report.bytes += reason.size;
      if (reason.problem) {
        report.corrupt.push({ digest, reason: reason.problem });
        if (repair) {
          await store.delete(digest);
          report.removed.push(digest);
        }
      }
    }
    report.durationMs = Date.now() - started;
    return report;
  });
}

async function checkBlob(
  store: Pick<ContentStore, 'readerAt'>,
  digest: string,
): Promise<'gone' | { size: number; problem?: string }> {
  const { algorithm, encoded } = parseDigest(digest);
  let reader;
  try {
    reader = await store.readerAt(digest);
  } catch (err) {
    if (errorCode(err) === 'not_found') return 'gone';
    throw err;
  }
  const size = reader.size;
  try {
    // `algorithms` is honoured by ssri 13's integrity stream but missing from @types/ssri.
    const opts = { algorithms: [algorithm] } as Parameters<typeof ssri.checkStream>[2];
    await ssri.checkStream(reader.stream(), ssri.fromHex(encoded, algorithm), opts);
    return { size };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EINTEGRITY' || code === 'EBADSIZE') return { size, problem: `content does not match ${digest}` };
    throw err;
  }
}
