import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { withDefaults } from '../../shared/options.ts';

const test = suite('option defaults');

test('takes each option that was given and the default for the others', () => {
  assert.equal(withDefaults({ a: 5 }, { a: 1, b: 'x', c: false }), { a: 5, b: 'x', c: false });
});

test('keeps given falsy values (0, empty string, false): only undefined and null fall back', () => {
  assert.equal(withDefaults({ a: 0, b: '', c: false }, { a: 1, b: 'x', c: true }), { a: 0, b: '', c: false });
  assert.equal(withDefaults({ a: undefined, b: null }, { a: 1, b: 'x' }), { a: 1, b: 'x' });
});

test('returns only the keys of the defaults, not other options given beside them', () => {
  const given: { a?: number; other?: string } = { a: 2, other: 'kept out' };
  assert.equal(withDefaults(given, { a: 1 }), { a: 2 });
});

test('does not change the defaults table', () => {
  const d = { a: 1 };
  withDefaults({ a: 2 }, d);
  assert.equal(d, { a: 1 });
});

test.run();
