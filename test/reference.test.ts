// Image references (src/remotes/reference.ts, reference §7.1): the tables of
// github.com/distribution/reference (reference_test.go, normalize_test.go, regexp_test.go) and the
// normalisation examples of the reference, plus a differential check of the hand-split parser
// against upstream's one big regular expression.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runInNewContext } from 'node:vm';

import { BerthError } from '../store/errors.js';
import {
  familiarName,
  familiarRepository,
  isNameOnly,
  parseDockerRef,
  parseNormalizedNamed,
  parseReference,
  referenceErrors as E,
  repository,
  trimNamed,
  withDigest,
  withTag,
  type ImageReference,
} from '../src/remotes/reference.js';

const ff64 = 'f'.repeat(64);
const ff128 = 'f'.repeat(128);

/** Asserts `fn` throws invalid_argument whose message is `"<input>": <text>`. */
function assertRefError(fn: () => unknown, input: string, text: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof BerthError, `not a BerthError: ${String(err)}`);
    assert.equal(err.code, 'invalid_argument');
    assert.equal(err.message, `${JSON.stringify(input)}: ${text}`);
    return true;
  });
}

function fields(ref: ImageReference) {
  return { domain: ref.domain, path: ref.path, name: ref.name, tag: ref.tag, digest: ref.digest };
}

describe('parseReference: reference.Parse (TestReferenceParse)', () => {
  interface Case {
    input: string;
    err?: string;
    repository?: string;
    domain?: string;
    tag?: string;
    digest?: string;
  }
  const cases: Case[] = [
    { input: 'test_com', repository: 'test_com' },
    { input: 'test.com:tag', repository: 'test.com', tag: 'tag' },
    { input: 'test.com:5000', repository: 'test.com', tag: '5000' },
    { input: 'test.com/repo:tag', domain: 'test.com', repository: 'test.com/repo', tag: 'tag' },
    { input: 'test:5000/repo', domain: 'test:5000', repository: 'test:5000/repo' },
    { input: 'test:5000/repo:tag', domain: 'test:5000', repository: 'test:5000/repo', tag: 'tag' },
    { input: `test:5000/repo@sha256:${ff64}`, domain: 'test:5000', repository: 'test:5000/repo', digest: `sha256:${ff64}` },
    {
      input: `test:5000/repo:tag@sha256:${ff64}`,
      domain: 'test:5000',
      repository: 'test:5000/repo',
      tag: 'tag',
      digest: `sha256:${ff64}`,
    },
    { input: '', err: E.nameEmpty },
    { input: ':justtag', err: E.invalidFormat },
    { input: `@sha256:${ff64}`, err: E.invalidFormat },
    { input: `repo@sha256:${'f'.repeat(34)}`, err: E.checksumLength },
    { input: `validname@invaliddigest:${ff64}`, err: E.checksumUnsupported },
    { input: 'Uppercase:tag', err: E.nameContainsUppercase },
    // "Uppercase/lowercase:tag" passes: Uppercase is taken as a domain (upstream FIXME).
    { input: 'test:5000/Uppercase/lowercase:tag', err: E.nameContainsUppercase },
    { input: 'lowercase:Uppercase', repository: 'lowercase', tag: 'Uppercase' },
    { input: `${'a/'.repeat(128)}a:tag`, err: E.nameTooLong },
    {
      input: `${'a/'.repeat(127)}a:tag-puts-this-over-max`,
      domain: 'a',
      repository: `${'a/'.repeat(127)}a`,
      tag: 'tag-puts-this-over-max',
    },
    { input: 'aa/asdf$$^/aa', err: E.invalidFormat },
    { input: 'sub-dom1.foo.com/bar/baz/quux', domain: 'sub-dom1.foo.com', repository: 'sub-dom1.foo.com/bar/baz/quux' },
    {
      input: 'sub-dom1.foo.com/bar/baz/quux:some-long-tag',
      domain: 'sub-dom1.foo.com',
      repository: 'sub-dom1.foo.com/bar/baz/quux',
      tag: 'some-long-tag',
    },
    {
      input: 'b.gcr.io/test.example.com/my-app:test.example.com',
      domain: 'b.gcr.io',
      repository: 'b.gcr.io/test.example.com/my-app',
      tag: 'test.example.com',
    },
    { input: 'xn--n3h.com/myimage:xn--n3h.com', domain: 'xn--n3h.com', repository: 'xn--n3h.com/myimage', tag: 'xn--n3h.com' },
    {
      input: `xn--7o8h.com/myimage:xn--7o8h.com@sha512:${ff128}`,
      domain: 'xn--7o8h.com',
      repository: 'xn--7o8h.com/myimage',
      tag: 'xn--7o8h.com',
      digest: `sha512:${ff128}`,
    },
    { input: 'foo_bar.com:8080', repository: 'foo_bar.com', tag: '8080' },
    { input: 'foo/foo_bar.com:8080', domain: 'foo', repository: 'foo/foo_bar.com', tag: '8080' },
    { input: '192.168.1.1', repository: '192.168.1.1' },
    { input: '192.168.1.1:tag', repository: '192.168.1.1', tag: 'tag' },
    { input: '192.168.1.1:5000', repository: '192.168.1.1', tag: '5000' },
    { input: '192.168.1.1/repo', domain: '192.168.1.1', repository: '192.168.1.1/repo' },
    { input: '192.168.1.1:5000/repo', domain: '192.168.1.1:5000', repository: '192.168.1.1:5000/repo' },
    { input: '192.168.1.1:5000/repo:5050', domain: '192.168.1.1:5000', repository: '192.168.1.1:5000/repo', tag: '5050' },
    { input: '[2001:db8::1]', err: E.invalidFormat },
    { input: '[2001:db8::1]:5000', err: E.invalidFormat },
    { input: '[2001:db8::1]:tag', err: E.invalidFormat },
    { input: '[2001:db8::1]/repo', domain: '[2001:db8::1]', repository: '[2001:db8::1]/repo' },
    { input: '[2001:db8:1:2:3:4:5:6]/repo:tag', domain: '[2001:db8:1:2:3:4:5:6]', repository: '[2001:db8:1:2:3:4:5:6]/repo', tag: 'tag' },
    { input: '[2001:db8::1]:5000/repo', domain: '[2001:db8::1]:5000', repository: '[2001:db8::1]:5000/repo' },
    { input: '[2001:db8::1]:5000/repo:tag', domain: '[2001:db8::1]:5000', repository: '[2001:db8::1]:5000/repo', tag: 'tag' },
    {
      input: `[2001:db8::1]:5000/repo@sha256:${ff64}`,
      domain: '[2001:db8::1]:5000',
      repository: '[2001:db8::1]:5000/repo',
      digest: `sha256:${ff64}`,
    },
    {
      input: `[2001:db8::1]:5000/repo:tag@sha256:${ff64}`,
      domain: '[2001:db8::1]:5000',
      repository: '[2001:db8::1]:5000/repo',
      tag: 'tag',
      digest: `sha256:${ff64}`,
    },
    { input: '[2001:db8::]:5000/repo', domain: '[2001:db8::]:5000', repository: '[2001:db8::]:5000/repo' },
    { input: '[::1]:5000/repo', domain: '[::1]:5000', repository: '[::1]:5000/repo' },
    { input: '[fe80::1%eth0]:5000/repo', err: E.invalidFormat },
    { input: '[fe80::1%@invalidzone]:5000/repo', err: E.invalidFormat },
    // The 255-character limit covers domain and path (v0.6.0, what containerd vendors).
    { input: `domain/${'a'.repeat(256)}:tag`, err: E.nameTooLong },
    { input: `example.com/${'a'.repeat(255)}:tag`, err: E.nameTooLong },
    { input: `example.com/${'a'.repeat(243)}:tag`, domain: 'example.com', repository: `example.com/${'a'.repeat(243)}`, tag: 'tag' },
    // go-digest's checks on the digest the grammar lets through.
    { input: `repo@sha256:${'F'.repeat(64)}`, err: E.checksumFormat },
    { input: `repo@SHA256:${ff64}`, err: E.checksumFormat },
    { input: `Repo@sha256:${ff64}`, err: E.nameContainsUppercase },
    { input: `repo@sha256+b64:${ff64}`, err: E.checksumUnsupported },
    { input: `repo@sha384:${ff64}`, err: E.checksumLength },
    { input: `repo@sha384:${'f'.repeat(96)}`, repository: 'repo', digest: `sha384:${'f'.repeat(96)}` },
    // regexp_test.go's reference cases.
    { input: 'registry.com:8080/myapp:tag', domain: 'registry.com:8080', repository: 'registry.com:8080/myapp', tag: 'tag' },
    { input: 'registry.com:8080/myapp@sha256:badbadbadbad', err: E.invalidFormat },
    { input: 'registry.com:8080/myapp:invalid~tag', err: E.invalidFormat },
    { input: 'bad_hostname.com:8080/myapp:tag', err: E.invalidFormat },
    { input: `localhost:8080@sha256:${ff64}`, repository: 'localhost', tag: '8080', digest: `sha256:${ff64}` },
    { input: `localhost:8080/name@sha256:${ff64}`, domain: 'localhost:8080', repository: 'localhost:8080/name', digest: `sha256:${ff64}` },
    { input: `localhost:http/name@sha256:${ff64}`, err: E.invalidFormat },
    { input: `localhost@sha256:${ff64}`, repository: 'localhost', digest: `sha256:${ff64}` },
    { input: 'registry.com:8080/myapp@bad', err: E.invalidFormat },
    { input: 'registry.com:8080/myapp@2bad', err: E.invalidFormat },
    { input: `foo:${'t'.repeat(128)}`, repository: 'foo', tag: 't'.repeat(128) },
    { input: `foo:${'t'.repeat(129)}`, err: E.invalidFormat },
    { input: 'foo:.tag', err: E.invalidFormat },
    { input: 'foo:_tag', repository: 'foo', tag: '_tag' },
  ];
  for (const c of cases) {
    test(c.input.length > 80 ? `${c.input.slice(0, 77)}...` : c.input || '(empty)', () => {
      if (c.err) {
        assertRefError(() => parseReference(c.input), c.input, c.err);
        return;
      }
      const ref = parseReference(c.input);
      assert.equal(String(ref), c.input);
      assert.equal(ref.name, c.repository);
      assert.equal(ref.domain, c.domain ?? '');
      assert.equal(ref.name, ref.domain ? `${ref.domain}/${ref.path}` : ref.path);
      assert.equal(ref.tag, c.tag);
      assert.equal(ref.digest, c.digest);
    });
  }
});

describe('parseReference: domain and path (TestDomainAndPath, TestFullNameRegexp)', () => {
  const cases: Array<[string, string, string] | [string, null]> = [
    ['test.com/foo', 'test.com', 'foo'],
    ['test_com/foo', '', 'test_com/foo'],
    ['test:8080/foo', 'test:8080', 'foo'],
    ['test.com:8080/foo', 'test.com:8080', 'foo'],
    ['test-com:8080/foo', 'test-com:8080', 'foo'],
    ['xn--n3h.com:18080/foo', 'xn--n3h.com:18080', 'foo'],
    ['short', '', 'short'],
    ['simple/name', 'simple', 'name'],
    ['library/ubuntu', 'library', 'ubuntu'],
    ['docker/stevvooe/app', 'docker', 'stevvooe/app'],
    ['aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb', 'aa', 'aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb'],
    ['aa/aa/bb/bb/bb', 'aa', 'aa/bb/bb/bb'],
    ['a/a/a/a', 'a', 'a/a/a'],
    ['a/a/a/a/', null],
    ['a//a/a', null],
    ['a', '', 'a'],
    ['a/aa', 'a', 'aa'],
    ['a/aa/a', 'a', 'aa/a'],
    ['foo.com', '', 'foo.com'],
    ['foo.com/', null],
    ['foo.com:8080/bar', 'foo.com:8080', 'bar'],
    ['foo.com:http/bar', null],
    ['foo.com/bar', 'foo.com', 'bar'],
    ['foo.com/bar/baz', 'foo.com', 'bar/baz'],
    ['localhost:8080/bar', 'localhost:8080', 'bar'],
    ['sub-dom1.foo.com/bar/baz/quux', 'sub-dom1.foo.com', 'bar/baz/quux'],
    ['blog.foo.com/bar/baz', 'blog.foo.com', 'bar/baz'],
    ['a^a', null],
    ['aa/asdf$$^/aa', null],
    ['asdf$$^/aa', null],
    ['aa-a/a', 'aa-a', 'a'],
    ['a-/a/a/a', null],
    ['foo.com/a-/a/a', null],
    ['-foo/bar', null],
    ['foo/bar-', null],
    ['foo-/bar', null],
    ['foo/-bar', null],
    ['_foo/bar', null],
    ['foo_bar', '', 'foo_bar'],
    ['foo_bar.com', '', 'foo_bar.com'],
    ['foo_bar.com:8080/app', null],
    ['foo.com/foo_bar', 'foo.com', 'foo_bar'],
    ['____/____', null],
    ['_docker/_docker', null],
    ['docker_/docker_', null],
    ['b.gcr.io/test.example.com/my-app', 'b.gcr.io', 'test.example.com/my-app'],
    ['xn--n3h.com/myimage', 'xn--n3h.com', 'myimage'],
    ['xn--7o8h.com/myimage', 'xn--7o8h.com', 'myimage'],
    ['example.com/xn--7o8h.com/myimage', 'example.com', 'xn--7o8h.com/myimage'],
    ['example.com/some_separator__underscore/myimage', 'example.com', 'some_separator__underscore/myimage'],
    ['example.com/__underscore/myimage', null],
    ['example.com/..dots/myimage', null],
    ['example.com/.dots/myimage', null],
    ['example.com/nodouble..dots/myimage', null],
    ['docker./docker', null],
    ['.docker/docker', null],
    ['docker-/docker', null],
    ['-docker/docker', null],
    ['do..cker/docker', null],
    ['do__cker:8080/docker', null],
    ['do__cker/docker', '', 'do__cker/docker'],
    ['registry.io/foo/project--id.module--name.ver---sion--name', 'registry.io', 'foo/project--id.module--name.ver---sion--name'],
    ['Asdf.com/foo/bar', 'Asdf.com', 'foo/bar'],
    ['[fd00:1:2::3]:75050/foo', '[fd00:1:2::3]:75050', 'foo'],
    ['[fd00123123123]:75050/foo', '[fd00123123123]:75050', 'foo'],
    ['[fd00:1:2::3]75050/foo', null],
    ['[fd00:1:2::3%eth0]:75050/foo', null],
    ['fd00:1:2::3:75050/foo', null],
    ['-ab.com/foo', null],
    ['ab-.com/foo', null],
    ['ab.c-om/foo', 'ab.c-om', 'foo'],
    ['ab.-com/foo', null],
    ['0101.com/foo', '0101.com', 'foo'],
    ['192.168.1.1:750050/foo', '192.168.1.1:750050', 'foo'],
  ];
  for (const c of cases) {
    test(c[0], () => {
      if (c[1] === null) {
        assert.throws(() => parseReference(c[0]), (err: unknown) => err instanceof BerthError && err.code === 'invalid_argument');
        return;
      }
      const ref = parseReference(c[0]);
      assert.equal(ref.domain, c[1]);
      assert.equal(ref.path, c[2]);
    });
  }
  test('Foo/FarB: upper case in the remote name', () => {
    assertRefError(() => parseReference('Foo/FarB'), 'Foo/FarB', E.nameContainsUppercase);
  });
});

describe('parseNormalizedNamed (TestValidateReferenceName, TestValidateRemoteName)', () => {
  const valid = [
    'docker/docker',
    'library/debian',
    'debian',
    'docker.io/docker/docker',
    'docker.io/library/debian',
    'docker.io/debian',
    'index.docker.io/docker/docker',
    'index.docker.io/library/debian',
    'index.docker.io/debian',
    '127.0.0.1:5000/docker/docker',
    '127.0.0.1:5000/library/debian',
    '127.0.0.1:5000/debian',
    '192.168.0.1',
    '192.168.0.1:80',
    '192.168.0.1:8/debian',
    '192.168.0.2:25000/debian',
    'thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev',
    '[fc00::1]:5000/docker',
    '[fc00::1]:5000/docker/docker',
    '[fc00:1:2:3:4:5:6:7]:5000/library/debian',
    // valid with a hostname: no ambiguity with an identifier
    'docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a',
    'Docker/docker',
    'DOCKER/docker',
    // TestValidateRemoteName
    'docker-rules/docker',
    'docker---rules/docker',
    'doc/docker',
    'd/docker',
    'jess/t',
    'dock__er/docker',
  ];
  for (const name of valid) {
    test(`valid: ${name}`, () => {
      parseNormalizedNamed(name);
    });
  }
  const invalid = [
    'https://github.com/docker/docker',
    'docker/Docker',
    '-docker',
    '-docker/docker',
    '-docker.io/docker/docker',
    'docker///docker',
    'docker.io/docker/Docker',
    'docker.io/docker///docker',
    '[fc00::1]',
    '[fc00::1]:5000',
    'fc00::1:5000/debian',
    '[fe80::1%eth0]:5000/debian',
    '[2001:db8:3:4::192.0.2.33]:5000/debian',
    '1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a',
    // TestValidateRemoteName
    'docker-/docker',
    '-docker-/docker',
    '____/____',
    '_docker/_docker',
    'dock..er/docker',
    'dock_.er/docker',
    'dock-.er/docker',
    'docker/',
    'this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255/docker',
    '',
  ];
  for (const name of invalid) {
    test(`invalid: ${name.length > 60 ? `${name.slice(0, 57)}...` : name || '(empty)'}`, () => {
      assert.throws(
        () => parseNormalizedNamed(name),
        (err: unknown) =>
          err instanceof BerthError && err.code === 'invalid_argument' && err.message.startsWith(`${JSON.stringify(name)}: `),
      );
    });
  }

  test("docker's error texts", () => {
    const hex = '1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a';
    assertRefError(() => parseNormalizedNamed(hex), hex, `invalid repository name (${hex}), cannot specify 64-byte hexadecimal strings`);
    assertRefError(() => parseNormalizedNamed('docker/Docker'), 'docker/Docker', `${E.invalidFormat}: repository name (docker/Docker) must be lowercase`);
    assertRefError(() => parseNormalizedNamed('Alpine'), 'Alpine', `${E.invalidFormat}: repository name (library/Alpine) must be lowercase`);
    assertRefError(() => parseNormalizedNamed('Alpine:3'), 'Alpine:3', `${E.invalidFormat}: repository name (library/Alpine) must be lowercase`);
    assertRefError(() => parseNormalizedNamed('docker.io/Alpine'), 'docker.io/Alpine', `${E.invalidFormat}: repository name (library/Alpine) must be lowercase`);
    assertRefError(() => parseNormalizedNamed('https://github.com/docker/docker'), 'https://github.com/docker/docker', E.invalidFormat);
    assertRefError(() => parseNormalizedNamed(''), '', E.invalidFormat);
    assertRefError(() => parseNormalizedNamed('alpine:'), 'alpine:', E.invalidFormat);
    assertRefError(() => parseNormalizedNamed(`${'a/'.repeat(124)}a`), `${'a/'.repeat(124)}a`, E.nameTooLong);
    assertRefError(() => parseNormalizedNamed(`alpine@sha256:${'0'.repeat(63)}`), `alpine@sha256:${'0'.repeat(63)}`, E.checksumLength);
    assertRefError(() => parseNormalizedNamed(`alpine@md5:${'0'.repeat(32)}`), `alpine@md5:${'0'.repeat(32)}`, E.checksumUnsupported);
  });

  test('the 255-character limit counts docker.io/ and library/', () => {
    // docker.io/ (10) + library/ (8) + 237 = 255
    assert.equal(parseNormalizedNamed('a'.repeat(237)).name.length, 255);
    assertRefError(() => parseNormalizedNamed('a'.repeat(238)), 'a'.repeat(238), E.nameTooLong);
  });
});

describe('parseNormalizedNamed: familiar and full names (TestParseRepositoryInfo)', () => {
  const cases = [
    { remote: 'fooo/bar', familiar: 'fooo/bar', full: 'docker.io/fooo/bar', ambiguous: 'index.docker.io/fooo/bar', domain: 'docker.io' },
    { remote: 'library/ubuntu', familiar: 'ubuntu', full: 'docker.io/library/ubuntu', ambiguous: 'library/ubuntu', domain: 'docker.io' },
    { remote: 'nonlibrary/ubuntu', familiar: 'nonlibrary/ubuntu', full: 'docker.io/nonlibrary/ubuntu', domain: 'docker.io' },
    { remote: 'other/library', familiar: 'other/library', full: 'docker.io/other/library', domain: 'docker.io' },
    { remote: 'private/moonbase', familiar: '127.0.0.1:8000/private/moonbase', full: '127.0.0.1:8000/private/moonbase', domain: '127.0.0.1:8000' },
    { remote: 'privatebase', familiar: '127.0.0.1:8000/privatebase', full: '127.0.0.1:8000/privatebase', domain: '127.0.0.1:8000' },
    { remote: 'private/moonbase', familiar: 'example.com/private/moonbase', full: 'example.com/private/moonbase', domain: 'example.com' },
    { remote: 'privatebase', familiar: 'example.com/privatebase', full: 'example.com/privatebase', domain: 'example.com' },
    { remote: 'private/moonbase', familiar: 'example.com:8000/private/moonbase', full: 'example.com:8000/private/moonbase', domain: 'example.com:8000' },
    { remote: 'privatebasee', familiar: 'example.com:8000/privatebasee', full: 'example.com:8000/privatebasee', domain: 'example.com:8000' },
    {
      remote: 'library/ubuntu-12.04-base',
      familiar: 'ubuntu-12.04-base',
      full: 'docker.io/library/ubuntu-12.04-base',
      ambiguous: 'index.docker.io/library/ubuntu-12.04-base',
      domain: 'docker.io',
    },
    { remote: 'library/foo', familiar: 'foo', full: 'docker.io/library/foo', ambiguous: 'docker.io/foo', domain: 'docker.io' },
    { remote: 'library/foo/bar', familiar: 'library/foo/bar', full: 'docker.io/library/foo/bar', domain: 'docker.io' },
    { remote: 'store/foo/bar', familiar: 'store/foo/bar', full: 'docker.io/store/foo/bar', domain: 'docker.io' },
    { remote: 'bar', familiar: 'Foo/bar', full: 'Foo/bar', domain: 'Foo' },
    { remote: 'bar', familiar: 'FOO/bar', full: 'FOO/bar', domain: 'FOO' },
  ];
  for (const c of cases) {
    for (const input of [c.familiar, c.full, ...(c.ambiguous ? [c.ambiguous] : [])]) {
      test(input, () => {
        const ref = parseNormalizedNamed(input);
        assert.equal(familiarRepository(ref), c.familiar);
        assert.equal(familiarName(ref), c.familiar);
        assert.equal(String(ref), c.full);
        assert.equal(ref.name, c.full);
        assert.equal(ref.domain, c.domain);
        assert.equal(ref.path, c.remote);
        assert.equal(repository(ref), c.remote);
        assert.ok(isNameOnly(ref));
      });
    }
  }
});

describe('parseNormalizedNamed: domain and path (TestNormalizedSplitHostname)', () => {
  const cases: Array<[string, string, string]> = [
    ['test.com/foo', 'test.com', 'foo'],
    ['test_com/foo', 'docker.io', 'test_com/foo'],
    ['docker/migrator', 'docker.io', 'docker/migrator'],
    ['test.com:8080/foo', 'test.com:8080', 'foo'],
    ['test-com:8080/foo', 'test-com:8080', 'foo'],
    ['foo', 'docker.io', 'library/foo'],
    ['xn--n3h.com/foo', 'xn--n3h.com', 'foo'],
    ['xn--n3h.com:18080/foo', 'xn--n3h.com:18080', 'foo'],
    ['docker.io/foo', 'docker.io', 'library/foo'],
    ['docker.io/library/foo', 'docker.io', 'library/foo'],
    ['docker.io/library/foo/bar', 'docker.io', 'library/foo/bar'],
    // localhost is always a domain; other hosts keep their paths as written.
    ['localhost/foo', 'localhost', 'foo'],
    ['localhost:5000/foo', 'localhost:5000', 'foo'],
    ['example.com/foo', 'example.com', 'foo'],
    ['index.docker.io/foo', 'docker.io', 'library/foo'],
    ['index.docker.io/foo/bar', 'docker.io', 'foo/bar'],
    ['[::1]/foo', '[::1]', 'foo'],
    ['[::1]:5000/foo/bar', '[::1]:5000', 'foo/bar'],
  ];
  for (const [input, domain, path] of cases) {
    test(input, () => {
      const ref = parseNormalizedNamed(input);
      assert.equal(ref.domain, domain);
      assert.equal(ref.path, path);
      assert.equal(repository(ref), path);
    });
  }
});

describe('tags and digests', () => {
  test('a tag and a digest together are both kept by parseNormalizedNamed (TestParseReferenceWithTagAndDigest)', () => {
    const short = 'busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa';
    const ref = parseNormalizedNamed(short);
    assert.equal(String(ref), `docker.io/library/${short}`);
    assert.equal(ref.tag, 'latest');
    assert.equal(ref.digest, 'sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa');
    assert.equal(familiarName(ref), short);
  });

  test('invalid components (TestInvalidReferenceComponents)', () => {
    assert.throws(() => parseNormalizedNamed('-foo'), BerthError);
    const ref = parseNormalizedNamed('busybox');
    assertRefError(() => withTag(ref, '-foo'), '-foo', E.tagInvalidFormat);
    assertRefError(() => withDigest(ref, 'foo'), 'foo', E.digestInvalidFormat);
  });

  test('withTag (TestWithTag)', () => {
    const cases: Array<[string, string | undefined, string, string]> = [
      ['test.com/foo', undefined, 'tag', 'test.com/foo:tag'],
      ['foo', undefined, 'tag2', 'foo:tag2'],
      ['test.com:8000/foo', undefined, 'tag4', 'test.com:8000/foo:tag4'],
      ['test.com:8000/foo', undefined, 'TAG5', 'test.com:8000/foo:TAG5'],
      ['test.com:8000/foo', 'sha256:1234567890098765432112345667890098765', 'TAG5', 'test.com:8000/foo:TAG5@sha256:1234567890098765432112345667890098765'],
    ];
    for (const [name, digest, tag, combined] of cases) {
      let ref = parseReference(name);
      if (digest) ref = withDigest(ref, digest);
      assert.equal(String(withTag(ref, tag)), combined);
    }
  });

  test('withDigest (TestWithDigest)', () => {
    const cases: Array<[string, string, string | undefined, string]> = [
      ['test.com/foo', 'sha256:1234567890098765432112345667890098765', undefined, 'test.com/foo@sha256:1234567890098765432112345667890098765'],
      ['foo', 'sha256:1234567890098765432112345667890098765', undefined, 'foo@sha256:1234567890098765432112345667890098765'],
      ['test.com:8000/foo', 'sha256:1234567890098765432112345667890098765', undefined, 'test.com:8000/foo@sha256:1234567890098765432112345667890098765'],
      ['test.com:8000/foo', 'sha256:1234567890098765432112345667890098765', 'latest', 'test.com:8000/foo:latest@sha256:1234567890098765432112345667890098765'],
    ];
    for (const [name, digest, tag, combined] of cases) {
      let ref = parseReference(name);
      if (tag) ref = withTag(ref, tag);
      assert.equal(String(withDigest(ref, digest)), combined);
    }
  });

  test('trimNamed and isNameOnly', () => {
    const ref = parseNormalizedNamed(`alpine:3@sha256:${ff64}`);
    assert.ok(!isNameOnly(ref));
    const bare = trimNamed(ref);
    assert.ok(isNameOnly(bare));
    assert.equal(String(bare), 'docker.io/library/alpine');
  });
});

describe('parseDockerRef (TestParseDockerRef and reference §7.1)', () => {
  const digest = 'sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582';
  const cases: Array<[string, string, string]> = [
    ['nothing', 'busybox', 'docker.io/library/busybox:latest'],
    ['tag only', 'busybox:latest', 'docker.io/library/busybox:latest'],
    ['digest only', `busybox@${digest}`, `docker.io/library/busybox@${digest}`],
    ['path only', 'library/busybox', 'docker.io/library/busybox:latest'],
    ['hostname only', 'docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['no tag', 'docker.io/library/busybox', 'docker.io/library/busybox:latest'],
    ['no path', 'docker.io/busybox:latest', 'docker.io/library/busybox:latest'],
    ['no hostname', 'library/busybox:latest', 'docker.io/library/busybox:latest'],
    ['full reference with tag', 'docker.io/library/busybox:latest', 'docker.io/library/busybox:latest'],
    ['gcr reference without tag', 'gcr.io/library/busybox', 'gcr.io/library/busybox:latest'],
    ['both tag and digest', `gcr.io/library/busybox:latest@${digest}`, `gcr.io/library/busybox@${digest}`],
    // reference §7.1
    ['ubuntu', 'ubuntu', 'docker.io/library/ubuntu:latest'],
    ['foo/bar', 'foo/bar', 'docker.io/foo/bar:latest'],
    ['localhost/foo', 'localhost/foo', 'localhost/foo:latest'],
    [
      'busybox tag and digest',
      'busybox:latest@sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa',
      'docker.io/library/busybox@sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa',
    ],
    ['alpine:3', 'alpine:3', 'docker.io/library/alpine:3'],
    ['index.docker.io', 'index.docker.io/library/alpine', 'docker.io/library/alpine:latest'],
    ['port', 'localhost:5000/a/b', 'localhost:5000/a/b:latest'],
    ['ipv6', '[::1]:5000/repo:v1', '[::1]:5000/repo:v1'],
  ];
  for (const [name, input, expected] of cases) {
    test(name, () => {
      const ref = parseDockerRef(input);
      assert.equal(String(ref), expected);
      // The output is itself a valid reference, parsed to the same fields.
      assert.deepEqual(fields(parseReference(String(ref))), fields(ref));
    });
  }

  test('the tag dropped beside a digest is kept as originalTag', () => {
    const ref = parseDockerRef(`busybox:1.36@${digest}`);
    assert.equal(ref.tag, undefined);
    assert.equal(ref.digest, digest);
    assert.equal(ref.originalTag, '1.36');
    assert.equal(familiarName(ref), `busybox@${digest}`);
    assert.equal(parseDockerRef('busybox').originalTag, undefined);
  });

  test('fields and familiar forms', () => {
    const ref = parseDockerRef('alpine');
    assert.deepEqual(fields(ref), {
      domain: 'docker.io',
      path: 'library/alpine',
      name: 'docker.io/library/alpine',
      tag: 'latest',
      digest: undefined,
    });
    assert.equal(familiarName(ref), 'alpine:latest');
    assert.equal(familiarRepository(ref), 'alpine');
    assert.equal(repository(ref), 'library/alpine');
    assert.equal(familiarName(parseDockerRef('docker.io/foo/bar')), 'foo/bar:latest');
    assert.equal(familiarName(parseDockerRef('ghcr.io/foo/bar:1')), 'ghcr.io/foo/bar:1');
    assert.equal(familiarName(parseDockerRef('docker.io/library/foo/bar')), 'library/foo/bar:latest');
    assert.equal(`${ref}`, 'docker.io/library/alpine:latest');
    assert.equal(JSON.parse(JSON.stringify(ref)).name, 'docker.io/library/alpine');
  });

  test('errors name the reference', () => {
    assertRefError(() => parseDockerRef('Alpine'), 'Alpine', `${E.invalidFormat}: repository name (library/Alpine) must be lowercase`);
    assertRefError(() => parseDockerRef('alpine:latest:3'), 'alpine:latest:3', E.invalidFormat);
    assertRefError(() => parseDockerRef('docker.io/library/alpine:3.19://'), 'docker.io/library/alpine:3.19://', E.invalidFormat);
  });
});

describe('parseReference agrees with upstream\'s single regular expression', () => {
  // regexp.go, verbatim, as one expression (fine to backtrack on these short inputs).
  const alnum = '[a-z0-9]+';
  const sep = '(?:[._]|__|[-]+)';
  const pathComponent = `${alnum}(?:${sep}${alnum})*`;
  const remoteName = `${pathComponent}(?:/${pathComponent})*`;
  const dnc = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
  const domainAndPort = `(?:${dnc}(?:\\.${dnc})*|\\[(?:[a-fA-F0-9:]+)\\])(?::[0-9]+)?`;
  const namePat = `(?:${domainAndPort}/)?${remoteName}`;
  const referenceRe = new RegExp(`^(${namePat})(?::([\\w][\\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}))?$`);
  const nameRe = new RegExp(`^(?:(${domainAndPort})/)?(${remoteName})$`);

  const pieces = [
    'a', 'b', 'z9', 'A', '0', '-', '--', '_', '__', '.', ':', '/', '//', '@', '[', ']', '[::1]', '::', '5000',
    'localhost', 'docker.io', 'x.com', 'tag', 'T', `sha256:${ff64}`, `sha256:${'a'.repeat(32)}`, `Sha256:${ff64}`,
    `sha256:${'F'.repeat(64)}`, `sha512:${ff128}`, `x+y.z-w_v:${'0'.repeat(40)}`, '%', '$',
  ];
  // A small deterministic generator (xorshift) so failures reproduce.
  let seed = 0x2545f491;
  const rand = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const formatErrors: string[] = [E.invalidFormat, E.nameContainsUppercase, E.nameEmpty];

  test('20000 generated inputs', () => {
    for (let i = 0; i < 20000; i++) {
      let s = '';
      const n = 1 + rand(7);
      for (let j = 0; j < n; j++) s += pieces[rand(pieces.length)];
      const m = referenceRe.exec(s);
      let ref: ImageReference | undefined;
      let error: string | undefined;
      try {
        ref = parseReference(s);
      } catch (err) {
        assert.ok(err instanceof BerthError && err.code === 'invalid_argument');
        error = err.message.slice(JSON.stringify(s).length + 2);
      }
      if (!m) {
        assert.ok(error !== undefined && formatErrors.includes(error), `${s}: parsed though upstream does not match (${error})`);
        continue;
      }
      if (error !== undefined) {
        assert.ok(!formatErrors.includes(error), `${s}: upstream matches but got ${error}`);
        continue;
      }
      const nm = nameRe.exec(m[1])!;
      assert.deepEqual(
        { domain: ref!.domain, path: ref!.path, tag: ref!.tag, digest: ref!.digest },
        { domain: nm[1] ?? '', path: nm[2], tag: m[2], digest: m[3] },
        s,
      );
    }
  });

  test('long hostile inputs are refused as invalid references, without a backtracking blow-up', () => {
    const inputs = [
      `${'a'.repeat(100_000)}!`,
      `${'a-'.repeat(50_000)}!`,
      `${'a.'.repeat(50_000)}/x!`,
      `x/${'a__'.repeat(30_000)}!`,
      `a@sha256:${'f'.repeat(100_000)}g`,
      `[${':'.repeat(100_000)}`,
    ];
    const check = () => {
      for (const s of inputs) {
        assertRefError(() => parseReference(s), s, E.invalidFormat);
        assertRefError(() => parseNormalizedNamed(s), s, E.invalidFormat);
      }
    };
    // node:test's timeout cannot stop synchronous code, so a parser that backtracks without end
    // would hang the run; vm's watchdog stops it and the test fails instead. A hang guard, not a
    // speed bound: parsing in linear time takes milliseconds here, even on a busy machine.
    try {
      runInNewContext('check()', { check }, { timeout: 60_000 });
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') assert.fail('parsing the hostile inputs did not end (catastrophic backtracking?)');
      throw err;
    }
  });
});
