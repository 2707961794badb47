// The paced forms a scheduled CRL run uses on the hub's event loop (parseCrlSteps, indexCrlSteps,
// loadCrlPaced): a national CRL is walked and indexed in slices, yielding whenever the pace says its
// slice is used up, and the signature is checked on the libuv pool. They end with exactly what the
// one-piece forms give, refusals included.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { crlIssuerFromCertificate, indexCrl, indexCrlSteps, loadCrl, loadCrlPaced, parseCrl, parseCrlSteps, type CrlIssuer, type Pace } from '../../../../hub/pki/crl/index.ts';
import { concat, crl, entry, intBytes, reasonExt, utc } from './helpers/der-build.ts';
import { makeOpensslCa } from './helpers/openssl-ca.ts';

const T1 = utc('260101000000Z');
const N = 70_000;
const entries = Array.from({ length: N }, (_, i) => entry(intBytes(0x01, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff), T1, i % 5 ? undefined : [reasonExt(1)]));
const big = crl({ entries });

/** A pace whose slice is always used up: every look yields. Counts the restarts. */
function always(): Pace & { restarts: number } {
  return {
    restarts: 0,
    used: () => true,
    restart() {
      this.restarts++;
    },
  };
}

/** Runs a stepped generator through, counting the turns it yields. */
function drive<T>(it: Generator<void, T>): { value: T; turns: number } {
  let turns = 0;
  for (;;) {
    const r = it.next();
    if (r.done) return { value: r.value, turns };
    turns++;
  }
}

test('a paced parse and index of 70,000 entries yield many times and build what the one-piece forms build', () => {
  const pace = always();
  const parsed = drive(parseCrlSteps(big, pace));
  assert.ok(parsed.turns >= Math.floor(N / 4096) - 1, `parse yielded ${parsed.turns} times`);
  assert.is(pace.restarts, parsed.turns);
  const once = parseCrl(big);
  assert.ok(parsed.value.ok && once.ok);
  if (!parsed.value.ok || !once.ok) return;
  assert.is(parsed.value.value.entryCount, N);
  const indexed = drive(indexCrlSteps(parsed.value.value, {}, pace));
  assert.ok(indexed.turns >= 2, `index yielded ${indexed.turns} times`);
  const ref = indexCrl(once.value);
  assert.ok(indexed.value.ok && ref.ok);
  if (!indexed.value.ok || !ref.ok) return;
  assert.is(indexed.value.value.size, N);
  for (const i of [0, 1, 4095, 4096, 33_333, N - 1]) {
    const s = (0x01n << 24n) | BigInt(i);
    assert.equal(indexed.value.value.lookup(s), ref.value.lookup(s), `serial ${i}`);
    assert.is(indexed.value.value.lookup(s)?.reason, i % 5 ? 'unspecified' : 'keyCompromise');
  }
  assert.is(indexed.value.value.lookup(0x02n << 24n), undefined);
});

test('a paced parse refuses a malformed entry deep in the list as parseCrl does, offset and all', () => {
  // The last entry's serial INTEGER is empty: found only after many slices.
  const bad = crl({ entries: [...entries.slice(0, 20_000), concat([Uint8Array.of(0x30, 0x11, 0x02, 0x00), T1])] });
  const stepped = drive(parseCrlSteps(bad, always()));
  const once = parseCrl(bad);
  assert.ok(!stepped.value.ok && !once.ok);
  if (stepped.value.ok || once.ok) return;
  assert.is(stepped.value.code, 'crl_malformed');
  assert.is(stepped.value.message, once.message);
  assert.ok(stepped.turns > 0);
});

test('entriesNotIn over blocks of rows finds what it finds in one go: exactly the entries the later CRL adds', () => {
  const added = Array.from({ length: 500 }, (_, i) => entry(intBytes(0x02, (i >> 8) & 0xff, i & 0xff), T1, [reasonExt(1)]));
  const b = parseCrl(big);
  const p = parseCrl(crl({ entries: [...entries.slice(0, 30_000), ...added, ...entries.slice(30_000)] }));
  assert.ok(b.ok && p.ok);
  if (!b.ok || !p.ok) return;
  const before = indexCrl(b.value);
  assert.ok(before.ok);
  if (!before.ok) return;
  const after = indexCrl(p.value);
  assert.ok(after.ok);
  if (!after.ok) return;
  const whole = [...after.value.entriesNotIn(before.value)].map((e) => e.serialHex).sort();
  const blocks: string[] = [];
  for (let from = 0; from < after.value.size; from += 4096) for (const e of after.value.entriesNotIn(before.value, from, from + 4096)) blocks.push(e.serialHex);
  assert.is(whole.length, 500);
  assert.equal(blocks.sort(), whole);
  assert.equal(whole, added.map((_, i) => `02${((i >> 8) & 0xff).toString(16).padStart(2, '0')}${(i & 0xff).toString(16).padStart(2, '0')}`.toUpperCase()).sort());
});

const ca = makeOpensslCa({ subject: '/C=JP/O=JPKI/OU=JPKI for user authentication' });
const other = makeOpensslCa({ subject: '/C=JP/O=Another CA' });
const twin = makeOpensslCa({ subject: '/C=JP/O=JPKI/OU=JPKI for user authentication' });
ca.revoke('80AA', 'keyCompromise');
ca.revoke('11', 'superseded');
const signed = ca.genCrl();
for (const c of [ca, other, twin]) c.cleanup();

function issuer(pem: string, label: string): CrlIssuer {
  const r = crlIssuerFromCertificate(pem, label);
  if (!r.ok) throw new Error(r.message);
  return r.value;
}

/** Runs loadCrlPaced through, letting the event loop turn at each yield as the hub does. */
async function paced(der: Uint8Array, issuers: CrlIssuer[]) {
  const it = loadCrlPaced(der, issuers, always());
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
    await new Promise<void>((res) => setImmediate(res));
  }
}

test('loadCrlPaced loads what loadCrl loads, checking the signature off the event loop, with the key that signed it', async () => {
  // A twin issuer of the same name first: its key does not verify, the right one does.
  const issuers = [issuer(twin.caPem, 'twin'), issuer(ca.caPem, 'jpki')];
  const r = await paced(signed, issuers);
  const once = loadCrl(signed, issuers);
  assert.ok(r.ok && once.ok);
  if (!r.ok || !once.ok) return;
  assert.is(r.value.issuer.label, 'jpki');
  assert.is(r.value.issuer.label, once.value.issuer.label);
  assert.is(r.value.index.lookup('80aa')?.reason, 'keyCompromise');
  assert.equal([...r.value.index.entries()], [...once.value.index.entries()]);
});

test('loadCrlPaced refuses as loadCrl does: an unknown issuer, a forged signature, bytes that are not a CRL', async () => {
  const forged = Uint8Array.from(signed);
  forged[forged.length - 5] ^= 0x01; // a bit of the signature flipped
  const table: [string, Uint8Array, CrlIssuer[], string][] = [
    ['unknown issuer', signed, [issuer(other.caPem, 'other')], 'crl_unknown_issuer'],
    ['same name, another key', signed, [issuer(twin.caPem, 'twin')], 'crl_signature_invalid'],
    ['forged signature', forged, [issuer(ca.caPem, 'jpki')], 'crl_signature_invalid'],
    ['not a CRL', new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00]), [issuer(ca.caPem, 'jpki')], 'crl_malformed'],
  ];
  for (const [name, der, issuers, code] of table) {
    const r = await paced(der, issuers);
    const once = loadCrl(der, issuers);
    assert.ok(!r.ok && !once.ok, name);
    if (r.ok || once.ok) continue;
    assert.is(r.code, code, name);
    assert.is(once.code, code, name);
    assert.is(r.message, once.message, name);
  }
});

test.run();
