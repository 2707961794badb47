import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MyKeyError } from '../../../../shared/errors.ts';
import { indexCrl, parseCrl, type CrlIndex, type ParsedCrl } from '../../../../hub/pki/crl/index.ts';
import { crl, entry, gen, intBytes, reasonExt, tlv, utc } from './helpers/der-build.ts';

const T1 = utc('260101000000Z');
const T2 = utc('260202000000Z');
const at1 = new Date(Date.UTC(2026, 0, 1));
const at2 = new Date(Date.UTC(2026, 1, 2));
const big = [0xc3, 0xa9, 0xe1, 0xd2, 0xb4, 0xf6, 0x07, 0x18, 0x29, 0x3a, 0x4b, 0x5c, 0x6d, 0x7e, 0x8f, 0x90, 0x12, 0x34, 0x56, 0x78];

const der = crl({
  entries: [
    entry(intBytes(0x01), T1, [reasonExt(1)]),
    entry(intBytes(0x00, 0x80), T1, [reasonExt(4)]), // 128: DER needs the leading 00
    entry(intBytes(0x00, 0x00, 0x05), T2, [reasonExt(5)]), // 5, written non-minimally by a sloppy CA
    entry(intBytes(0xff), T1, [reasonExt(3)]), // -1: negative, non-conforming, still compared by value
    entry(intBytes(0x00, ...big), gen('20260202000000Z')),
    entry(intBytes(0x07), T1, [reasonExt(1)]),
    entry(intBytes(0x07), T2, [reasonExt(4)]), // the same serial again: the first listing counts
    entry(intBytes(0x09), T1, [reasonExt(7)]), // 7 is unused in RFC 5280: reported as unspecified
  ],
});

function build(d: Uint8Array): { crl: ParsedCrl; index: CrlIndex } {
  const p = parseCrl(d);
  if (!p.ok) throw new Error(p.message);
  const i = indexCrl(p.value);
  if (!i.ok) throw new Error(i.message);
  return { crl: p.value, index: i.value };
}

const { crl: parsed, index } = build(der);
const bigHex = Buffer.from(big).toString('hex');

// [serial as given, expected revocation or undefined]
const lookups: [bigint | string | Uint8Array, { revokedAt: Date; reason: string } | undefined][] = [
  [1n, { revokedAt: at1, reason: 'keyCompromise' }],
  ['01', { revokedAt: at1, reason: 'keyCompromise' }],
  ['1', { revokedAt: at1, reason: 'keyCompromise' }],
  ['0000000001', { revokedAt: at1, reason: 'keyCompromise' }],
  [Uint8Array.of(1), { revokedAt: at1, reason: 'keyCompromise' }],
  [Uint8Array.of(0, 0, 1), { revokedAt: at1, reason: 'keyCompromise' }],
  [128n, { revokedAt: at1, reason: 'superseded' }],
  ['80', { revokedAt: at1, reason: 'superseded' }],
  ['0080', { revokedAt: at1, reason: 'superseded' }],
  ['0x80', { revokedAt: at1, reason: 'superseded' }],
  [Uint8Array.of(0, 0x80), { revokedAt: at1, reason: 'superseded' }],
  [Uint8Array.of(0x80), undefined], // INTEGER bytes 80 are -128, not 128
  [5n, { revokedAt: at2, reason: 'cessationOfOperation' }],
  ['05', { revokedAt: at2, reason: 'cessationOfOperation' }],
  [Uint8Array.of(5), { revokedAt: at2, reason: 'cessationOfOperation' }],
  [-1n, { revokedAt: at1, reason: 'affiliationChanged' }],
  ['-01', { revokedAt: at1, reason: 'affiliationChanged' }],
  [Uint8Array.of(0xff, 0xff), { revokedAt: at1, reason: 'affiliationChanged' }],
  ['FF', undefined], // hex is a magnitude: 255, not -1
  [BigInt('0x' + bigHex), { revokedAt: at2, reason: 'unspecified' }],
  [bigHex.toUpperCase(), { revokedAt: at2, reason: 'unspecified' }],
  ['00' + bigHex, { revokedAt: at2, reason: 'unspecified' }],
  [bigHex.match(/../g)!.join(':'), { revokedAt: at2, reason: 'unspecified' }],
  [Uint8Array.of(0, ...big), { revokedAt: at2, reason: 'unspecified' }],
  [7n, { revokedAt: at1, reason: 'keyCompromise' }],
  [9n, { revokedAt: at1, reason: 'unspecified' }],
  [2n, undefined],
  [0n, undefined],
  ['0100', undefined],
  [BigInt('0x' + bigHex) + 1n, undefined],
];

for (const [serial, want] of lookups) {
  const label = serial instanceof Uint8Array ? `bytes ${Buffer.from(serial).toString('hex')}` : `${typeof serial} ${String(serial)}`;
  test(`looks up ${label}${want ? '' : ' and finds nothing'}`, () => {
    assert.equal(index.lookup(serial), want);
  });
}

test('a repeated serial counts once, with its first listing', () => {
  assert.is(parsed.entryCount, 8);
  assert.is(index.size, 7);
  const all = [...index.entries()];
  assert.equal(
    all.map((e) => e.serialHex),
    ['01', '80', '05', '-01', bigHex.toUpperCase(), '07', '09'],
  );
  assert.equal(all[5], { serialHex: '07', revokedAt: at1, reason: 'keyCompromise' });
});

test('a malformed serial is an error, never "not revoked"', () => {
  for (const bad of ['', 'xyz', '12 g', '0x', new Uint8Array(0), 1.5, null, undefined]) {
    try {
      index.lookup(bad as never);
      assert.unreachable(`accepted ${String(bad)}`);
    } catch (err) {
      assert.instance(err, MyKeyError);
      assert.is((err as MyKeyError).code, 'validation_failed');
    }
  }
});

test('finds every one of 3,000 sequential serials and none of their neighbours', () => {
  const entries = Array.from({ length: 3000 }, (_, i) => entry(intBytes(0x10, (i >> 8) & 0xff, i & 0xff), T1, i % 3 ? undefined : [reasonExt(1)]));
  const { index: ix } = build(crl({ entries }));
  assert.is(ix.size, 3000);
  for (let i = 0; i < 3000; i++) {
    const s = (0x10n << 16n) | BigInt(i);
    assert.is(ix.lookup(s)?.reason, i % 3 ? 'unspecified' : 'keyCompromise');
    assert.is(ix.lookup(s + (1n << 24n)), undefined);
  }
});

test('reports progress and ends with (total, total)', () => {
  const entries = Array.from({ length: 70_000 }, (_, i) => entry(intBytes(0x01, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff), T1));
  const p = parseCrl(crl({ entries }));
  assert.ok(p.ok);
  if (!p.ok) return;
  const calls: [number, number][] = [];
  const ix = indexCrl(p.value, { onProgress: (d, t) => calls.push([d, t]) });
  assert.ok(ix.ok);
  assert.equal(calls, [
    [65536, 70000],
    [70000, 70000],
  ]);
});

test('indexes a ParsedCrl that did not come from parseCrl, and refuses one whose count is wrong', () => {
  const copy: ParsedCrl = { ...parsed };
  const again = indexCrl(copy);
  assert.ok(again.ok);
  if (again.ok) assert.is(again.value.size, 7);
  const liar = indexCrl({ ...parsed, entryCount: 3 });
  assert.is(liar.ok, false);
  if (!liar.ok) assert.is(liar.code, 'crl_malformed');
  const broken = indexCrl({ ...parsed, der: tlv(0x30, [1, 2, 3]) });
  assert.is(broken.ok, false);
});

test.run();
