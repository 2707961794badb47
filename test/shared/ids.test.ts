import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { MYKEY_ALPHABET, formatMyKeyId, isMyKeyId, normalizeMyKeyId, randomMyKeyId } from '../../shared/ids.ts';

test('the alphabet has no look-alike characters', () => {
  for (const c of '01OIL') assert.not.ok(MYKEY_ALPHABET.includes(c), c);
  assert.is(new Set(MYKEY_ALPHABET).size, MYKEY_ALPHABET.length);
});

test('random MyKey IDs are well formed and spread over the whole alphabet', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const id = randomMyKeyId(randomBytes);
    assert.ok(isMyKeyId(id), id);
    for (const c of id) seen.add(c);
  }
  assert.is(seen.size, MYKEY_ALPHABET.length);
});

test('normalizes what a person typed and refuses look-alikes', () => {
  assert.is(normalizeMyKeyId('abcd-efgh'), 'ABCDEFGH');
  assert.is(normalizeMyKeyId(' 2345 6789 '), '23456789');
  assert.is(normalizeMyKeyId('ABCD-EFG0'), undefined);
  assert.is(normalizeMyKeyId('ABCDEFGHJ'), undefined);
  assert.is(formatMyKeyId('ABCDEFGH'), 'ABCD-EFGH');
});

test.run();
