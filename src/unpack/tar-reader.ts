// A push-driven tar reader with Go archive/tar's reading rules, which is what containerd applies
// layers with. Chunks go in with push(); each entry's header and then its data are handed to an
// EntryHandler synchronously, so the caller's loop is the only back-pressure needed.
//
// Why not tar-stream's extract: it decodes PAX values as UTF-8, which corrupts binary xattrs
// (`security.capability` with cap_setuid comes out with U+FFFD in it), and it keeps reading
// after the end-of-archive marker, so trailing data after a layer's tar fails instead of being
// hashed and ignored as containerd does.
import { invalidArgument } from '../../store/errors.js';

export interface TarHeader {
  /** As stored (PAX path, GNU long name or ustar prefix/name); not cleaned. */
  name: string;
  /** The type flag: '0' regular ('\0' is read as '0', or '5' for a name ending in '/'), '1' hardlink, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo, others as found. */
  type: string;
  /** Permission bits with setuid/setgid/sticky (mode & 07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data that follow (0 for header-only types, whatever the header says). */
  size: number;
  /** Seconds since the epoch; fractional when a PAX record says so. */
  mtime: number;
  atime?: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** `SCHILY.xattr.<name>` PAX records: name → raw bytes. */
  xattrs: Map<string, Buffer>;
}

export interface EntrySink {
  write(data: Buffer): void;
  end(): void;
}

export interface EntryHandler {
  /** Called once per entry; a sink receives the entry's data (if any), then end(). */
  entry(header: TarHeader): EntrySink | undefined;
}

const BLOCK = 512;
/** Go's maxSpecialFileSize: PAX and GNU long-name bodies larger than this are refused. */
const MAX_SPECIAL = 1 << 20;
/** Go's isHeaderOnlyType: these never have data, whatever their size field says. */
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);
/** Types that describe the next entry rather than being one. */
const SPECIAL = new Set(['x', 'g', 'L', 'K']);

const padding = (n: number): number => (BLOCK - (n % BLOCK)) % BLOCK;

const tarError = (why: string): Error => invalidArgument(`layer tar: ${why}`);

/** NUL-terminated string of a header field. */
function field(b: Buffer, off: number, len: number): string {
  const end = b.indexOf(0, off);
  return b.toString('utf8', off, end < 0 || end > off + len ? off + len : end);
}

/** Go's parseNumeric: base-256 when the high bit is set, otherwise octal padded with spaces/NULs. */
function numeric(b: Buffer, off: number, len: number, what: string): number {
  if (b[off] & 0x80) {
    const inv = b[off] & 0x40 ? 0xff : 0;
    let x = 0;
    for (let i = 0; i < len; i++) {
      let c = b[off + i] ^ inv;
      if (i === 0) c &= 0x7f;
      x = x * 256 + c;
      if (x > Number.MAX_SAFE_INTEGER) throw tarError(`${what} field overflows`);
    }
    return inv ? -x - 1 : x;
  }
  let start = off;
  let end = off + len;
  while (start < end && (b[start] === 0x20 || b[start] === 0)) start++;
  while (end > start && (b[end - 1] === 0x20 || b[end - 1] === 0)) end--;
  if (start === end) return 0;
  const nul = b.indexOf(0, start);
  const s = b.toString('latin1', start, nul >= 0 && nul < end ? nul : end);
  if (!/^[0-7]+$/.test(s)) throw tarError(`invalid ${what} field ${JSON.stringify(s)}`);
  return parseInt(s, 8);
}

function isZeroBlock(b: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

/** Go's checksum rule: the stored value may be the unsigned or the signed byte sum. */
function checksumMatches(b: Buffer): boolean {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i];
    unsigned += c;
    signed += c < 0x80 ? c : c - 0x100;
  }
  let stored: number;
  try {
    stored = numeric(b, 148, 8, 'checksum');
  } catch {
    return false;
  }
  return stored === unsigned || stored === signed;
}

type Format = 'v7' | 'ustar' | 'star' | 'gnu';

function formatOf(b: Buffer): Format {
  const magic = b.toString('latin1', 257, 263);
  if (magic === 'ustar\0') return b.toString('latin1', 508, 512) === 'tar\0' ? 'star' : 'ustar';
  if (magic === 'ustar ' && b.toString('latin1', 263, 265) === ' \0') return 'gnu';
  return 'v7';
}

/** PAX time: `[-]seconds[.fraction]`. */
function paxTime(v: string, key: string): number {
  if (!/^-?\d+(\.\d+)?$/.test(v)) throw tarError(`invalid PAX ${key} ${JSON.stringify(v)}`);
  return Number(v);
}

function paxInt(v: string, key: string): number {
  if (!/^\d+$/.test(v)) throw tarError(`invalid PAX ${key} ${JSON.stringify(v)}`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw tarError(`PAX ${key} ${v} out of range`);
  return n;
}

/** `"<len> <key>=<value>\n"` records; values stay raw bytes. */
function parsePax(body: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let off = 0;
  while (off < body.length) {
    const space = body.indexOf(0x20, off);
    const lenText = space > off ? body.toString('latin1', off, space) : '';
    const len = /^\d+$/.test(lenText) ? Number(lenText) : NaN;
    if (!(len > space - off + 1) || off + len > body.length || body[off + len - 1] !== 0x0a) throw tarError('invalid PAX record');
    const eq = body.indexOf(0x3d, space + 1);
    if (eq < 0 || eq >= off + len - 1 || eq === space + 1) throw tarError('invalid PAX record');
    records.set(body.toString('utf8', space + 1, eq), Buffer.from(body.subarray(eq + 1, off + len - 1)));
    off += len;
  }
  return records;
}

const XATTR_PREFIX = 'SCHILY.xattr.';

export class TarReader {
  private state: 'header' | 'data' | 'special' | 'skip' | 'end' = 'header';
  private readonly block = Buffer.alloc(BLOCK);
  private blockFill = 0;
  /** Bytes left of the current data, special body or skip. */
  private remaining = 0;
  /** Bytes of padding to skip once `remaining` reaches 0 in the data or special state. */
  private pad = 0;
  private sink: EntrySink | undefined;
  private specialType = '';
  private specialParts: Buffer[] = [];
  /** What PAX and GNU long-name headers say about the next entry. */
  private pax: Map<string, Buffer> | undefined;
  private longName: string | undefined;
  private longLink: string | undefined;
  private zeroBlocks = 0;

  constructor(private readonly handler: EntryHandler) {}

  /** True once the end-of-archive marker (two zero blocks) has been read; later bytes are ignored. */
  get ended(): boolean {
    return this.state === 'end';
  }

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && this.state !== 'end') {
      const avail = chunk.length - off;
      switch (this.state) {
        case 'header': {
          const n = Math.min(BLOCK - this.blockFill, avail);
          chunk.copy(this.block, this.blockFill, off, off + n);
          this.blockFill += n;
          off += n;
          if (this.blockFill === BLOCK) {
            this.blockFill = 0;
            this.header();
          }
          break;
        }
        case 'data': {
          const n = Math.min(this.remaining, avail);
          this.sink?.write(chunk.subarray(off, off + n));
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) this.endData();
          break;
        }
        case 'special': {
          const n = Math.min(this.remaining, avail);
          this.specialParts.push(Buffer.from(chunk.subarray(off, off + n)));
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) this.endSpecial();
          break;
        }
        case 'skip': {
          const n = Math.min(this.remaining, avail);
          off += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = 'header';
          break;
        }
      }
    }
  }

  /** The stream ended: fine at an entry boundary (with or without the end marker), else truncated. */
  finish(): void {
    if (this.state === 'end' || (this.state === 'header' && this.blockFill === 0)) return;
    throw tarError('unexpected EOF');
  }

  private header(): void {
    const b = this.block;
    if (isZeroBlock(b)) {
      if (++this.zeroBlocks === 2) this.state = 'end';
      return;
    }
    // Go: a zero block must be followed by another (the end marker), not by a header.
    if (this.zeroBlocks > 0) throw tarError('invalid tar header');
    if (!checksumMatches(b)) throw tarError('invalid tar header (checksum mismatch)');
    const format = formatOf(b);
    const type = b[156] === 0 ? '0' : String.fromCharCode(b[156]);
    const size = numeric(b, 124, 12, 'size');
    if (size < 0) throw tarError(`negative size ${size}`);

    if (SPECIAL.has(type)) {
      if (size > MAX_SPECIAL) throw tarError(`${type} header of ${size} bytes is too large`);
      this.specialType = type;
      this.specialParts = [];
      this.remaining = size;
      this.pad = padding(size);
      if (size === 0) this.endSpecial();
      else this.state = 'special';
      return;
    }

    let name = field(b, 0, 100);
    let atime: number | undefined;
    if (format === 'ustar' || format === 'star') {
      const prefix = field(b, 345, format === 'star' ? 131 : 155);
      if (prefix) name = `${prefix}/${name}`;
      if (format === 'star') atime = numeric(b, 476, 12, 'atime');
    } else if (format === 'gnu' && b[345] !== 0) {
      atime = numeric(b, 345, 12, 'atime');
    }
    const header: TarHeader = {
      name: this.longName ?? name,
      type,
      mode: numeric(b, 100, 8, 'mode') & 0o7777,
      uid: numeric(b, 108, 8, 'uid'),
      gid: numeric(b, 116, 8, 'gid'),
      size,
      mtime: numeric(b, 136, 12, 'mtime'),
      atime,
      linkname: this.longLink ?? field(b, 157, 100),
      devmajor: format === 'v7' ? 0 : numeric(b, 329, 8, 'devmajor'),
      devminor: format === 'v7' ? 0 : numeric(b, 337, 8, 'devminor'),
      xattrs: new Map(),
    };
    if (this.pax) this.applyPax(header, this.pax);
    this.pax = this.longName = this.longLink = undefined;
    // Legacy archives mark directories with a trailing slash on a '\0' (old regular) entry.
    if (b[156] === 0 && header.name.endsWith('/')) header.type = '5';
    if (HEADER_ONLY.has(header.type)) header.size = 0;

    this.sink = this.handler.entry(header);
    this.remaining = header.size;
    this.pad = padding(header.size);
    if (header.size === 0) this.endData();
    else this.state = 'data';
  }

  private applyPax(h: TarHeader, pax: Map<string, Buffer>): void {
    for (const [key, raw] of pax) {
      if (key.startsWith(XATTR_PREFIX)) {
        h.xattrs.set(key.slice(XATTR_PREFIX.length), raw);
        continue;
      }
      const v = raw.toString('utf8');
      switch (key) {
        case 'path':
          h.name = v;
          break;
        case 'linkpath':
          h.linkname = v;
          break;
        case 'size':
          h.size = paxInt(v, key);
          break;
        case 'uid':
          h.uid = paxInt(v, key);
          break;
        case 'gid':
          h.gid = paxInt(v, key);
          break;
        case 'mtime':
          h.mtime = paxTime(v, key);
          break;
        case 'atime':
          h.atime = paxTime(v, key);
          break;
        default:
          // Go expands GNU sparse files; writing their map as content would corrupt the file.
          if (key.startsWith('GNU.sparse.')) throw tarError(`entry ${JSON.stringify(h.name)}: GNU sparse files are not supported`);
      }
    }
  }

  private endData(): void {
    const sink = this.sink;
    this.sink = undefined;
    sink?.end();
    this.afterBody();
  }

  private endSpecial(): void {
    const body = Buffer.concat(this.specialParts);
    this.specialParts = [];
    switch (this.specialType) {
      case 'x':
        this.pax = parsePax(body);
        break;
      case 'L':
        this.longName = field(body, 0, body.length);
        break;
      case 'K':
        this.longLink = field(body, 0, body.length);
        break;
      // 'g' (PAX global header): Go hands it out as an entry that containerd ignores.
    }
    this.afterBody();
  }

  private afterBody(): void {
    this.remaining = this.pad;
    this.pad = 0;
    this.state = this.remaining > 0 ? 'skip' : 'header';
  }
}
