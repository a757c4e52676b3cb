// Parser for containerd's filter language (pkg/filters/parser.go):
//
//   selectors := selector ("," selector)*          all must match
//   selector  := fieldpath [operator value]        no operator: the field is present
//   fieldpath := field ("." field)*
//   field     := quoted | [A-Za-z0-9_]+
//   operator  := "==" | "!=" | "~="
//   value     := quoted | [^\s,]+
//
// Error messages reproduce containerd's byte for byte, since clients match on them.

import { invalidArgument, type BerthError } from '../errors.js';
import { EOF, ILLEGAL, Scanner, decodeQuoted, type Token } from './scanner.js';

export type Operator = 'present' | '==' | '!=' | '~=';

export interface Selector {
  fieldpath: string[];
  operator: Operator;
  /** Unquoted; empty for `present`. */
  value: string;
}

const COMMA = 0x2c;
const DOT = 0x2e;

/**
 * Parses one filter string into the selectors that must all match. The empty string has no
 * selectors (matches everything), as containerd special-cases it.
 * Throws BerthError invalid_argument with containerd's message on a syntax error.
 */
export function parseSelectors(input: string): Selector[] {
  return input === '' ? [] : new Parser(input).selectors();
}

class Parser {
  private readonly input: string;
  private readonly scanner: Scanner;

  constructor(input: string) {
    this.input = input;
    this.scanner = new Scanner(input);
  }

  selectors(): Selector[] {
    const selectors = [this.selector()];
    for (;;) {
      // A raw lookahead, so whitespace after a selector is "unexpected input" (as in containerd).
      const ch = this.scanner.peek();
      if (ch === EOF) return selectors;
      if (ch !== COMMA) {
        // Go prints a refused rune as U+FFFD.
        const shown = ch === ILLEGAL ? '\uFFFD' : String.fromCodePoint(ch);
        throw this.error(this.scanner.offset, `unexpected input: ${shown}`);
      }
      this.scanner.scan();
      selectors.push(this.selector());
    }
  }

  private selector(): Selector {
    const fieldpath = this.fieldpath();
    const ch = this.scanner.peek();
    if (ch === COMMA || ch === EOF) return { fieldpath, operator: 'present', value: '' };
    const operator = this.operator();
    // `/re/` and `|re|` exist so regexes need not escape `"`; elsewhere only `"` quotes.
    const value = this.value(operator === '~=');
    return { fieldpath, operator, value };
  }

  private fieldpath(): string[] {
    const path = [this.field()];
    while (this.scanner.peek() === DOT) {
      this.scanner.scan();
      path.push(this.field());
    }
    return path;
  }

  private field(): string {
    const token = this.scanner.scan();
    switch (token.kind) {
      case 'field':
        return token.text;
      case 'quoted':
        return this.unquote(token, false);
      case 'illegal':
        throw this.error(token.pos, this.scanner.err);
      default:
        throw this.error(token.pos, 'expected field or quoted');
    }
  }

  private operator(): Exclude<Operator, 'present'> {
    const token = this.scanner.scan();
    switch (token.kind) {
      case 'operator':
        if (token.text === '==' || token.text === '!=' || token.text === '~=') return token.text;
        // Go's %q; the text is only `=`, `!` and `~`, which JSON quotes identically.
        throw this.error(token.pos, `unsupported operator ${JSON.stringify(token.text)}`);
      case 'illegal':
        throw this.error(token.pos, this.scanner.err);
      default:
        throw this.error(token.pos, 'expected an operator ("=="|"!="|"~=")');
    }
  }

  private value(allowAltQuotes: boolean): string {
    const token = this.scanner.scan();
    switch (token.kind) {
      case 'value':
        return token.text;
      case 'quoted':
        return this.unquote(token, allowAltQuotes);
      case 'illegal':
        throw this.error(token.pos, this.scanner.err);
      default:
        throw this.error(token.pos, 'expected value or quoted');
    }
  }

  private unquote(token: Token, allowAltQuotes: boolean): string {
    if (!allowAltQuotes && !token.text.startsWith('"')) {
      throw this.error(token.pos, 'invalid quote encountered');
    }
    const text = decodeQuoted(token.text);
    if (text === undefined) throw this.error(token.pos, 'unquoting failed: quote syntax error');
    return text;
  }

  /** `[before >|char|< after]` marks the offending character; `[input]` means end of input. */
  private error(pos: number, msg: string): BerthError {
    const { input } = this;
    if (pos >= input.length) return invalidArgument(`filters: parse error: [${input}]: ${msg}`);
    const end = pos + (input.codePointAt(pos)! > 0xffff ? 2 : 1);
    const marked = `${input.slice(0, pos)} >|${input.slice(pos, end)}|< ${input.slice(end)}`;
    return invalidArgument(`filters: parse error: [${marked}]: ${msg}`);
  }
}
