// containerd's filter language: a port of pkg/filters/filter_test.go plus the scanner quirks
// that decide which filter strings berth accepts (reference §1.10).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { BerthError } from '../store/errors.js';
import { labelField, parseFilters, type Adaptor, type Filter } from '../store/filters/index.js';

interface Entry {
  name: string;
  other?: string;
  labels?: Record<string, string>;
}

// The corpus of filter_test.go, in the same order so the expected indices carry over.
const corpus: Entry[] = [
  { name: 'foo', labels: { foo: 'true' } },
  { name: 'bar' },
  { name: 'foo', labels: { foo: 'present', 'more complex label': 'present' } },
  { name: 'bar', labels: { bar: 'true' } },
  { name: 'fooer', labels: { 'more complex label with \\ and "': 'present' } },
  { name: 'fooer', labels: { 'more complex label with \\ and ".post': 'present' } },
  { name: 'baz', other: 'too complex, yo' },
  { name: 'bazo', other: 'abc' },
  { name: 'compound', labels: { foo: 'omg_asdf.asdf-qwer' } },
];
const all = corpus.map((_, i) => i);

// Like filter_test.go's adaptor: plain fields are present when non-empty.
function adapt(entry: Entry): Adaptor {
  return ([head, ...rest]) => {
    switch (head) {
      case 'name':
        return { value: entry.name, present: entry.name !== '' };
      case 'other':
        return { value: entry.other ?? '', present: (entry.other ?? '') !== '' };
      case 'labels':
        return labelField(entry.labels, rest);
      default:
        return { value: '', present: false };
    }
  };
}

/** Indices of the corpus entries the filter strings select. */
function select(filters: string[], entries: Entry[] = corpus): number[] {
  const filter = parseFilters(filters);
  return entries.flatMap((entry, i) => (filter(adapt(entry)) ? [i] : []));
}

function assertParseError(filters: string[], message: string): void {
  assert.throws(
    () => parseFilters(filters),
    (err: unknown) => {
      assert.ok(err instanceof BerthError, `expected a BerthError, got ${String(err)}`);
      assert.equal(err.code, 'invalid_argument');
      assert.equal(err.message, message);
      return true;
    },
  );
}

describe('filter_test.go table', () => {
  const cases: Array<{ name: string; input: string; expected: number[] }> = [
    { name: 'Empty', input: '', expected: all },
    { name: 'Present', input: 'name', expected: all },
    { name: 'LabelPresent', input: 'labels.foo', expected: [0, 2, 8] },
    { name: 'NameAndLabelPresent', input: 'labels.foo,name', expected: [0, 2, 8] },
    { name: 'LabelValue', input: 'labels.foo==true', expected: [0] },
    { name: 'LabelValuePunctuated', input: 'labels.foo==omg_asdf.asdf-qwer', expected: [8] },
    { name: 'Name', input: 'name==bar', expected: [1, 3] },
    { name: 'NameNotEqual', input: 'name!=bar', expected: [0, 2, 4, 5, 6, 7, 8] },
    { name: 'NameAndLabelPresent (value)', input: 'name==bar,labels.bar', expected: [3] },
    { name: 'QuotedValue', input: 'other=="too complex, yo"', expected: [6] },
    { name: 'RegexpValue', input: 'other~=[abc]+,name!=foo', expected: [6, 7] },
    { name: 'RegexpQuotedValue', input: 'other~=/[abc]+/,name!=foo', expected: [6, 7] },
    { name: 'RegexpQuotedValue (braces)', input: 'other~=/[abc]{1,2}/,name!=foo', expected: [6, 7] },
    // Valid syntax (the regex is `[abc]{0,1}"/`), but nothing contains `"/`.
    { name: 'RegexpQuotedValueGarbage', input: 'other~=/[abc]{0,1}"\\//,name!=foo', expected: [] },
    { name: 'NameAndLabelValue', input: 'name==bar,labels.bar==true', expected: [3] },
    { name: 'NameAndLabelValueNoMatch', input: 'name==bar,labels.bar==wrong', expected: [] },
    { name: 'LabelQuotedFieldPathPresent', input: 'name==foo,labels."more complex label"', expected: [2] },
    {
      name: 'LabelQuotedFieldPathPresentWithQuoted',
      input: String.raw`labels."more complex label with \\ and \""==present`,
      expected: [4],
    },
    {
      name: 'LabelQuotedFieldPathPresentWithQuotedEmbed',
      input: String.raw`labels."more complex label with \\ and \"".post==present`,
      expected: [5],
    },
  ];
  for (const { name, input, expected } of cases) {
    test(`${name}: ${input}`, () => assert.deepEqual(select([input]), expected));
  }

  const errors: Array<{ name: string; input: string; message: string }> = [
    {
      name: 'LabelValueNoAltQuoting',
      input: 'labels.|foo|==omg_asdf.asdf-qwer',
      message: 'filters: parse error: [labels. >|||< foo|==omg_asdf.asdf-qwer]: invalid quote encountered',
    },
    {
      name: 'LabelQuotedFieldPathPresentWithQuotedEmbedInvalid',
      input: String.raw`labels.?"more complex label with \\ and \"".post==present`,
      message: String.raw`filters: parse error: [labels. >|?|< "more complex label with \\ and \"".post==present]: expected field or quoted`,
    },
    {
      name: 'TrailingComma',
      input: 'name==foo,',
      message: 'filters: parse error: [name==foo,]: expected field or quoted',
    },
    {
      name: 'TrailingFieldSeparator',
      input: 'labels.',
      message: 'filters: parse error: [labels.]: expected field or quoted',
    },
    {
      name: 'MissingValue',
      input: 'image~=,id?=?fbaq',
      message: 'filters: parse error: [image~= >|,|< id?=?fbaq]: expected value or quoted',
    },
    {
      name: 'FieldQuotedLiteralNotTerminated',
      input: 'labels.ns/key==value',
      message: 'filters: parse error: [labels.ns >|/|< key==value]: quoted literal not terminated',
    },
    {
      name: 'ValueQuotedLiteralNotTerminated',
      input: 'labels.key==/value',
      message: 'filters: parse error: [labels.key== >|/|< value]: quoted literal not terminated',
    },
  ];
  for (const { name, input, message } of errors) {
    test(`${name}: ${input}`, () => assertParseError([input], message));
  }
});

describe('matching semantics', () => {
  test('== needs the field present: a present empty value differs from an absent one', () => {
    const withParent = (parent: string | undefined): Adaptor => () =>
      parent === undefined ? { value: '', present: false } : { value: parent, present: true };
    const filter = parseFilters(['parent==""']);
    assert.equal(filter(withParent('')), true);
    assert.equal(filter(withParent(undefined)), false);
  });

  test('!= compares an absent field as "", so it matches objects without the field', () => {
    assert.deepEqual(select(['labels.foo!=true']), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(select(['other!=abc']), [0, 1, 2, 3, 4, 5, 6, 8]);
    // `parent!=""` selects the objects that have a non-empty value.
    assert.deepEqual(select(['other!=""']), [6, 7]);
  });

  test('!= and ~= ignore what an adaptor reports as the value of an absent field', () => {
    const sloppy: Adaptor = () => ({ value: 'leftover', present: false });
    assert.equal(parseFilters(['x!=""'])(sloppy), false);
    assert.equal(parseFilters(['x~=leftover'])(sloppy), false);
  });

  test('~= is unanchored and matches an absent field as ""', () => {
    assert.deepEqual(select(['name~=oo']), [0, 2, 4, 5]);
    assert.deepEqual(select(['name~=^foo$']), [0, 2]);
    assert.deepEqual(select(['other~=^$']), [0, 1, 2, 3, 4, 5, 8]);
  });

  test('|…| quotes a regex that contains / and ,', () => {
    const entries: Entry[] = [{ name: 'docker.io/library/busybox' }, { name: 'quay.io/a,b' }, { name: 'other' }];
    // Only Go escapes are legal inside quotes, so a regex escape needs its backslash doubled.
    assert.deepEqual(select(['name~=|^docker\\\\.io/library/|'], entries), [0]);
    assert.deepEqual(select(['name~=^docker\\.io/library/'], entries), [0]);
    assert.deepEqual(select(['name~=|a,b$|'], entries), [1]);
    assert.deepEqual(select(['name~=/library\\/busybox$/'], entries), [0]);
  });

  test('~= matches by code point, as RE2 matches by rune', () => {
    const entries: Entry[] = [{ name: '牛' }, { name: '😀' }, { name: 'ab' }];
    assert.deepEqual(select(['name~=牛'], entries), [0]);
    assert.deepEqual(select(['name~=^.$'], entries), [0, 1]);
  });

  test('an invalid regex is refused, naming the filter (containerd matches nothing instead)', () => {
    for (const [input, reason] of [
      ['other~=[abc', 'Unterminated character class'],
      ['name==foo,other~=(', 'Unterminated group'],
    ]) {
      assert.throws(
        () => parseFilters(['name==foo', input]),
        (err: BerthError) => {
          assert.equal(err.code, 'invalid_argument');
          assert.match(err.message, new RegExp(`^filters: parse error: \\[${input.replace(/[[(]/g, '\\$&')}\\]: invalid regular expression .*: ${reason}$`));
          return true;
        },
      );
    }
  });

  test('each regex is compiled once, when the filter is parsed', () => {
    const Original = globalThis.RegExp;
    let compiled = 0;
    globalThis.RegExp = class extends Original {
      constructor(pattern: string | RegExp, flags?: string) {
        super(pattern, flags);
        compiled++;
      }
    } as RegExpConstructor;
    try {
      const filter = parseFilters(['name~=^foo', 'other~=c']);
      assert.equal(compiled, 2);
      for (let i = 0; i < 5; i++) for (const entry of corpus) filter(adapt(entry));
      assert.equal(compiled, 2);
    } finally {
      globalThis.RegExp = Original;
    }
  });

  test('commas AND selectors within one string', () => {
    assert.deepEqual(select(['name==foo,labels.foo==present']), [2]);
    assert.deepEqual(select(['name==foo,labels.foo==present,labels."more complex label"']), [2]);
    assert.deepEqual(select(['name==foo,name==bar']), []);
  });
});

describe('parseFilters (ParseAll)', () => {
  test('no strings, or only empty ones, match everything', () => {
    assert.deepEqual(select([]), all);
    assert.deepEqual(select(['']), all);
    assert.deepEqual(select(['', '']), all);
  });

  test('separate strings are OR-ed', () => {
    assert.deepEqual(select(['name==bar', 'other==abc']), [1, 3, 7]);
    assert.deepEqual(select(['labels.foo==true', 'labels.bar==true']), [0, 3]);
    // An empty string among others still matches everything.
    assert.deepEqual(select(['name==nothing', '']), all);
  });

  test('one malformed string fails the whole list', () => {
    assertParseError(['name==bar', 'labels.'], 'filters: parse error: [labels.]: expected field or quoted');
  });

  test('the result is a plain predicate', () => {
    const filter: Filter = parseFilters(['name==foo']);
    assert.equal(filter(adapt(corpus[0])), true);
    assert.equal(filter(adapt(corpus[1])), false);
  });
});

describe('field paths and values', () => {
  interface Blob {
    digest: string;
    labels?: Record<string, string>;
  }
  const blobs: Blob[] = [
    {
      digest: 'sha256:abcd0123',
      labels: { 'containerd.io/gc.root': '2024-01-01T00:00:00Z', 'containerd.io': 'dotted' },
    },
    { digest: 'sha512:ffee', labels: { 'containerd.io/gc.ref.content.l.0': 'sha256:abcd0123' } },
    { digest: 'sha256:9999' },
  ];
  const selectBlobs = (filters: string[]): number[] => {
    const filter = parseFilters(filters);
    return blobs.flatMap((blob, i) => {
      const adaptor: Adaptor = ([head, ...rest]) => {
        if (head === 'digest') return { value: blob.digest, present: true };
        if (head === 'labels') return labelField(blob.labels, rest);
        return { value: '', present: false };
      };
      return filter(adaptor) ? [i] : [];
    });
  };

  test('values may contain : - / . = after the first character', () => {
    assert.deepEqual(selectBlobs(['digest==sha256:abcd0123']), [0]);
    assert.deepEqual(selectBlobs(['labels."containerd.io/gc.ref.content.l.0"==sha256:abcd0123']), [1]);
    assert.deepEqual(select(['name==docker.io/library/busybox:1-x=y'], [{ name: 'docker.io/library/busybox:1-x=y' }]), [0]);
  });

  test('a label key with / or - must be quoted; the quoted part may itself contain dots', () => {
    assert.deepEqual(selectBlobs(['labels."containerd.io/gc.root"']), [0]);
    assert.deepEqual(selectBlobs(['labels."containerd.io/gc.root"==2024-01-01T00:00:00Z']), [0]);
  });

  test('dots alone need no quoting: the rest of the path is re-joined with "."', () => {
    assert.deepEqual(selectBlobs(['labels.containerd.io']), [0]);
    assert.deepEqual(selectBlobs(['labels.containerd.io==dotted']), [0]);
    // A quoted segment and plain segments join the same way.
    assert.deepEqual(selectBlobs(['labels."containerd".io==dotted']), [0]);
  });

  test('field names may start with a digit or contain underscores', () => {
    const labels = { '1': 'one', a_b: 'x' };
    assert.deepEqual(select(['labels.1==one'], [{ name: 'n', labels }]), [0]);
    assert.deepEqual(select(['labels.a_b'], [{ name: 'n', labels }]), [0]);
  });

  test('quoted literals decode Go escapes', () => {
    const cases: Array<[string, string]> = [
      [String.raw`"tab\there"`, 'tab\there'],
      [String.raw`"\a\b\f\n\r\t\v"`, '\x07\b\f\n\r\t\v'],
      [String.raw`"back\\slash"`, 'back\\slash'],
      [String.raw`"say \"hi\""`, 'say "hi"'],
      [String.raw`"\x41\101\u00e9\U0001F600"`, 'AAé😀'],
      // \x and octal escapes are bytes, read back as UTF-8 like a Go string.
      [String.raw`"\xc3\xa9\303\251"`, 'éé'],
      ['"牛 and , and ."', '牛 and , and .'],
      // A leading U+FEFF is kept, written out or escaped.
      ['"\uFEFFx"', '\uFEFFx'],
      [String.raw`"\uFEFFx"`, '\uFEFFx'],
    ];
    for (const [quoted, key] of cases) {
      assert.deepEqual(select([`labels.${quoted}==v`], [{ name: 'n', labels: { [key]: 'v' } }]), [0], quoted);
      assert.deepEqual(select([`labels.k==${quoted}`], [{ name: 'n', labels: { k: key } }]), [0], quoted);
    }
  });

  test('inside /…/ the slash is escaped, and the regex sees the unescaped text', () => {
    assert.deepEqual(select(['name~=/^a\\/b$/'], [{ name: 'a/b' }, { name: 'a\\/b' }]), [0]);
  });

  test('whitespace is skipped before tokens', () => {
    assert.deepEqual(select(['name == bar']), [1, 3]);
    assert.deepEqual(select(['  name==bar']), [1, 3]);
    assert.deepEqual(select(['name==bar,  labels.bar']), [3]);
    assert.deepEqual(select(['labels.\tfoo ==\ttrue']), [0]);
    assert.deepEqual(select(['other== "too complex, yo"']), [6]);
  });
});

describe('labelField', () => {
  test('joins the rest of the path with "." and looks the key up', () => {
    assert.deepEqual(labelField({ 'a.b': 'v' }, ['a', 'b']), { value: 'v', present: true });
    assert.deepEqual(labelField({ a: '' }, ['a']), { value: '', present: true });
  });

  test('absent for undefined or empty labels and for missing keys', () => {
    assert.deepEqual(labelField(undefined, ['a']), { value: '', present: false });
    assert.deepEqual(labelField({}, ['a']), { value: '', present: false });
    assert.deepEqual(labelField({ a: 'v' }, ['b']), { value: '', present: false });
  });

  test('does not find inherited object properties', () => {
    assert.deepEqual(labelField({}, ['constructor']), { value: '', present: false });
    assert.deepEqual(labelField({ a: 'v' }, ['__proto__']), { value: '', present: false });
  });
});

describe('parse errors (containerd texts, kind invalid_argument)', () => {
  const cases: Array<[string, string]> = [
    // End of input where something is still needed: the whole input, unmarked.
    ['name==', '[name==]: expected value or quoted'],
    ['name!=', '[name!=]: expected value or quoted'],
    ['name==foo,', '[name==foo,]: expected field or quoted'],
    ['labels.', '[labels.]: expected field or quoted'],
    [' ', '[ ]: expected field or quoted'],
    // An empty selector between commas.
    ['name==foo,,bar', '[name==foo, >|,|< bar]: expected field or quoted'],
    ['.name', '[ >|.|< name]: expected field or quoted'],
    // Quoting.
    ['name=="foo', '[name== >|"|< foo]: quoted literal not terminated'],
    ['labels."foo', '[labels. >|"|< foo]: quoted literal not terminated'],
    ['labels."a\nb"', '[labels. >|"|< a\nb"]: quoted literal not terminated'],
    ['name==/foo/', '[name== >|/|< foo/]: invalid quote encountered'],
    ['name!=|foo|', '[name!= >|||< foo|]: invalid quote encountered'],
    ['labels./foo/', '[labels. >|/|< foo/]: invalid quote encountered'],
    ['labels.containerd.io/gc.root', '[labels.containerd.io >|/|< gc.root]: quoted literal not terminated'],
    ['labels.ns/key==v', '[labels.ns >|/|< key==v]: quoted literal not terminated'],
    ['labels.a/b/==v', '[labels.a >|/|< b/==v]: expected an operator ("=="|"!="|"~=")'],
    [String.raw`labels."\g"`, String.raw`[labels. >|"|< \g"]: illegal escape sequence`],
    [String.raw`labels."\xaz"`, String.raw`[labels. >|"|< \xaz"]: illegal numeric escape sequence`],
    [String.raw`labels."\12"`, String.raw`[labels. >|"|< \12"]: illegal numeric escape sequence`],
    [String.raw`name~=/a\"b/`, String.raw`[name~= >|/|< a\"b/]: illegal escape sequence`],
    [String.raw`name~=/a\.b/`, String.raw`[name~= >|/|< a\.b/]: illegal escape sequence`],
    [String.raw`labels."\400"`, String.raw`[labels. >|"|< \400"]: unquoting failed: quote syntax error`],
    [String.raw`labels."\U00110000"`, String.raw`[labels. >|"|< \U00110000"]: unquoting failed: quote syntax error`],
    // Operators.
    ['name=foo', '[name >|=|< foo]: unsupported operator "="'],
    ['name!~foo', '[name >|!|< ~foo]: unsupported operator "!~"'],
    ['name===foo', '[name >|=|< ==foo]: unsupported operator "==="'],
    ['name foo', '[name  >|f|< oo]: expected an operator ("=="|"!="|"~=")'],
    ['name?', '[name >|?|< ]: expected an operator ("=="|"!="|"~=")'],
    // Whitespace is only skipped before a token: not before `.`/`,` or at the end.
    ['name ', '[name ]: expected an operator ("=="|"!="|"~=")'],
    ['name==bar ', '[name==bar >| |< ]: unexpected input:  '],
    ['name==bar ,name', '[name==bar >| |< ,name]: unexpected input:  '],
    ['labels .foo', '[labels  >|.|< foo]: expected an operator ("=="|"!="|"~=")'],
    ['name=="a" b', '[name=="a" >| |< b]: unexpected input:  '],
    // Refused runes.
    ['foo\0bar', '[foo >|\0|< bar]: unexpected null'],
    ['name==foo\0', '[name==foo >|\0|< ]: unexpected input: \uFFFD'],
    ['name==\uFFFD', '[name== >|\uFFFD|< ]: rune error'],
  ];
  for (const [input, detail] of cases) {
    test(JSON.stringify(input), () => assertParseError([input], `filters: parse error: ${detail}`));
  }
});
