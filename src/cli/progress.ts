// A pull's progress as `berth pull` shows it, built from the pull's event stream: on a terminal
// one line per blob (kind, short digest, state, a bar, bytes/total) redrawn in place with ANSI
// escapes, as `ctr images pull` does; otherwise a plain line whenever a blob changes state. The
// frame redrawn in place and the bar serve `berth push` as well.
import type { Pull, PullEvent } from '../client/types.js';
import { humanSize } from './table.js';
import { isConfig, isIndex, isLayerType, isManifest } from '../oci/mediatypes.js';

interface Blob {
  digest: string;
  mediaType?: string;
  size: number;
  offset: number;
  state: string;
  /** A layer's unpacking: extracting, unpacked, exists. */
  unpack?: string;
}

const finalStates = new Set(['done', 'failed', 'cancelled', 'interrupted']);

/**
 * True for the event that ends a pull's stream (a blob's `done` has a digest; the pull's has
 * none); `interrupted`: a restart stopped the pull and the server did not resume it.
 */
export function isFinal(e: PullEvent): boolean {
  return finalStates.has(e.type) && e.digest === undefined;
}

/** A blob's kind from its media type (`layer`, `config`, ...); undefined if unknown. */
export function blobKind(mediaType: string | undefined): string | undefined {
  if (!mediaType) return undefined;
  if (isIndex(mediaType)) return 'index';
  if (isManifest(mediaType)) return 'manifest';
  if (isConfig(mediaType)) return 'config';
  if (isLayerType(mediaType)) return 'layer';
  return 'blob';
}

/** `sha256:0123456789abcdef...` → `sha256:0123456789ab` */
export const shortDigest = (d: string): string => d.replace(/^([^:]+:)(.{12}).*$/, '$1$2');

/**
 * A blob's state in the terminal's state column: its download's, then its unpacking's, so that a
 * layer shows `extracting` and `unpacked` there as it does in the plain lines.
 */
function ttyState(b: Blob): string {
  if (b.unpack === 'extracting') return 'extracting'; // while downloading too: the bar shows the download
  if (b.unpack && (b.state === 'done' || b.state === 'exists')) return b.unpack === 'exists' ? 'snapshot exists' : b.unpack;
  return b.state;
}

/** `|+++++-----|`: `offset` of `size` as a bar `width` wide inside its ends. */
export function bar(offset: number, size: number, width: number): string {
  const filled = size > 0 ? Math.min(width, Math.floor((offset / size) * width)) : width;
  return '|' + '+'.repeat(filled) + '-'.repeat(width - filled) + '|';
}

/** Seconds with two decimals and a speed in MB/s (10^6 bytes, as network speeds are quoted). */
export function rate(bytes: number, ms: number): string {
  const s = Math.max(ms, 1) / 1000;
  return `${s.toFixed(2)} s (${(bytes / 1e6 / s).toFixed(1)} MB/s)`;
}

/** Lines redrawn in place on a terminal: each frame overwrites the last, cut to the width. */
export class TerminalFrame {
  /** Lines of the last frame, to move up over. */
  private drawn = 0;

  constructor(private readonly out: NodeJS.WritableStream) {}

  draw(lines: string[], columns: number): void {
    let text = this.drawn > 0 ? `\x1b[${this.drawn}F` : '';
    for (const l of lines) text += `\x1b[2K${l.length > columns - 1 ? l.slice(0, columns - 1) : l}\n`;
    this.out.write(`${text}\x1b[J`);
    this.drawn = lines.length;
  }
}

export interface ProgressOptions {
  out: NodeJS.WriteStream | NodeJS.WritableStream;
  /** Redraw in place (a terminal) or print a line per state change. */
  tty: boolean;
  /** Terminal size, for a TTY. */
  columns?: () => number;
  rows?: () => number;
  now?: () => number;
}

export class PullProgress {
  private readonly blobs = new Map<string, Blob>();
  private ref = '';
  private target?: { digest: string; mediaType: string; size: number };
  private state = 'running';
  private bytes = 0;
  private started: number;
  private readonly frameOnTty: TerminalFrame;
  /** The stream's first message has been seen (a second one comes after re-attaching). */
  private viewed = false;
  private dirty = false;
  private lastDraw = 0;
  private timer?: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(private readonly opts: ProgressOptions) {
    this.now = opts.now ?? Date.now;
    this.started = this.now();
    this.frameOnTty = new TerminalFrame(opts.out);
    if (opts.tty) {
      opts.out.write('\x1b[?25l'); // hide the cursor while redrawing
      // The elapsed time moves even when no bytes arrive.
      this.timer = setInterval(() => this.draw(true), 500);
      this.timer.unref();
    }
  }

  /**
   * The pull as it was when the stream started (`event: pull`) — again after re-attaching to it,
   * when only what changed meanwhile is said.
   */
  view(p: Pull): void {
    const again = this.viewed;
    this.viewed = true;
    this.ref = p.ref;
    this.state = p.state;
    this.bytes = p.bytesFetched;
    const started = Date.parse(p.startedAt);
    if (!Number.isNaN(started)) this.started = started;
    if (!this.opts.tty && !again) this.opts.out.write(`pulling ${p.ref} (pull ${p.id})\n`);
    for (const b of p.blobs) {
      const before = this.blobs.get(b.digest);
      const blob: Blob = { ...b, ...(before?.unpack ? { unpack: before.unpack } : {}) };
      this.blobs.set(b.digest, blob);
      if (!this.opts.tty && b.state !== 'waiting' && (!again || before?.state !== b.state)) this.line(blob, this.describe(blob));
    }
    this.changed();
  }

  /** One event of the stream. */
  event(e: PullEvent): void {
    if (isFinal(e)) {
      this.state = e.type;
      return this.changed(true);
    }
    switch (e.type) {
      case 'resolving':
        if (!this.opts.tty) this.opts.out.write(`resolving ${e.ref}\n`);
        break;
      case 'resolved':
        this.target = { digest: e.digest!, mediaType: e.mediaType!, size: e.size! };
        if (!this.opts.tty) this.opts.out.write(`resolved ${e.digest} (${blobKind(e.mediaType) ?? e.mediaType}, ${humanSize(e.size ?? 0)})\n`);
        break;
      case 'downloading': {
        const b = this.blob(e);
        b.state = 'downloading';
        b.offset = e.offset ?? 0;
        // From the upstream unless a peer of the fleet is named.
        const from = e.source && e.source !== 'upstream' ? ` from ${e.source}` : '';
        if (!this.opts.tty) this.line(b, b.offset > 0 ? `downloading${from} from ${humanSize(b.offset)} of ${humanSize(b.size)}` : `downloading ${humanSize(b.size)}${from}`);
        break;
      }
      case 'progress': {
        const b = this.blob(e);
        const before = b.offset;
        b.offset = e.offset ?? b.offset;
        if (b.offset > before) this.bytes += b.offset - before;
        break;
      }
      case 'done':
      case 'exists': {
        const b = this.blob(e);
        // A blob two manifests share is reached twice: said once.
        const again = b.state === 'done' || b.state === 'exists';
        if (!again) b.state = e.type;
        b.offset = b.size;
        if (!this.opts.tty && !again) this.line(b, e.type === 'done' ? `done ${humanSize(b.size)}` : 'exists (already stored)');
        break;
      }
      case 'unpack': {
        const b = this.blob(e);
        b.unpack = e.state;
        if (!this.opts.tty) {
          const what = e.state === 'extracting' ? 'extracting' : e.state === 'exists' ? `snapshot exists (${shortDigest(e.chainId ?? '')})` : `unpacked (${shortDigest(e.chainId ?? '')})`;
          this.line(b, what);
        }
        break;
      }
      default:
        return;
    }
    this.changed();
  }

  /** Draws the last frame (TTY) and restores the cursor. */
  finish(final?: Pull): void {
    if (final) {
      this.state = final.state;
      this.bytes = final.bytesFetched;
      for (const b of final.blobs) this.blobs.set(b.digest, { ...this.blobs.get(b.digest), ...b });
    }
    clearInterval(this.timer);
    if (this.opts.tty) {
      this.draw(true);
      this.opts.out.write('\x1b[?25h');
    }
  }

  private describe(b: Blob): string {
    if (b.unpack && b.unpack !== 'extracting' && (b.state === 'done' || b.state === 'exists')) return `${b.unpack} ${humanSize(b.size)}`;
    const state = b.unpack === 'extracting' && b.state === 'downloading' ? 'downloading+extracting' : b.unpack === 'extracting' ? 'extracting' : b.state;
    return b.state === 'done' || b.state === 'exists'
      ? `${state === 'extracting' ? 'extracting' : b.state} ${humanSize(b.size)}`
      : `${state} ${humanSize(b.offset)}/${humanSize(b.size)}`;
  }

  private line(b: Blob, what: string): void {
    const kind = blobKind(b.mediaType ?? (this.target?.digest === b.digest ? this.target.mediaType : undefined));
    this.opts.out.write(`${kind ? `${kind} ` : ''}${shortDigest(b.digest)} ${what}\n`);
  }

  private blob(e: PullEvent): Blob {
    let b = this.blobs.get(e.digest!);
    if (!b) {
      b = { digest: e.digest!, size: e.size ?? 0, offset: 0, state: 'waiting' };
      if (this.target && this.target.digest === e.digest) b.mediaType = this.target.mediaType;
      this.blobs.set(e.digest!, b);
    }
    if (e.size !== undefined) b.size = e.size;
    if (e.mediaType !== undefined) b.mediaType = e.mediaType;
    return b;
  }

  private changed(now = false): void {
    this.dirty = true;
    this.draw(now);
  }

  /** Redraws at most every 100 ms (or now). */
  private draw(force: boolean): void {
    if (!this.opts.tty) return;
    const t = this.now();
    if (!force && (!this.dirty || t - this.lastDraw < 100)) return;
    this.dirty = false;
    this.lastDraw = t;
    // A terminal that reports no size (0×0, as some ptys and CI consoles do) gets the usual 80×24.
    const columns = Math.max(40, this.opts.columns?.() || 80);
    const rows = Math.max(4, this.opts.rows?.() || 24);
    this.frameOnTty.draw(this.frame(rows - 2, columns - 1), columns);
  }

  /** The lines of one frame: a line per blob (finished ones folded when they do not fit), then totals. */
  private frame(maxLines: number, width: number): string[] {
    let blobs = [...this.blobs.values()];
    const lines: string[] = [];
    if (blobs.length + 2 > maxLines) {
      const finished = blobs.filter((b) => (b.state === 'done' || b.state === 'exists') && b.unpack !== 'extracting');
      blobs = blobs.filter((b) => !finished.includes(b)).slice(0, Math.max(0, maxLines - 3));
      lines.push(`${finished.length} blobs done (${humanSize(finished.reduce((n, b) => n + b.size, 0))})`);
    }
    const kindWidth = 8;
    for (const b of blobs) {
      const kind = blobKind(b.mediaType ?? (this.target?.digest === b.digest ? this.target.mediaType : undefined)) ?? '';
      // The bar takes what the line leaves (at most 30), so that the bytes stay on screen.
      const head = `${kind.padEnd(kindWidth)} ${shortDigest(b.digest).padEnd(19)}  ${ttyState(b).padEnd(15)} `;
      const bytes = ` ${humanSize(b.offset)}/${humanSize(b.size)}`;
      const barWidth = Math.min(30, width - head.length - bytes.length - 2);
      lines.push(`${head}${barWidth >= 4 ? bar(b.offset, b.size, barWidth) : ''}${bytes}`);
    }
    const elapsed = this.now() - this.started;
    const state = this.state === 'running' ? (this.target || this.blobs.size > 0 ? 'fetching' : 'resolving') : this.state;
    lines.push(`${this.ref}  ${state}  elapsed ${(elapsed / 1000).toFixed(1)} s  fetched ${humanSize(this.bytes)}`);
    return lines;
  }
}
