// Tokenizer for containerd's filter language (pkg/filters/scanner.go).
//
// It follows containerd's scanner step for step rather than being a fresh design, because the
// token boundaries decide which filters are accepted and the positions decide where an error
// message points. Positions are UTF-16 indices into the input (containerd uses UTF-8 byte
// offsets; the two agree for ASCII input).

/** `peek()` result at the end of the input. */
export const EOF = -1;
/** `peek()` result for a rune containerd refuses: NUL, or one that is not valid text. */
export const ILLEGAL = -2;

export type TokenKind =
  | 'eof'
  | 'field' // [A-Za-z0-9_]+
  | 'separator' // `.` or `,`
  | 'operator' // a run of `=`, `!`, `~` (the parser decides which runs are supported)
  | 'value' // unquoted text after an operator, up to whitespace or `,`
  | 'quoted' // a well-formed "…", /…/ or |…| literal, still quoted
  | 'illegal' // a malformed literal or refused rune; `Scanner.err` says why
  | 'unexpected'; // any other rune where a token should start

export interface Token {
  kind: TokenKind;
  /** Index of the token's first character (of the input length at the end). */
  pos: number;
  /** The token's source text; empty for eof, unexpected and refused runes. */
  text: string;
}

const NUL = 0x00;
const LF = 0x0a;
const BACKSLASH = 0x5c;
const REPLACEMENT = 0xfffd;

// Go's unicode.IsSpace is exactly the Unicode White_Space property (JS's \s differs: it
// includes U+FEFF and misses U+0085).
const SPACE = /^\p{White_Space}$/u;
// Go accepts letters, marks, numbers, punctuation and symbols in unquoted values (IsGraphic
// without its space separators, which IsSpace excludes anyway).
const VALUE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;
const FIELD = /^[A-Za-z0-9_]$/;

const is = (re: RegExp, ch: number): boolean => ch >= 0 && re.test(String.fromCodePoint(ch));
const isSpace = (ch: number): boolean => is(SPACE, ch);
const isFieldRune = (ch: number): boolean => is(FIELD, ch);
const isValueRune = (ch: number): boolean => ch !== 0x2c /* , */ && !isSpace(ch) && is(VALUE, ch);
const isSeparatorRune = (ch: number): boolean => ch === 0x2e /* . */ || ch === 0x2c /* , */;
const isOperatorRune = (ch: number): boolean => ch === 0x3d /* = */ || ch === 0x21 /* ! */ || ch === 0x7e; /* ~ */
// `/` and `|` start a literal anywhere; only the parser restricts them to `~=` values. That is
// why an unquoted `labels.ns/key` fails with "quoted literal not terminated".
const isQuoteRune = (ch: number): boolean => ch === 0x22 /* " */ || ch === 0x2f /* / */ || ch === 0x7c; /* | */

/** Value of a hex digit; 16 (too big for any base) for anything else. */
function digitValue(ch: number): number {
  if (ch >= 0x30 && ch <= 0x39) return ch - 0x30;
  if (ch >= 0x61 && ch <= 0x66) return ch - 0x61 + 10;
  if (ch >= 0x41 && ch <= 0x46) return ch - 0x41 + 10;
  return 16;
}

export class Scanner {
  private readonly input: string;
  /** Start of the rune read last. */
  private pos = 0;
  /** Start of the next unread rune. */
  private ppos = 0;
  /** Set by an operator: the next plain token is a value, which may hold `.`, `:`, `/`, `=`… */
  private afterOperator = false;
  private firstError = '';

  constructor(input: string) {
    this.input = input;
  }

  /** Why the scanner produced an illegal token. Like containerd's, the first error sticks. */
  get err(): string {
    return this.firstError;
  }

  /** Index of the next unread rune. */
  get offset(): number {
    return this.ppos;
  }

  /** The next rune without consuming it (no whitespace skipping): a code point, EOF or ILLEGAL. */
  peek(): number {
    const { pos, ppos } = this;
    const ch = this.next();
    this.pos = pos;
    this.ppos = ppos;
    return ch;
  }

  /** Consumes and returns the next token, skipping whitespace before it. */
  scan(): Token {
    let ch = this.next();
    while (isSpace(ch)) ch = this.next();
    const pos = this.pos;
    const token = (kind: TokenKind): Token => ({ kind, pos, text: this.input.slice(pos, this.ppos) });

    if (ch === EOF) return { kind: 'eof', pos, text: '' };
    if (ch === ILLEGAL) return { kind: 'illegal', pos, text: '' };
    if (isQuoteRune(ch)) return token(this.scanQuoted(ch) ? 'quoted' : 'illegal');
    if (isSeparatorRune(ch)) {
      this.afterOperator = false;
      return token('separator');
    }
    if (isOperatorRune(ch)) {
      while (isOperatorRune(this.peek())) this.next();
      this.afterOperator = true;
      return token('operator');
    }
    // Checked before field runes, and without testing the first rune, as containerd does.
    if (this.afterOperator) {
      while (isValueRune(this.peek())) this.next();
      this.afterOperator = false;
      return token('value');
    }
    if (isFieldRune(ch)) {
      while (isFieldRune(this.peek())) this.next();
      return token('field');
    }
    return { kind: 'unexpected', pos, text: '' };
  }

  private next(): number {
    this.pos = this.ppos;
    if (this.ppos >= this.input.length) return EOF;
    const ch = this.input.codePointAt(this.ppos)!;
    this.ppos += ch > 0xffff ? 2 : 1;
    // Go decodes UTF-8 and refuses what decodes to U+FFFD; the JS equivalents of invalid
    // UTF-8 are lone surrogates.
    if (ch === REPLACEMENT || (ch >= 0xd800 && ch <= 0xdfff)) return this.refuse('rune error');
    if (ch === NUL) return this.refuse('unexpected null');
    return ch;
  }

  private refuse(msg: string): number {
    this.fail(msg);
    return ILLEGAL;
  }

  private fail(msg: string): void {
    if (this.firstError === '') this.firstError = msg;
  }

  /** Reads up to and including the closing `quote`; false if the literal is malformed. */
  private scanQuoted(quote: number): boolean {
    let legal = true;
    let ch = this.next();
    while (ch !== quote) {
      if (ch === LF || ch < 0) {
        this.fail('quoted literal not terminated');
        return false;
      }
      if (ch === BACKSLASH) {
        const escape = this.scanEscape(quote);
        ch = escape.next;
        legal &&= escape.legal;
      } else {
        ch = this.next();
      }
    }
    return legal;
  }

  /** Reads an escape after its backslash; returns the rune after it. */
  private scanEscape(quote: number): { next: number; legal: boolean } {
    const ch = this.next();
    switch (ch) {
      case 0x61: // a
      case 0x62: // b
      case 0x66: // f
      case 0x6e: // n
      case 0x72: // r
      case 0x74: // t
      case 0x76: // v
      case BACKSLASH:
      case quote:
        return { next: this.next(), legal: true };
      case 0x78: // x
        return this.scanDigits(this.next(), 16, 2);
      case 0x75: // u
        return this.scanDigits(this.next(), 16, 4);
      case 0x55: // U
        return this.scanDigits(this.next(), 16, 8);
      default:
        if (ch >= 0x30 && ch <= 0x37) return this.scanDigits(ch, 8, 3); // \ooo
        this.fail('illegal escape sequence');
        // The escaped rune is handed back unconsumed so the literal still ends at its quote.
        return { next: ch, legal: false };
    }
  }

  private scanDigits(first: number, base: number, count: number): { next: number; legal: boolean } {
    let ch = first;
    let n = count;
    for (; n > 0 && digitValue(ch) < base; n--) ch = this.next();
    if (n > 0) {
      this.fail('illegal numeric escape sequence');
      return { next: ch, legal: false };
    }
    return { next: ch, legal: true };
  }
}

/**
 * Decodes a literal the scanner returned as `quoted` (so its delimiters and escapes are already
 * known to be well-formed). Like Go's strconv.Unquote, `\xHH` and `\ooo` produce raw bytes and
 * the result is read as UTF-8 (so `"\xc3\xa9"` is "é"). Returns undefined for the two errors
 * the scanner cannot see: an octal escape above \377 and a \U escape above U+10FFFF.
 */
export function decodeQuoted(literal: string): string | undefined {
  const body = literal.slice(1, -1);
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  // A lone surrogate (from \uD800) is encoded as U+FFFD, as Go's utf8.EncodeRune does.
  const pushRune = (cp: number): void => void bytes.push(...encoder.encode(String.fromCodePoint(cp)));

  for (let i = 0; i < body.length; ) {
    const ch = body.codePointAt(i)!;
    if (ch !== BACKSLASH) {
      pushRune(ch);
      i += ch > 0xffff ? 2 : 1;
      continue;
    }
    const escape = body[i + 1];
    i += 2;
    switch (escape) {
      case 'a': bytes.push(0x07); break;
      case 'b': bytes.push(0x08); break;
      case 'f': bytes.push(0x0c); break;
      case 'n': bytes.push(0x0a); break;
      case 'r': bytes.push(0x0d); break;
      case 't': bytes.push(0x09); break;
      case 'v': bytes.push(0x0b); break;
      case 'x':
        bytes.push(parseInt(body.slice(i, i + 2), 16));
        i += 2;
        break;
      case 'u':
        pushRune(parseInt(body.slice(i, i + 4), 16));
        i += 4;
        break;
      case 'U': {
        const cp = parseInt(body.slice(i, i + 8), 16);
        if (cp > 0x10ffff) return undefined;
        pushRune(cp);
        i += 8;
        break;
      }
      case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
        const byte = parseInt(body.slice(i - 1, i + 2), 8);
        if (byte > 0xff) return undefined;
        bytes.push(byte);
        i += 2;
        break;
      }
      default:
        // `\\` or an escaped delimiter: the rune itself.
        bytes.push(escape.charCodeAt(0));
    }
  }
  // ignoreBOM keeps a leading U+FEFF, which is part of the value, not a byte-order mark.
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(Uint8Array.from(bytes));
}
