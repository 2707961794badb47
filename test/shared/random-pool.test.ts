import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createRandomPool } from '../../shared/random-pool.ts';

test('a random pool hands out the requested number of bytes as fresh copies', () => {
  const draw = createRandomPool(64);
  for (const n of [0, 1, 16, 32, 31, 64, 200]) {
    const b = draw(n);
    assert.instance(b, Uint8Array);
    assert.is(b.length, n);
  }
  const a = draw(16);
  const copy = a.slice();
  draw(32);
  draw(32);
  assert.equal(a, copy, 'a later draw (and a refill) does not change bytes already handed out');
});

test('a random pool never hands out the same bytes twice across refills', () => {
  const draw = createRandomPool(256);
  const seen = new Set<string>();
  for (let i = 0; i < 5000; i++) {
    const hex = Buffer.from(draw(16)).toString('hex');
    assert.not.ok(seen.has(hex), `draw ${i} repeated an earlier one`);
    seen.add(hex);
  }
});

test('a random pool spreads its bytes over every value', () => {
  const draw = createRandomPool();
  const counts = new Array<number>(256).fill(0);
  for (let i = 0; i < 4000; i++) for (const b of draw(32)) counts[b]++;
  // 128,000 bytes: 500 expected per value; a CSPRNG is nowhere near 250 or 750.
  assert.ok(Math.min(...counts) > 250 && Math.max(...counts) < 750, `counts from ${Math.min(...counts)} to ${Math.max(...counts)}`);
});

test('a random pool refuses a negative or fractional count and a tiny block', () => {
  const draw = createRandomPool();
  assert.throws(() => draw(-1), /cannot draw/);
  assert.throws(() => draw(1.5), /cannot draw/);
  assert.throws(() => createRandomPool(8), /blockBytes/);
});

test.run();
