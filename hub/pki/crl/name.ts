// Issuer name matching for CRLs. RFC 5280 7.1 compares Names attribute by attribute after LDAP
// string preparation (RFC 4518): case folded, white space collapsed, whatever the string type. A
// simplified form of that is done here after an exact DER comparison fails.
import { CrlDerError, DerCursor, T } from './der-cursor.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf16be = new TextDecoder('utf-16be', { fatal: true });

function decodeString(tag: number, v: Uint8Array): string | undefined {
  try {
    switch (tag) {
      case 0x0c: // UTF8String
        return utf8.decode(v);
      case 0x13: // PrintableString
      case 0x16: // IA5String
      case 0x1a: // VisibleString
      case 0x14: // TeletexString (treated as Latin-1, as most software does)
        return Buffer.from(v).toString('latin1');
      case 0x1e: // BMPString
        return utf16be.decode(v);
      case 0x1c: { // UniversalString (UTF-32BE)
        if (v.length % 4) return undefined;
        let s = '';
        for (let i = 0; i < v.length; i += 4) s += String.fromCodePoint(((v[i] << 24) | (v[i + 1] << 16) | (v[i + 2] << 8) | v[i + 3]) >>> 0);
        return s;
      }
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}

function prep(s: string): string {
  return s.normalize('NFKC').trim().replace(/\s+/g, ' ').toLowerCase();
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

/** RFC 5280 7.1 name equality, simplified: exact DER, or equal attribute by attribute after folding. */
export function namesMatch(a: Uint8Array, b: Uint8Array): boolean {
  if (sameDer(a, b)) return true;
  const ca = canonicalName(a);
  return ca !== undefined && ca === canonicalName(b);
}
