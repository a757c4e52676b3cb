// Platforms (src/remotes/platforms.ts, reference §7.9): the tables of github.com/containerd/platforms
// (platforms_test.go, compare_test.go), the normalisation table, the order Only(p) prefers, and
// the choice of manifests from an index (LimitManifests + FilterPlatforms).
import assert from 'node:assert/strict';
import { posix } from 'node:path';
import { describe, test } from 'node:test';

import { BerthError } from '../store/errors.js';
import { allMatcher, defaultMatcher, newMatcher, onlyMatcher, onlyStrictMatcher, orderedMatcher, platformVector } from '../src/oci/platforms/match.js';
import { armVariant, defaultPlatform, platformOfHost } from '../src/oci/platforms/host.js';
import { formatPlatform, formatPlatformAll, normalizePlatform, parsePlatform } from '../src/oci/platforms/parse.js';
import { selectManifests } from '../src/pull/select.js';
import { toOciPlatform, toPlatform, type OciPlatform, type Platform, type PlatformMatcher } from '../src/oci/platforms/types.js';

/** A Platform without empty fields, as the module builds them. */
function plat(os: string, architecture: string, variant = '', extra: { osVersion?: string; osFeatures?: string[] } = {}): Platform {
  const p: Platform = { os, architecture };
  if (variant) p.variant = variant;
  if (extra.osVersion) p.osVersion = extra.osVersion;
  if (extra.osFeatures) p.osFeatures = extra.osFeatures;
  return p;
}

const host = defaultPlatform();
const defaultOS = host.os;
const defaultArch = host.architecture;
const defaultVariant = defaultArch === 'arm' && host.variant !== 'v7' ? (host.variant ?? '') : '';

function assertInvalid(fn: () => unknown, includes?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof BerthError, String(err));
    assert.equal(err.code, 'invalid_argument');
    if (includes) assert.ok(err.message.includes(includes), err.message);
    return true;
  });
}

describe('parsePlatform (TestParseSelector)', () => {
  interface Case {
    input: string;
    expected: Platform;
    matches?: Platform[];
    formatted: string;
    all?: boolean; // formatted with formatPlatformAll
  }
  const cases: Case[] = [
    {
      input: 'linux/arm64',
      expected: plat('linux', 'arm64'),
      matches: [plat('linux', 'aarch64'), plat('linux', 'aarch64', 'v8'), plat('linux', 'arm64', 'v8')],
      formatted: 'linux/arm64',
    },
    {
      input: 'linux/arm64/v8',
      expected: plat('linux', 'arm64', 'v8'),
      matches: [plat('linux', 'aarch64'), plat('linux', 'aarch64', 'v8'), plat('linux', 'arm64')],
      formatted: 'linux/arm64/v8',
    },
    {
      // The consumer can assume v7, but the variant is left blank.
      input: 'linux/arm',
      expected: plat('linux', 'arm'),
      matches: [plat('linux', 'arm', 'v7'), plat('linux', 'armhf'), plat('linux', 'arm', '7')],
      formatted: 'linux/arm',
    },
    { input: 'linux/arm/v6', expected: plat('linux', 'arm', 'v6'), matches: [plat('linux', 'armel')], formatted: 'linux/arm/v6' },
    {
      input: 'linux/arm/v7',
      expected: plat('linux', 'arm', 'v7'),
      matches: [plat('linux', 'arm'), plat('linux', 'armhf')],
      formatted: 'linux/arm/v7',
    },
    { input: 'arm', expected: plat(defaultOS, 'arm'), formatted: posix.join(defaultOS, 'arm') },
    { input: 'armel', expected: plat(defaultOS, 'arm', 'v6'), formatted: posix.join(defaultOS, 'arm/v6') },
    { input: 'armhf', expected: plat(defaultOS, 'arm'), formatted: posix.join(defaultOS, 'arm') },
    { input: 'Aarch64', expected: plat(defaultOS, 'arm64'), formatted: posix.join(defaultOS, 'arm64') },
    { input: 'x86_64', expected: plat(defaultOS, 'amd64'), formatted: posix.join(defaultOS, 'amd64') },
    { input: 'Linux/x86_64', expected: plat('linux', 'amd64'), formatted: 'linux/amd64' },
    { input: 'i386', expected: plat(defaultOS, '386'), formatted: posix.join(defaultOS, '386') },
    { input: 'linux', expected: plat('linux', defaultArch, defaultVariant), formatted: posix.join('linux', defaultArch, defaultVariant) },
    { input: 's390x', expected: plat(defaultOS, 's390x'), formatted: posix.join(defaultOS, 's390x') },
    { input: 'linux/s390x', expected: plat('linux', 's390x'), formatted: 'linux/s390x' },
    { input: 'macOS', expected: plat('darwin', defaultArch, defaultVariant), formatted: posix.join('darwin', defaultArch, defaultVariant) },
    { input: 'windows', expected: plat('windows', defaultArch, defaultVariant), formatted: posix.join('windows', defaultArch, defaultVariant) },
    {
      input: 'windows()',
      expected: plat('windows', defaultArch, defaultVariant),
      formatted: posix.join('windows', defaultArch, defaultVariant),
      all: true,
    },
    {
      input: 'windows(10.0.17763)',
      expected: plat('windows', defaultArch, defaultVariant, { osVersion: '10.0.17763' }),
      formatted: posix.join('windows(10.0.17763)', defaultArch, defaultVariant),
      all: true,
    },
    {
      input: 'windows(10.0.17763+win32k)',
      expected: plat('windows', defaultArch, defaultVariant, { osVersion: '10.0.17763', osFeatures: ['win32k'] }),
      formatted: posix.join('windows(10.0.17763+win32k)', defaultArch, defaultVariant),
      all: true,
    },
    {
      input: 'linux(+gpu)',
      expected: plat('linux', defaultArch, defaultVariant, { osFeatures: ['gpu'] }),
      formatted: posix.join('linux(+gpu)', defaultArch, defaultVariant),
      all: true,
    },
    {
      input: 'linux(+gpu+simd)',
      expected: plat('linux', defaultArch, defaultVariant, { osFeatures: ['gpu', 'simd'] }),
      formatted: posix.join('linux(+gpu+simd)', defaultArch, defaultVariant),
      all: true,
    },
    {
      // Parse keeps the order; FormatAll sorts.
      input: 'linux(+unsorted+erofs)',
      expected: plat('linux', defaultArch, defaultVariant, { osFeatures: ['unsorted', 'erofs'] }),
      formatted: posix.join('linux(+erofs+unsorted)', defaultArch, defaultVariant),
      all: true,
    },
    {
      input: 'windows(10.0.17763%2Bbuild.42)',
      expected: plat('windows', defaultArch, defaultVariant, { osVersion: '10.0.17763+build.42' }),
      formatted: posix.join('windows(10.0.17763%2Bbuild.42)', defaultArch, defaultVariant),
      all: true,
    },
    {
      input: 'windows(10.0.17763%2Bbuild.42+win32k)',
      expected: plat('windows', defaultArch, defaultVariant, { osVersion: '10.0.17763+build.42', osFeatures: ['win32k'] }),
      formatted: posix.join('windows(10.0.17763%2Bbuild.42+win32k)', defaultArch, defaultVariant),
      all: true,
    },
    {
      input: 'windows(50%25done)',
      expected: plat('windows', defaultArch, defaultVariant, { osVersion: '50%done' }),
      formatted: posix.join('windows(50%25done)', defaultArch, defaultVariant),
      all: true,
    },
  ];
  for (const c of cases) {
    test(c.input, () => {
      const p = parsePlatform(c.input);
      assert.deepEqual(p, c.expected);
      const m = newMatcher(p);
      assert.ok(m.match(c.expected), `${c.input} matches ${JSON.stringify(c.expected)}`);
      for (const other of c.matches ?? []) assert.ok(m.match(other), `${c.input} matches ${JSON.stringify(other)}`);
      const fmt = c.all ? formatPlatformAll : formatPlatform;
      const formatted = fmt(p);
      assert.equal(formatted, c.formatted);
      // The formatted form parses back to itself.
      assert.equal(fmt(parsePlatform(formatted)), formatted);
    });
  }

  test('wildcards are refused', () => {
    for (const s of ['*', 'linux/*', '*/arm64']) assertInvalid(() => parsePlatform(s), 'wildcards not yet supported');
  });
});

describe('parsePlatform: invalid specifiers (TestParseSelectorInvalid)', () => {
  const cases: Array<[string, string]> = [
    ['', '"" is an invalid OS component of ""'],
    ['/linux/arm', 'invalid OS component of "/linux/arm"'],
    ['linux/arm/', '"" is an invalid component of "linux/arm/"'],
    ['linux /arm', 'invalid OS component of "linux /arm"'],
    ['linux/&arm', '"&arm" is an invalid component of "linux/&arm"'],
    ['linux/arm/foo/bar', '"linux/arm/foo/bar": cannot parse platform specifier'],
    ['foo', '"foo": unknown operating system or architecture'],
    ['linux.x/amd64', 'invalid OS component'],
    ['linux(10.0', 'invalid OS component'],
    ['windows(%zz)', '"windows(%zz)" has an invalid OS version "%zz": invalid URL escape "%zz"'],
    ['linux(+a%2)', '"linux(+a%2)" has an invalid OS feature "a%2": invalid URL escape "%2"'],
  ];
  for (const [input, message] of cases) {
    test(input || '(empty)', () => assertInvalid(() => parsePlatform(input), message));
  }
});

describe('parsePlatform quirks (reference §7.9)', () => {
  test('os/arm leaves the implied v7 out; arm/7 spelled in full is v7', () => {
    assert.deepEqual(parsePlatform('linux/arm'), plat('linux', 'arm'));
    assert.deepEqual(parsePlatform('linux/armhf'), plat('linux', 'arm'));
    assert.deepEqual(parsePlatform('linux/arm/7'), plat('linux', 'arm', 'v7'));
    assert.deepEqual(parsePlatform('linux/arm/5'), plat('linux', 'arm', 'v5'));
  });
  test('a three-part arm64 whose variant normalises away gets v8', () => {
    assert.deepEqual(parsePlatform('linux/arm64/8'), plat('linux', 'arm64', 'v8'));
    assert.deepEqual(parsePlatform('linux/aarch64/v8.0'), plat('linux', 'arm64', 'v8'));
    assert.deepEqual(parsePlatform('linux/arm64/9.0'), plat('linux', 'arm64', 'v9'));
    assert.deepEqual(parsePlatform('linux/arm64/v8.2'), plat('linux', 'arm64', 'v8.2'));
  });
  test('amd64 variants', () => {
    assert.deepEqual(parsePlatform('linux/amd64/v1'), plat('linux', 'amd64'));
    assert.deepEqual(parsePlatform('linux/x86-64/V3'), plat('linux', 'amd64', 'v3'));
    assert.deepEqual(parsePlatform('linux/i386/v7'), plat('linux', '386'));
  });
  test('two parts do not check the OS or architecture is known', () => {
    assert.deepEqual(parsePlatform('plan10/z80'), plat('plan10', 'z80'));
  });
});

describe('normalizePlatform', () => {
  const cases: Array<[Platform, Platform]> = [
    [plat('Linux', 'AMD64'), plat('linux', 'amd64')],
    [plat('macos', 'arm64'), plat('darwin', 'arm64')],
    [plat('MacOS', 'x86_64'), plat('darwin', 'amd64')],
    [plat('linux', 'i386', 'v7'), plat('linux', '386')],
    [plat('linux', 'x86_64'), plat('linux', 'amd64')],
    [plat('linux', 'x86-64', 'v1'), plat('linux', 'amd64')],
    [plat('linux', 'amd64', 'v1'), plat('linux', 'amd64')],
    [plat('linux', 'amd64', 'v2'), plat('linux', 'amd64', 'v2')],
    [plat('linux', 'aarch64'), plat('linux', 'arm64')],
    [plat('linux', 'arm64', '8'), plat('linux', 'arm64')],
    [plat('linux', 'arm64', 'v8'), plat('linux', 'arm64')],
    [plat('linux', 'arm64', 'v8.0'), plat('linux', 'arm64')],
    [plat('linux', 'arm64', 'v8.1'), plat('linux', 'arm64', 'v8.1')],
    [plat('linux', 'arm64', '9'), plat('linux', 'arm64', 'v9')],
    [plat('linux', 'arm64', '9.0'), plat('linux', 'arm64', 'v9')],
    [plat('linux', 'arm64', 'v9.0'), plat('linux', 'arm64', 'v9')],
    [plat('linux', 'arm64', 'v9.1'), plat('linux', 'arm64', 'v9.1')],
    [plat('linux', 'armhf'), plat('linux', 'arm', 'v7')],
    [plat('linux', 'armhf', 'v6'), plat('linux', 'arm', 'v7')],
    [plat('linux', 'armel'), plat('linux', 'arm', 'v6')],
    [plat('linux', 'arm'), plat('linux', 'arm', 'v7')],
    [plat('linux', 'arm', '7'), plat('linux', 'arm', 'v7')],
    [plat('linux', 'arm', '5'), plat('linux', 'arm', 'v5')],
    [plat('linux', 'arm', '6'), plat('linux', 'arm', 'v6')],
    [plat('linux', 'arm', '8'), plat('linux', 'arm', 'v8')],
    [plat('linux', 'arm', 'V6'), plat('linux', 'arm', 'v6')],
    [plat('linux', 'arm', '4'), plat('linux', 'arm', '4')],
    [plat('linux', 'ppc64le'), plat('linux', 'ppc64le')],
    [plat('linux', 'amd64', '', { osFeatures: ['b', 'a', 'b'] }), plat('linux', 'amd64', '', { osFeatures: ['a', 'b'] })],
    [plat('windows', 'amd64', '', { osVersion: '10.0.17763.1' }), plat('windows', 'amd64', '', { osVersion: '10.0.17763.1' })],
    [plat('', 'amd64'), plat(defaultOS, 'amd64')],
  ];
  for (const [input, expected] of cases) {
    test(`${JSON.stringify(input)}`, () => assert.deepEqual(normalizePlatform(input), expected));
  }
  test('reads the OCI JSON spelling', () => {
    const oci: OciPlatform = { os: 'linux', architecture: 'amd64', 'os.version': '1', 'os.features': ['y', 'x'] };
    assert.deepEqual(normalizePlatform(oci), plat('linux', 'amd64', '', { osVersion: '1', osFeatures: ['x', 'y'] }));
    assert.deepEqual(toOciPlatform(toPlatform(oci)), oci);
  });
});

describe('formatPlatform and formatPlatformAll', () => {
  test('Format', () => {
    assert.equal(formatPlatform(plat('linux', 'amd64')), 'linux/amd64');
    assert.equal(formatPlatform(plat('linux', 'arm', 'v7')), 'linux/arm/v7');
    assert.equal(formatPlatform(plat('', 'amd64')), 'unknown');
    assert.equal(formatPlatform(plat('windows', 'amd64', '', { osVersion: '10.0.17763' })), 'windows/amd64');
    assert.equal(formatPlatform({ os: 'linux', architecture: 'arm64', variant: 'v8' } satisfies OciPlatform), 'linux/arm64/v8');
  });
  // TestFormatAllEncoding
  const cases: Array<[Platform, string]> = [
    [plat('windows', 'amd64', '', { osVersion: '10.0.17763+build.42' }), 'windows(10.0.17763%2Bbuild.42)/amd64'],
    [plat('windows', 'amd64', '', { osVersion: '10.0.17763+build.42', osFeatures: ['win32k'] }), 'windows(10.0.17763%2Bbuild.42+win32k)/amd64'],
    [plat('windows', 'amd64', '', { osVersion: '50%done' }), 'windows(50%25done)/amd64'],
    [plat('windows', 'amd64', '', { osVersion: '1.0(beta)' }), 'windows(1.0%28beta%29)/amd64'],
    [plat('windows', 'amd64', '', { osVersion: 'a/b' }), 'windows(a%2Fb)/amd64'],
    [plat('windows', 'amd64', '', { osVersion: '10.0.17763' }), 'windows(10.0.17763)/amd64'],
    [plat('linux', 'amd64', '', { osFeatures: ['feat+v2'] }), 'linux(+feat%2Bv2)/amd64'],
    [plat('linux', 'amd64', '', { osFeatures: ['100%gpu'] }), 'linux(+100%25gpu)/amd64'],
    [plat('windows', 'amd64', '', { osVersion: '10.0+build', osFeatures: ['feat+1'] }), 'windows(10.0%2Bbuild+feat%2B1)/amd64'],
  ];
  for (const [p, expected] of cases) {
    test(`FormatAll ${expected}`, () => {
      const formatted = formatPlatformAll(p);
      assert.equal(formatted, expected);
      const back = parsePlatform(formatted);
      assert.equal(back.osVersion, p.osVersion);
      assert.deepEqual(back.osFeatures, p.osFeatures);
    });
  }
  test('FormatAll leaves out empty features (TestFormatAllSkipsEmptyOSFeatures)', () => {
    assert.equal(formatPlatformAll(plat('linux', 'amd64', '', { osFeatures: ['', 'gpu', '', 'simd'] })), 'linux(+gpu+simd)/amd64');
  });
});

type MatchTable = Array<{ platform: string; yes: string[]; no: string[] }>;

function checkMatches(make: (p: Platform) => PlatformMatcher, table: MatchTable): void {
  for (const c of table) {
    test(c.platform, () => {
      const m = make(parsePlatform(c.platform));
      for (const s of c.yes) assert.ok(m.match(parsePlatform(s)), `${c.platform} should match ${s}`);
      for (const s of c.no) assert.ok(!m.match(parsePlatform(s)), `${c.platform} should not match ${s}`);
    });
  }
}

describe('onlyMatcher: what Only(p) matches (TestOnly)', () => {
  checkMatches(onlyMatcher, [
    { platform: 'linux/amd64', yes: ['linux/amd64', 'linux/386'], no: ['linux/amd64/v2', 'linux/amd64/v3', 'linux/arm/v7', 'linux/arm64', 'windows/amd64', 'windows/arm'] },
    {
      platform: 'linux/amd64/v2',
      yes: ['linux/amd64', 'linux/amd64/v1', 'linux/amd64/v2', 'linux/386'],
      no: ['linux/amd64/v3', 'linux/amd64/v4', 'linux/arm/v7', 'linux/arm64', 'windows/amd64', 'windows/arm'],
    },
    { platform: 'linux/386', yes: ['linux/386'], no: ['linux/amd64', 'linux/arm/v7', 'linux/arm64', 'windows/amd64', 'windows/arm'] },
    { platform: 'windows/amd64', yes: ['windows/amd64', 'windows(10.0.17763)/amd64'], no: ['linux/amd64', 'linux/arm/v7', 'linux/arm64', 'windows/arm'] },
    {
      platform: 'linux/arm/v8',
      yes: ['linux/arm', 'linux/arm/v5', 'linux/arm/v6', 'linux/arm/v7', 'linux/arm/v8'],
      no: ['linux/amd64', 'linux/arm/v4', 'linux/arm64', 'windows/amd64', 'windows/arm'],
    },
    {
      platform: 'linux/arm/v7',
      yes: ['linux/arm', 'linux/arm/v5', 'linux/arm/v6', 'linux/arm/v7'],
      no: ['linux/amd64', 'linux/arm/v4', 'linux/arm/v8', 'linux/arm64', 'windows/amd64', 'windows/arm'],
    },
    {
      platform: 'linux/arm/v6',
      yes: ['linux/arm/v5', 'linux/arm/v6'],
      no: ['linux/amd64', 'linux/arm', 'linux/arm/v4', 'linux/arm/v7', 'linux/arm/v8', 'linux/arm64', 'windows/amd64', 'windows/arm'],
    },
    {
      platform: 'linux/arm/v5',
      yes: ['linux/arm/v5'],
      no: ['linux/amd64', 'linux/arm', 'linux/arm/v4', 'linux/arm/v6', 'linux/arm/v7', 'linux/arm/v8', 'linux/arm64', 'windows/amd64', 'windows/arm'],
    },
    {
      platform: 'linux/arm/v4',
      yes: ['linux/arm/v4'],
      no: ['linux/amd64', 'linux/arm', 'linux/arm/v5', 'linux/arm/v6', 'linux/arm/v7', 'linux/arm/v8', 'linux/arm64', 'windows/amd64', 'windows/arm'],
    },
    {
      platform: 'linux/arm64',
      yes: ['linux/arm', 'linux/arm/v5', 'linux/arm/v6', 'linux/arm/v7', 'linux/arm/v8', 'linux/arm64', 'linux/arm64/v8'],
      no: ['linux/amd64', 'linux/arm/v4', 'linux/arm/v9', 'linux/arm64/v7', 'linux/arm64/v9', 'linux/arm64/v8.1', 'windows/amd64', 'windows/arm'],
    },
    {
      platform: 'linux/arm64/v8.1',
      yes: ['linux/arm', 'linux/arm/v5', 'linux/arm/v6', 'linux/arm/v7', 'linux/arm/v8', 'linux/arm64', 'linux/arm64/v8', 'linux/arm64/v8.1'],
      no: ['linux/amd64', 'linux/arm/v4', 'linux/arm/v9', 'linux/arm64/v9', 'linux/arm64/v8.2', 'windows/amd64', 'windows/arm'],
    },
    {
      platform: 'linux/arm64/v9',
      yes: [
        'linux/arm', 'linux/arm/v5', 'linux/arm/v6', 'linux/arm/v7', 'linux/arm/v8', 'linux/arm64', 'linux/arm64/v8',
        'linux/arm64/v8.1', 'linux/arm64/v8.2', 'linux/arm64/v8.3', 'linux/arm64/v8.4', 'linux/arm64/v8.5', 'linux/arm64/v9',
        'linux/arm64/v9.0',
      ],
      no: ['linux/amd64', 'linux/arm/v4', 'linux/arm64/v7', 'linux/arm64/v10', 'linux/arm64/v8.6', 'windows/amd64', 'windows/arm64', 'windows/arm'],
    },
  ]);
});

describe('onlyStrictMatcher: no fallbacks (TestOnlyStrict)', () => {
  checkMatches(onlyStrictMatcher, [
    { platform: 'linux/amd64', yes: ['linux/amd64'], no: ['linux/386', 'linux/arm/v7', 'linux/arm64', 'windows/amd64', 'windows/arm'] },
    { platform: 'linux/386', yes: ['linux/386'], no: ['linux/amd64', 'linux/arm/v7', 'linux/arm64', 'windows/amd64', 'windows/arm'] },
    { platform: 'windows/amd64', yes: ['windows/amd64', 'windows(10.0.17763)/amd64'], no: ['linux/amd64', 'linux/arm/v7', 'linux/arm64', 'windows/arm'] },
    {
      platform: 'windows(10.0.17763)/amd64',
      yes: ['windows/amd64', 'windows(10.0.17763)/amd64'],
      no: ['linux/amd64', 'linux/arm/v7', 'linux/arm64', 'windows/arm'],
    },
    {
      platform: 'linux/arm/v8',
      yes: ['linux/arm/v8'],
      no: ['linux/arm', 'linux/arm/v5', 'linux/arm/v6', 'linux/arm/v7', 'linux/amd64', 'linux/arm/v4', 'linux/arm64', 'windows/amd64', 'windows/arm'],
    },
    {
      platform: 'linux/arm/v7',
      yes: ['linux/arm', 'linux/arm/v7'],
      no: ['linux/arm/v5', 'linux/arm/v6', 'linux/amd64', 'linux/arm/v4', 'linux/arm/v8', 'linux/arm64', 'windows/amd64', 'windows/arm'],
    },
    {
      platform: 'linux/arm/v6',
      yes: ['linux/arm/v6'],
      no: ['linux/arm/v5', 'linux/amd64', 'linux/arm', 'linux/arm/v4', 'linux/arm/v7', 'linux/arm/v8', 'linux/arm64', 'windows/amd64', 'windows/arm'],
    },
    {
      platform: 'linux/arm/v5',
      yes: ['linux/arm/v5'],
      no: ['linux/amd64', 'linux/arm', 'linux/arm/v4', 'linux/arm/v6', 'linux/arm/v7', 'linux/arm/v8', 'linux/arm64', 'windows/amd64', 'windows/arm'],
    },
    {
      platform: 'linux/arm/v4',
      yes: ['linux/arm/v4'],
      no: ['linux/amd64', 'linux/arm', 'linux/arm/v5', 'linux/arm/v6', 'linux/arm/v7', 'linux/arm/v8', 'linux/arm64', 'windows/amd64', 'windows/arm'],
    },
    {
      platform: 'linux/arm64/v9',
      yes: ['linux/arm64/v9', 'linux/arm64/v9.0'],
      no: [
        'linux/arm', 'linux/arm/v5', 'linux/arm/v6', 'linux/arm/v7', 'linux/arm/v8', 'linux/amd64', 'linux/arm/v4', 'linux/arm/v9',
        'linux/arm64/v7', 'linux/arm64', 'linux/arm64/v8', 'linux/arm64/v8.1', 'linux/arm64/v10', 'windows/amd64', 'windows/arm64', 'windows/arm',
      ],
    },
    {
      platform: 'linux/arm64/v8.1',
      yes: ['linux/arm64/v8.1'],
      no: ['linux/arm', 'linux/arm/v8', 'linux/amd64', 'linux/arm/v9', 'linux/arm64/v8', 'linux/arm64/v9', 'windows/amd64', 'windows/arm'],
    },
    {
      platform: 'linux/arm64',
      yes: ['linux/arm64', 'linux/arm64/v8'],
      no: ['linux/arm', 'linux/arm/v5', 'linux/arm/v8', 'linux/amd64', 'linux/arm/v9', 'linux/arm64/v7', 'linux/arm64/v9', 'windows/amd64', 'windows/arm'],
    },
  ]);
});

describe('the order Only(p) prefers', () => {
  const vectorOf = (s: string) => platformVector(normalizePlatform(parsePlatform(s))).map(formatPlatform);

  test('platform vectors', () => {
    assert.deepEqual(vectorOf('linux/amd64'), ['linux/amd64', 'linux/386']);
    assert.deepEqual(vectorOf('linux/amd64/v3'), ['linux/amd64/v3', 'linux/amd64/v2', 'linux/amd64/v1', 'linux/386']);
    assert.deepEqual(vectorOf('linux/386'), ['linux/386']);
    assert.deepEqual(vectorOf('linux/arm/v7'), ['linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5']);
    assert.deepEqual(vectorOf('linux/arm/v5'), ['linux/arm/v5']);
    assert.deepEqual(vectorOf('linux/arm64'), ['linux/arm64', 'linux/arm/v8', 'linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5']);
    assert.deepEqual(vectorOf('linux/arm64/v8.2'), [
      'linux/arm64/v8.2', 'linux/arm64/v8.1', 'linux/arm64/v8', 'linux/arm/v8', 'linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5',
    ]);
    assert.deepEqual(vectorOf('linux/arm64/v9.2'), [
      'linux/arm64/v9.2', 'linux/arm64/v9.1', 'linux/arm64/v9', 'linux/arm64/v8.7', 'linux/arm64/v8.6', 'linux/arm64/v8.5',
      'linux/arm64/v8.4', 'linux/arm64/v8.3', 'linux/arm64/v8.2', 'linux/arm64/v8.1', 'linux/arm64/v8',
      'linux/arm/v8', 'linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5',
    ]);
    // v9.x runs v8.(x+5) only up to v8.9.
    assert.deepEqual(vectorOf('linux/arm64/v9.6').slice(0, 8), [
      'linux/arm64/v9.6', 'linux/arm64/v9.5', 'linux/arm64/v9.4', 'linux/arm64/v9.3', 'linux/arm64/v9.2', 'linux/arm64/v9.1',
      'linux/arm64/v9', 'linux/arm64/v8.9',
    ]);
    // Upstream leaves a bare v9 as arm/v9 in the 32-bit fallbacks.
    assert.deepEqual(vectorOf('linux/arm64/v9'), [
      'linux/arm64/v9', 'linux/arm64/v8.5', 'linux/arm64/v8.4', 'linux/arm64/v8.3', 'linux/arm64/v8.2', 'linux/arm64/v8.1',
      'linux/arm64/v8', 'linux/arm/v9', 'linux/arm/v8', 'linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5',
    ]);
  });

  const sorted = (m: PlatformMatcher, specs: string[]) =>
    specs
      .map((s) => parsePlatform(s))
      .filter((p) => m.match(p))
      .sort((a, b) => (m.less(a, b) ? -1 : m.less(b, a) ? 1 : 0))
      .map(formatPlatformAll);

  test('amd64/v3 prefers itself, then older levels, then 386', () => {
    const m = onlyMatcher(parsePlatform('linux/amd64/v3'));
    assert.deepEqual(sorted(m, ['linux/386', 'linux/amd64', 'linux/arm64', 'linux/amd64/v4', 'linux/amd64/v2', 'linux/amd64/v3']), [
      'linux/amd64/v3',
      'linux/amd64/v2',
      'linux/amd64',
      'linux/386',
    ]);
  });

  test('arm64 prefers arm64, then arm/v8 down to arm/v5', () => {
    const m = onlyMatcher(parsePlatform('linux/arm64'));
    assert.deepEqual(sorted(m, ['linux/arm/v5', 'linux/arm/v7', 'linux/arm64/v8', 'linux/arm/v8', 'linux/arm/v6', 'linux/amd64']), [
      'linux/arm64/v8',
      'linux/arm/v8',
      'linux/arm/v7',
      'linux/arm/v6',
      'linux/arm/v5',
    ]);
  });

  test('less: an earlier entry of the vector wins; equals are not less', () => {
    const m = onlyMatcher(parsePlatform('linux/amd64'));
    assert.ok(m.less(plat('linux', 'amd64'), plat('linux', '386')));
    assert.ok(!m.less(plat('linux', '386'), plat('linux', 'amd64')));
    assert.ok(!m.less(plat('linux', 'amd64'), plat('linux', 'x86_64')));
    assert.ok(m.less(plat('linux', '386'), plat('linux', 'arm64')));
    assert.ok(!m.less(plat('linux', 'arm64'), plat('windows', 'arm64')));
  });

  test('more OS features win between matches of the same entry', () => {
    const m = onlyMatcher(parsePlatform('linux(+gpu+simd)/amd64'));
    assert.ok(m.match(parsePlatform('linux(+gpu)/amd64')));
    assert.ok(!m.match(parsePlatform('linux(+other)/amd64')), 'features must be a subset of the wanted ones');
    assert.ok(!m.match(parsePlatform('linux(+gpu+simd+x)/amd64')));
    assert.deepEqual(sorted(m, ['linux/386', 'linux/amd64', 'linux(+gpu)/amd64', 'linux(+simd+gpu)/amd64', 'linux(+gpu)/386']), [
      'linux(+gpu+simd)/amd64',
      'linux(+gpu)/amd64',
      'linux/amd64',
      'linux(+gpu)/386',
      'linux/386',
    ]);
    // Neither matching: compared again without features.
    const plain = onlyMatcher(parsePlatform('linux/amd64'));
    assert.ok(plain.less(parsePlatform('linux(+gpu)/amd64'), parsePlatform('linux/arm64')));
  });

  test('orderedMatcher keeps the order given', () => {
    const m = orderedMatcher(parsePlatform('linux/arm64'), parsePlatform('linux/amd64'));
    assert.deepEqual(sorted(m, ['linux/amd64', 'linux/386', 'linux/arm64', 'linux/arm/v7']), ['linux/arm64', 'linux/amd64']);
  });

  test('allMatcher matches everything and prefers nothing', () => {
    assert.ok(allMatcher.match(plat('plan9', 'mips')));
    assert.ok(!allMatcher.less(plat('linux', 'amd64'), plat('linux', '386')));
  });
});

describe('Windows OS versions', () => {
  test('a host before WS2022 needs the same build; from WS2022, LTSC 2022 up to the host build', () => {
    const rs5 = newMatcher(parsePlatform('windows(10.0.17763)/amd64'));
    assert.ok(rs5.match(parsePlatform('windows(10.0.17763.1234)/amd64')));
    assert.ok(!rs5.match(parsePlatform('windows(10.0.17134)/amd64')));
    assert.ok(rs5.match(parsePlatform('windows/amd64')), 'no version: matches');
    const newer = newMatcher(parsePlatform('windows(10.0.26100)/amd64'));
    assert.ok(newer.match(parsePlatform('windows(10.0.20348)/amd64')));
    assert.ok(newer.match(parsePlatform('windows(10.0.26100)/amd64')));
    assert.ok(!newer.match(parsePlatform('windows(10.0.17763)/amd64')));
    assert.ok(!newer.match(parsePlatform('windows(10.0.26200)/amd64')));
    assert.ok(!newer.match(parsePlatform('windows(6.3.26100)/amd64')));
    // Only Windows looks at the version.
    assert.ok(newMatcher(parsePlatform('linux(1.0.0)/amd64')).match(parsePlatform('linux(2.0.0)/amd64')));
  });
});

describe('defaultPlatform and the host', () => {
  test('this host', () => {
    const p = defaultPlatform();
    const expectedArch = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm' }[process.arch as string];
    if (expectedArch) assert.equal(p.architecture, expectedArch);
    if (process.platform === 'linux') assert.equal(p.os, 'linux');
    if (p.architecture !== 'arm' && p.architecture !== 'arm64') assert.equal(p.variant, undefined);
    // A copy each time.
    p.os = 'changed';
    assert.notEqual(defaultPlatform().os, 'changed');
    // The default matcher is Only(host) (on Linux).
    if (process.platform === 'linux') {
      const m = defaultMatcher();
      assert.ok(m.match(defaultPlatform()));
      if (p.architecture === 'amd64') assert.ok(m.match(plat('linux', '386')));
    }
  });

  test("Node's names in OCI spelling", () => {
    assert.deepEqual(platformOfHost('linux', 'x64'), plat('linux', 'amd64'));
    assert.deepEqual(platformOfHost('linux', 'ia32'), plat('linux', '386'));
    assert.deepEqual(platformOfHost('win32', 'x64'), plat('windows', 'amd64'));
    assert.deepEqual(platformOfHost('darwin', 'arm64'), plat('darwin', 'arm64', 'v8'));
    assert.deepEqual(platformOfHost('linux', 'ppc64'), plat('linux', 'ppc64le'));
    assert.deepEqual(platformOfHost('aix', 'ppc64', { littleEndian: false }), plat('aix', 'ppc64'));
    assert.deepEqual(platformOfHost('linux', 's390x'), plat('linux', 's390x'));
    assert.deepEqual(platformOfHost('linux', 'riscv64'), plat('linux', 'riscv64'));
    assert.deepEqual(platformOfHost('linux', 'mipsel'), plat('linux', 'mipsle'));
    assert.deepEqual(platformOfHost('sunos', 'x64'), plat('solaris', 'amd64'));
  });

  test('the ARM variant: /proc/cpuinfo, then uname, then the version Node was built for', () => {
    const pi3 = 'processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\nCPU architecture: 7\nCPU variant\t: 0x0\n';
    const pi1 = 'processor\t: 0\nmodel name\t: ARMv6-compatible processor rev 7 (v6l)\nCPU architecture: 7\n';
    const a64 = 'processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU architecture: 8\n';
    assert.equal(armVariant('arm', { cpuinfo: pi3 }), 'v7');
    assert.equal(armVariant('arm', { cpuinfo: pi1 }), 'v6');
    assert.equal(armVariant('arm', { cpuinfo: a64, armVersion: '7' }), 'v8');
    assert.equal(armVariant('arm64', { cpuinfo: a64 }), 'v8');
    assert.equal(armVariant('arm', { cpuinfo: 'CPU architecture: 5TEJ\n' }), 'v5');
    assert.equal(armVariant('arm', { cpuinfo: 'CPU architecture: ?(12)\n' }), 'v7');
    assert.equal(armVariant('arm', { cpuinfo: 'processor: 0\n', machine: 'armv6l' }), 'v6');
    assert.equal(armVariant('arm64', { machine: 'aarch64' }), 'v8');
    assert.equal(armVariant('arm', { armVersion: '7' }), 'v7');
    assert.equal(armVariant('arm', { armVersion: 6 }), 'v6');
    assert.equal(armVariant('arm', {}), '');
    assert.equal(armVariant('arm64', {}), 'v8');
    assert.equal(armVariant('amd64', { cpuinfo: a64 }), '');
    assert.deepEqual(platformOfHost('linux', 'arm', { armVersion: '7' }), plat('linux', 'arm', 'v7'));
    assert.deepEqual(platformOfHost('linux', 'arm', { cpuinfo: pi1 }), plat('linux', 'arm', 'v6'));
    assert.deepEqual(platformOfHost('linux', 'arm64', { cpuinfo: a64 }), plat('linux', 'arm64', 'v8'));
  });
});

describe('selectManifests: the children of an index a pull follows', () => {
  interface Child {
    digest: string;
    platform?: OciPlatform;
  }
  const child = (digest: string, spec?: string, extra: Partial<OciPlatform> = {}): Child =>
    spec === undefined ? { digest } : { digest, platform: { ...toOciPlatform(parsePlatform(spec)), ...extra } };
  const index: Child[] = [
    child('attestation'),
    child('arm-v6', 'linux/arm/v6'),
    child('386', 'linux/386'),
    child('amd64', 'linux/amd64'),
    child('arm64', 'linux/arm64/v8'),
    child('win', 'windows/amd64', { 'os.version': '10.0.17763.1' }),
    child('amd64-v3', 'linux/amd64/v3'),
    child('arm-v7', 'linux/arm/v7'),
    child('unknown'),
  ];
  const digests = (cs: Child[]) => cs.map((c) => c.digest);

  test('sorted by preference, platform-less last, non-matching dropped, limited', () => {
    const m = onlyMatcher(parsePlatform('linux/amd64'));
    assert.deepEqual(digests(selectManifests(index, m, 0)), ['amd64', '386', 'attestation', 'unknown']);
    assert.deepEqual(digests(selectManifests(index, m, 1)), ['amd64']);
    assert.deepEqual(digests(selectManifests(index, m, 3)), ['amd64', '386', 'attestation']);
  });

  test('arm64 host: arm64, then 32-bit arm', () => {
    const m = onlyMatcher(parsePlatform('linux/arm64'));
    assert.deepEqual(digests(selectManifests(index, m, 0)), ['arm64', 'arm-v7', 'arm-v6', 'attestation', 'unknown']);
  });

  test('amd64/v3 host prefers the v3 build', () => {
    const m = onlyMatcher(parsePlatform('linux/amd64/v3'));
    assert.deepEqual(digests(selectManifests(index, m, 1)), ['amd64-v3']);
  });

  test('the Windows child reads os.version', () => {
    assert.deepEqual(digests(selectManifests(index, onlyMatcher(parsePlatform('windows(10.0.17763)/amd64')), 1)), ['win']);
    assert.throws(
      () => selectManifests(index.filter((c) => c.platform), onlyMatcher(parsePlatform('windows(10.0.20348)/amd64')), 1),
      (err: unknown) => err instanceof BerthError && err.code === 'not_found',
    );
  });

  test('allMatcher keeps the index order (stable), platform-less last', () => {
    assert.deepEqual(digests(selectManifests(index, allMatcher, 0)), [
      'arm-v6', '386', 'amd64', 'arm64', 'win', 'amd64-v3', 'arm-v7', 'attestation', 'unknown',
    ]);
  });

  test('stable between equals', () => {
    const twins = [child('b'), child('a1', 'linux/amd64'), child('x', 'linux/386'), child('a2', 'linux/x86_64')];
    assert.deepEqual(digests(selectManifests(twins, onlyMatcher(plat('linux', 'amd64')), 0)), ['a1', 'a2', 'x', 'b']);
  });

  test('OS features: subsets only, more features first', () => {
    const children = [
      child('plain', 'linux/amd64'),
      child('gpu', 'linux(+gpu)/amd64'),
      child('both', 'linux(+gpu+simd)/amd64'),
      child('other', 'linux(+other)/amd64'),
    ];
    assert.deepEqual(digests(selectManifests(children, onlyMatcher(parsePlatform('linux(+gpu+simd)/amd64')), 0)), ['both', 'gpu', 'plain']);
    assert.deepEqual(digests(selectManifests(children, onlyMatcher(parsePlatform('linux/amd64')), 0)), ['plain']);
  });

  test('no match: not_found with a limit; an empty list with limit 0 unless asked', () => {
    const only = index.filter((c) => c.platform);
    const m = onlyMatcher(parsePlatform('linux/s390x'));
    assert.throws(
      () => selectManifests(only, m, 1),
      (err: unknown) => err instanceof BerthError && err.code === 'not_found' && err.message === 'no match for platform in manifest',
    );
    assert.deepEqual(selectManifests(only, m, 0), []);
    assert.throws(() => selectManifests(only, m, 0, { requireMatch: true }), (err: unknown) => err instanceof BerthError && err.code === 'not_found');
    assert.throws(
      () => selectManifests(only, m, 1, { index: 'sha256:abc' }),
      (err: unknown) => err instanceof BerthError && err.message === 'no match for platform in manifest sha256:abc',
    );
    // Platform-less children still count.
    assert.deepEqual(digests(selectManifests(index, m, 1)), ['attestation']);
    assert.throws(() => selectManifests([], allMatcher, 1), (err: unknown) => err instanceof BerthError && err.code === 'not_found');
  });

  test('the input is not changed', () => {
    const copy = index.map((c) => ({ ...c }));
    selectManifests(index, onlyMatcher(parsePlatform('linux/amd64')), 1);
    assert.deepEqual(index, copy);
  });
});
