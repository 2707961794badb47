import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DerCursor, DerError, TAG, children, expectTlv, readTlv } from '../../../shared/asn1/der.ts';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

function refusal(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.instance(e, DerError);
    return (e as DerError).message;
  }
  return assert.unreachable('expected a DerError') as never;
}

test('reads short and long definite lengths', () => {
  const cases: [string, number, number][] = [
    ['04 00', 2, 2],
    ['04 03 01 02 03', 2, 5],
    ['04 81 80' + ' 00'.repeat(128), 3, 131],
    ['04 82 01 00' + ' 00'.repeat(256), 4, 260],
  ];
  for (const [h, body, end] of cases) {
    const t = readTlv(hex(h), 0);
    assert.is(t.valueStart, body, h);
    assert.is(t.end, end, h);
  }
});

test('refuses everything that is not DER, each with its own reason and offset', () => {
  const cases: [string, RegExp][] = [
    ['30', /truncated header at byte 0/],
    ['', /missing element/],
    ['1f 01 00', /multi-byte tag/],
    ['30 80 00 00', /indefinite length/],
    ['04 85 00 00 00 00 01', /length too long/],
    ['04 82 01', /truncated length/],
    ['04 81 05 00 00 00 00 00', /non-minimal length/], // X.690 10.1: short form was possible
    ['04 82 00 80' + ' 00'.repeat(128), /non-minimal length/], // leading zero length octet
    ['04 05 00', /length beyond enclosing element/],
  ];
  for (const [h, why] of cases)
    assert.match(
      refusal(() => readTlv(hex(h), 0)),
      why,
      h,
    );
});

test('a child may not run past its parent, even when the buffer goes on', () => {
  // SEQUENCE (2 bytes) { OCTET STRING of 3 bytes }: the child ends past the parent.
  const b = hex('30 02 04 03 01 02 03');
  const parent = { tag: 0x30, start: 0, valueStart: 2, end: 4 };
  assert.match(
    refusal(() => children(b, parent)),
    /beyond enclosing element/,
  );
});

test('the cursor and the Tlv reader agree, and header() reads a header without its value', () => {
  const b = hex('30 82 01 00');
  const c = new DerCursor(b);
  assert.is(c.header(0, b.length), TAG.SEQUENCE);
  assert.is(c.body, 4);
  assert.is(c.end, 260);
  assert.match(
    refusal(() => c.read(0, b.length)),
    /beyond enclosing/,
  );
  assert.match(
    refusal(() => expectTlv(hex('04 00'), 0, TAG.SEQUENCE, 2, 'thing')),
    /thing: expected tag 0x30, found 0x04/,
  );
});

test.run();
