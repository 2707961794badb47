import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ContactClock, type ClockReading } from '../../../edge/sync/contact-clock.ts';
import { Backoff } from '../../../edge/sync/backoff.ts';

const BUILD = Date.parse('2026-01-01T00:00:00Z');
const NOW = Date.parse('2026-06-01T12:00:00Z');
const HOUR = 3_600_000;

function fakeClock(wall = NOW) {
  const c = { mono: 1000, wall };
  return {
    c,
    now: (): ClockReading => ({ ...c }),
    advance: (ms: number) => {
      c.mono += ms;
      c.wall += ms;
    },
  };
}

test('is fresh while connected and after recent contact, stale past the bound (monotonic)', () => {
  const f = fakeClock();
  const cc = new ContactClock({ maxStalenessMs: HOUR, notBeforeMs: BUILD, now: f.now });
  cc.recordContact(f.c.wall);
  assert.equal(cc.assess(true), { verdict: 'fresh', ageMs: 0 });
  f.advance(HOUR - 1);
  assert.is(cc.assess(false).verdict, 'fresh');
  f.advance(2);
  assert.is(cc.assess(false).verdict, 'stale');
});

test('judges staleness by the monotonic clock even when the wall clock steps forward', () => {
  const f = fakeClock();
  const cc = new ContactClock({ maxStalenessMs: HOUR, notBeforeMs: BUILD, now: f.now });
  cc.recordContact();
  f.c.wall += 10 * HOUR; // NTP correction forward
  f.c.mono += 1000;
  const a = cc.assess(false);
  assert.is(a.verdict, 'fresh');
  assert.is(a.ageMs, 1000);
});

test('uses the recorded wall time of the last contact after a restart', () => {
  const table: [string, number | undefined, number, string][] = [
    ['recent contact before restart', NOW - 10 * 60_000, NOW, 'fresh'],
    ['old contact before restart', NOW - 2 * HOUR, NOW, 'stale'],
    ['never in contact', undefined, NOW, 'stale'],
    ['clock before the build date (no RTC)', NOW - 10 * 60_000, Date.parse('1970-01-01T00:01:00Z'), 'clock_unsure'],
    ['clock before the last contact', NOW - 10 * 60_000, NOW - 5 * HOUR, 'clock_unsure'],
  ];
  for (const [name, last, wall, verdict] of table) {
    const f = fakeClock(wall);
    const cc = new ContactClock({ maxStalenessMs: HOUR, notBeforeMs: BUILD, lastContactWall: last, now: f.now });
    assert.is(cc.assess(false).verdict, verdict, name);
  }
});

test('says clock_unsure when the wall clock jumps back, until the hub vouches for it', () => {
  const f = fakeClock();
  const cc = new ContactClock({ maxStalenessMs: HOUR, notBeforeMs: BUILD, lastContactWall: NOW - 60_000, now: f.now });
  f.c.wall -= 60_000; // stepped back a minute
  f.c.mono += 10;
  const a = cc.assess(false);
  assert.is(a.verdict, 'clock_unsure');
  assert.is(a.clockReason, 'jumped_back');
  cc.recordContact(f.c.wall); // HTTP Date agrees with the clock as it is now
  f.advance(1000);
  assert.equal(cc.assess(false), { verdict: 'fresh', ageMs: 1000 });
});

test('says the clock is unsure when it is far from the hub Date header, even while connected', () => {
  const f = fakeClock();
  const cc = new ContactClock({ maxStalenessMs: HOUR, notBeforeMs: BUILD, maxSkewMs: 5 * 60_000, now: f.now });
  cc.recordContact(f.c.wall - 20 * 60_000);
  assert.is(cc.assess(true).clockReason, 'hub_skew');
  // Staleness is still judged (monotonic): fresh, with the clock flagged.
  f.advance(1000);
  assert.equal(cc.assess(false), { verdict: 'fresh', ageMs: 1000, clockReason: 'hub_skew' });
  cc.recordContact(f.c.wall + 2000); // within tolerance
  assert.is(cc.assess(true).clockReason, undefined);
});

test('backs off exponentially with jitter, capped, and resets', () => {
  const b = new Backoff({ minMs: 100, maxMs: 1000, random: () => 1 });
  assert.equal([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000, 1000]);
  b.reset();
  assert.is(b.next(), 100);
  const low = new Backoff({ minMs: 100, maxMs: 1000, random: () => 0 });
  assert.equal([low.next(), low.next()], [50, 100]);
  const real = new Backoff({ minMs: 100, maxMs: 1000 });
  for (let i = 0; i < 50; i++) {
    const d = real.next();
    assert.ok(d >= 50 && d <= 1000);
  }
});

test.run();
