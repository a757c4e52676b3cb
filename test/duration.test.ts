// Go durations (src/metadata/duration.ts): the cases of Go's time_test.go (parseDurationTests and
// parseDurationErrorTests), as lease lifetimes (`expiresIn`) are written in them.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BerthError } from '../store/errors.js';
import { parseDuration, parseDurationNanos } from '../src/metadata/duration.js';

const ns = 1n;
const us = 1000n * ns;
const ms = 1000n * us;
const s = 1000n * ms;
const m = 60n * s;
const h = 60n * m;

describe('parseDurationNanos: Go time.ParseDuration', () => {
  const valid: Array<[string, bigint]> = [
    // simple
    ['0', 0n],
    ['5s', 5n * s],
    ['30s', 30n * s],
    ['1478s', 1478n * s],
    // sign
    ['-5s', -5n * s],
    ['+5s', 5n * s],
    ['-0', 0n],
    ['+0', 0n],
    // decimal
    ['5.0s', 5n * s],
    ['5.6s', 5n * s + 600n * ms],
    ['5.s', 5n * s],
    ['.5s', 500n * ms],
    ['1.0s', 1n * s],
    ['1.00s', 1n * s],
    ['1.004s', 1n * s + 4n * ms],
    ['1.0040s', 1n * s + 4n * ms],
    ['100.00100s', 100n * s + 1n * ms],
    // every unit
    ['10ns', 10n * ns],
    ['11us', 11n * us],
    ['12µs', 12n * us], // U+00B5
    ['12μs', 12n * us], // U+03BC
    ['13ms', 13n * ms],
    ['14s', 14n * s],
    ['15m', 15n * m],
    ['16h', 16n * h],
    // composite
    ['3h30m', 3n * h + 30n * m],
    ['10.5s4m', 4n * m + 10n * s + 500n * ms],
    ['-2m3.4s', -(2n * m + 3n * s + 400n * ms)],
    ['1h2m3s4ms5us6ns', 1n * h + 2n * m + 3n * s + 4n * ms + 5n * us + 6n * ns],
    ['39h9m14.425s', 39n * h + 9n * m + 14n * s + 425n * ms],
    // large
    ['52763797000ns', 52763797000n * ns],
    ['9007199254740993ns', 9007199254740993n],
    ['9223372036854775807ns', 9223372036854775807n],
    ['9223372036854775.807us', 9223372036854775807n],
    ['9223372036s854ms775us807ns', 9223372036854775807n],
    ['-9223372036854775808ns', -9223372036854775808n],
    ['-9223372036854775.808us', -9223372036854775808n],
    ['-9223372036s854ms775us808ns', -9223372036854775808n],
    ['-2562047h47m16.854775808s', -9223372036854775808n],
    // fractions with many digits
    ['0.100000000000000000000h', 6n * m],
    ['0.830103483285477580700h', 49n * m + 48n * s + 372539827n * ns],
  ];
  for (const [text, want] of valid) {
    test(`${JSON.stringify(text)} = ${want} ns`, () => assert.equal(parseDurationNanos(text), want));
  }

  test('"0.3333333333333333333h" is 20m to within a nanosecond (Go rounds through a float)', () => {
    const got = parseDurationNanos('0.3333333333333333333h');
    assert.ok(got >= 20n * m - 1n && got <= 20n * m, String(got));
  });

  const invalid: Array<[string, RegExp]> = [
    ['', /^invalid duration ""$/],
    ['3', /^missing unit in duration "3"$/],
    ['-', /^invalid duration "-"$/],
    ['s', /^invalid duration "s"$/],
    ['.', /^invalid duration "\."$/],
    ['-.', /^invalid duration "-\."$/],
    ['.s', /^invalid duration "\.s"$/],
    ['+.s', /^invalid duration "\+\.s"$/],
    ['1d', /^unknown unit "d" in duration "1d"$/],
    ['1h30', /^missing unit in duration "1h30"$/],
    ['24 h', /^unknown unit " h" in duration "24 h"$/],
    ['\x85\x85', /^invalid duration/],
    ['\xffff', /^invalid duration/],
    ['hello \xffff world', /^invalid duration/],
    ['9223372036854775808ns', /^invalid duration/],
    ['9223372036854775.808us', /^invalid duration/],
    ['9223372036854ms775us808ns', /^invalid duration/],
    ['9223372036s854ms775us808ns', /^invalid duration/],
    ['-9223372036854775809ns', /^invalid duration/],
  ];
  for (const [text, message] of invalid) {
    test(`${JSON.stringify(text)} is invalid_argument`, () => {
      assert.throws(
        () => parseDurationNanos(text),
        (err: unknown) => err instanceof BerthError && err.code === 'invalid_argument' && message.test(err.message),
      );
    });
  }
});

describe('parseDuration: milliseconds', () => {
  test('lease lifetimes', () => {
    assert.equal(parseDuration('24h'), 24 * 3600 * 1000);
    assert.equal(parseDuration('90m'), 90 * 60 * 1000);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('1h30m'), 90 * 60 * 1000);
    assert.equal(parseDuration('0'), 0);
    assert.equal(parseDuration('-1m'), -60_000);
  });

  test('fractions of a millisecond are kept', () => {
    assert.equal(parseDuration('1500us'), 1.5);
    assert.equal(parseDuration('1ns'), 1e-6);
  });
});
