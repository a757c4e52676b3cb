// A tar read as it streams, entry after entry (the layer applier's reader, with Go's rules):
// each entry's header, then its data as an async iterable that the caller consumes before asking
// for the next entry. One request chunk is in flight at a time, so the body's own back-pressure
// holds memory to that chunk whatever the archive's size.
import { BerthError, invalidArgument } from '../../store/errors.js';
import { TarReader, type TarHeader } from '../unpack/tar-reader.js';

export type { TarHeader } from '../unpack/tar-reader.js';

export interface TarEntry {
  header: TarHeader;
  /** The entry's bytes; drained by the reader if the caller leaves them. */
  data: AsyncIterable<Buffer>;
}

type Piece = { kind: 'header'; header: TarHeader } | { kind: 'data'; bytes: Buffer } | { kind: 'end' };

/** The tar reader's complaint, said of the archive (and the entry it was in). */
function archiveError(err: unknown, entry: string | undefined): unknown {
  if (!(err instanceof BerthError)) return err;
  const why = err.message.replace(/^layer tar: /, '');
  return invalidArgument(`archive${entry === undefined ? '' : ` entry ${JSON.stringify(entry)}`}: ${why === 'unexpected EOF' ? 'truncated (unexpected end of the tar)' : why}`, err);
}

async function* pieces(source: AsyncIterable<Uint8Array>): AsyncGenerator<Piece> {
  let queue: Piece[] = [];
  /** The entry the reader is in (for messages): set and cleared as it reads, ahead of what is yielded. */
  let current: string | undefined;
  const reader = new TarReader({
    entry(header) {
      current = header.name;
      queue.push({ kind: 'header', header });
      return {
        write: (bytes) => queue.push({ kind: 'data', bytes }),
        end: () => {
          current = undefined;
          queue.push({ kind: 'end' });
        },
      };
    },
  });
  for await (const chunk of source) {
    // Bytes after the end-of-archive marker are read and ignored, as Go does: the client's
    // request is consumed to its end either way.
    if (reader.ended) continue;
    try {
      reader.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    } catch (err) {
      throw archiveError(err, current);
    }
    const ready = queue;
    queue = [];
    yield* ready;
  }
  try {
    reader.finish();
  } catch (err) {
    throw archiveError(err, current);
  }
}

/** The entries of the tar in `source`, in order. */
export async function* tarEntries(source: AsyncIterable<Uint8Array>): AsyncGenerator<TarEntry> {
  const it = pieces(source)[Symbol.asyncIterator]();
  let next = await it.next();
  while (!next.done) {
    const piece = next.value;
    if (piece.kind !== 'header') throw new Error(`tar reader: ${piece.kind} before a header`);
    let ended = false;
    const data = async function* (): AsyncGenerator<Buffer> {
      while (!ended) {
        const p = await it.next();
        if (p.done) throw invalidArgument(`archive entry ${JSON.stringify(piece.header.name)}: truncated (unexpected end of the tar)`);
        if (p.value.kind === 'end') ended = true;
        else if (p.value.kind === 'data') yield p.value.bytes;
        else throw new Error('tar reader: a header inside an entry');
      }
    };
    yield { header: piece.header, data: data() };
    // Whatever the caller left of the entry is skipped.
    for await (const _ of data());
    next = await it.next();
  }
}
