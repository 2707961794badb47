// Name comparison, the one rule the hub uses wherever two X.500 Names are compared (CRL issuer to
// trust anchor, certificate issuer to trust anchor). RFC 5280 7.1: attribute values of type
// PrintableString or UTF8String are compared after string preparation (RFC 4518: case folded,
// insignificant white space removed, inner runs of white space collapsed to one); values of any
// other type are compared as exact bytes (tag and value). RDNs are compared as sets of attributes.
import { DerError as CrlDerError, DerCursor, TAG as T } from '../../../shared/asn1/der.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The value of a PrintableString or UTF8String as text; undefined for any other type (compared exactly). */
function decodeString(tag: number, v: Uint8Array): string | undefined {
  try {
    if (tag === 0x0c) return utf8.decode(v); // UTF8String
    if (tag === 0x13) return Buffer.from(v).toString('latin1'); // PrintableString (a subset of ASCII)
    return undefined;
  } catch {
    return undefined;
  }
}

/** RFC 4518 string preparation, simplified: NFKC, case folding, white space trimmed and collapsed. */
function prep(s: string): string {
  return s.normalize('NFKC').toLowerCase().normalize('NFKC').trim().replace(/\s+/g, ' ');
}

/** A comparison key for a Name DER (the full SEQUENCE TLV), or undefined when it is malformed. */
export function canonicalName(der: Uint8Array): string | undefined {
  try {
    const c = new DerCursor(der);
    c.expect(T.SEQUENCE, 0, der.length, 'Name');
    if (c.end !== der.length) return undefined;
    const rdns: string[] = [];
    let p = c.body;
    const end = c.end;
    while (p < end) {
      c.expect(T.SET, p, end, 'RDN');
      const se = c.end;
      const atvs: string[] = [];
      for (let q = c.body; q < se; ) {
        c.expect(T.SEQUENCE, q, se, 'AttributeTypeAndValue');
        const ae = c.end;
        c.expect(T.OID, c.body, ae, 'attribute type');
        const type = Buffer.from(der.subarray(c.body, c.end)).toString('hex');
        c.read(c.end, ae);
        if (c.end !== ae) return undefined;
        const str = decodeString(c.tag, der.subarray(c.body, c.end));
        const value = str === undefined ? '#' + Buffer.from(der.subarray(c.start, c.end)).toString('hex') : JSON.stringify(prep(str));
        atvs.push(`${type}=${value}`);
        q = ae;
      }
      rdns.push(atvs.sort().join('+'));
      p = se;
    }
    return rdns.join(',');
  } catch (err) {
    if (err instanceof CrlDerError) return undefined;
    throw err;
  }
}

/** True when the DER is byte-equal. */
export function sameDer(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** RFC 5280 7.1 name equality: exact DER, or equal attribute by attribute under the rule above. */
export function namesMatch(a: Uint8Array, b: Uint8Array): boolean {
  if (sameDer(a, b)) return true;
  const ca = canonicalName(a);
  return ca !== undefined && ca === canonicalName(b);
}
