// Every malformed input is crl_malformed: truncation at any byte, any byte changed, trailing data.
// Nothing may throw or loop, whatever the bytes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { indexCrl, parseCrl } from '../../../../hub/pki/crl/index.ts';
import { makeOpensslCa } from './helpers/openssl-ca.ts';
import { crl, entry, ext, gen, intBytes, oid, reasonExt, seq, utc } from './helpers/der-build.ts';

const ca = makeOpensslCa({ subject: '/C=JP/O=Fuzz CA' });
ca.revoke('80FF01', 'keyCompromise', ['-crl_compromise', '20260101000000Z']);
ca.revoke('05', 'superseded');
ca.revoke('42', 'certificateHold', ['-crl_hold', '1.2.840.10040.2.3']);
const fromOpenssl = ca.genCrl();
ca.cleanup();

const handMade = crl({
  nextUpdate: gen('20500101000000Z'),
  entries: [
    entry(intBytes(0x00, 0x80, 0x01), utc('260101000000Z'), [reasonExt(1), ext(oid(0x55, 0x1d, 0x18), false, gen('20251231000000Z'))]),
    entry(intBytes(0x7f), gen('20260102000000Z')),
    entry(intBytes(0x01, 0x02), utc('260103000000Z'), [ext(oid(0x55, 0x1d, 0x1d), true, seq())]),
  ],
  extensions: [ext(oid(0x55, 0x1d, 0x14), false, intBytes(9)), ext(oid(0x55, 0x1d, 0x23), false, seq(new Uint8Array([0x80, 0x02, 0xaa, 0xbb])))],
});

const samples: [string, Uint8Array][] = [
  ['an openssl CRL', fromOpenssl],
  ['a hand-made CRL', handMade],
];

/** Parses, and indexes and reads every entry when that worked; returns whether it parsed. */
function exercise(der: Uint8Array): boolean {
  const r = parseCrl(der);
  if (!r.ok) {
    assert.is(r.code, 'crl_malformed');
    return false;
  }
  const index = indexCrl(r.value);
  if (index.ok) for (const e of index.value.entries()) index.value.lookup(e.serialHex);
  else assert.is(index.code, 'crl_malformed');
  return true;
}

for (const [name, der] of samples) {
  test(`${name} parses whole`, () => {
    assert.ok(exercise(der));
  });

  test(`${name} truncated at every byte is crl_malformed`, () => {
    for (let n = 0; n < der.length; n++) {
      const r = parseCrl(der.subarray(0, n));
      assert.is(r.ok, false, `truncated to ${n} bytes`);
    }
  });

  test(`${name} with trailing bytes is crl_malformed`, () => {
    for (const tail of [[0], [0x30, 0x00], [0xff, 0xff, 0xff]]) assert.is(parseCrl(new Uint8Array([...der, ...tail])).ok, false);
  });

  test(`${name} with any one byte changed never throws`, () => {
    let refused = 0;
    for (let i = 0; i < der.length; i++) {
      for (const v of [der[i] ^ 0xff, der[i] ^ 0x01, der[i] ^ 0x80, 0x00, 0x80, 0x81, 0x84, 0xff]) {
        if (v === der[i]) continue;
        const d = new Uint8Array(der);
        d[i] = v;
        if (!exercise(d)) refused++;
      }
    }
    // Most changes break the structure; some (a digit of a serial, a signature byte) do not.
    assert.ok(refused > der.length, `${refused} refused`);
  });
}

test('random bytes never throw', () => {
  let seed = 12345;
  const rnd = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed >>> 24;
  };
  for (let k = 0; k < 2000; k++) {
    const d = new Uint8Array(1 + (k % 300));
    for (let i = 0; i < d.length; i++) d[i] = rnd();
    if (k % 2 === 0) d[0] = 0x30;
    exercise(d);
  }
});

test.run();
