// Writes a tar as a sequence of chunks: a header, the body as it streams, the padding. Only what
// an image archive holds — regular files and directories with ASCII names — so a few lines of
// ustar (PAX for a name past 100 bytes, base-256 for a size past 8 GiB, as Go's archive/tar
// reads both) rather than a dependency: the chunks are yielded to the caller's stream, so
// back-pressure is the consumer's and no entry is ever held whole.
const BLOCK = 512;
const zeroBlocks = Buffer.alloc(2 * BLOCK);

export interface TarEntryHeader {
  name: string;
  type: 'file' | 'dir';
  mode: number;
  size: number;
}

function octal(b: Buffer, off: number, len: number, value: number): void {
  b.write(value.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
}

/** Size as ustar octal when it fits in 11 digits, else GNU base-256 (Go reads both). */
function sizeField(b: Buffer, off: number, value: number): void {
  if (value < 0o77777777777) return octal(b, off, 12, value);
  b[off] = 0x80;
  let v = BigInt(value);
  for (let i = off + 11; i > off; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

function block(name: string, type: string, mode: number, size: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(name, 0, 100, 'utf8');
  octal(b, 100, 8, mode);
  octal(b, 108, 8, 0);
  octal(b, 116, 8, 0);
  sizeField(b, 124, size);
  octal(b, 136, 12, 0); // mtime: the epoch, as containerd's exporter (reproducible archives)
  b.write('        ', 148, 8, 'latin1');
  b.write(type, 156, 1, 'latin1');
  b.write('ustar\u000000', 257, 8, 'latin1');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i];
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return b;
}

/** A PAX record `"<len> path=<name>\n"`, whose length counts its own digits. */
function paxPath(name: string): Buffer {
  const rest = ` path=${name}\n`;
  const restLength = Buffer.byteLength(rest);
  let len = restLength + 1;
  while (String(len).length + restLength !== len) len = String(len).length + restLength;
  return Buffer.from(`${len}${rest}`, 'utf8');
}

export const padding = (size: number): Buffer => zeroBlocks.subarray(0, (BLOCK - (size % BLOCK)) % BLOCK);

/** The header block(s) of one entry; a name longer than ustar's 100 bytes goes in a PAX header. */
export function entryHeader(h: TarEntryHeader): Buffer {
  const name = h.type === 'dir' && !h.name.endsWith('/') ? `${h.name}/` : h.name;
  const size = h.type === 'dir' ? 0 : h.size;
  const own = block(name.slice(0, 100), h.type === 'dir' ? '5' : '0', h.mode, size);
  if (Buffer.byteLength(name) <= 100) return own;
  const pax = paxPath(name);
  return Buffer.concat([block(`PaxHeaders/${name.slice(-80)}`, 'x', 0o644, pax.length), pax, padding(pax.length), own]);
}

/** The end-of-archive marker: two zero blocks. */
export const endOfArchive = (): Buffer => zeroBlocks;
