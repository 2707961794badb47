// DER checks on the certificate bytes a card hands over (X.690 8.1, 10.1). A card response is outside
// input: the reader layer checks the length header before trusting it to size the reads, and checks
// the assembled file has the outer shape of an X.509 Certificate (RFC 5280 4.1) before passing it on.
// Full parsing and verification happen at the hub. DER is read with the platform's one reader.
import { DerCursor, DerError, TAG } from '../../shared/asn1/der.ts';

/** Size bounds of a certificate file read from the card. JPKI RSA-2048 certificates are about 1.2-1.8 KB. */
export const CERT_MIN_BYTES = 128;
export const CERT_MAX_BYTES = 8192;

/** A parsed DER length header of an outer SEQUENCE. */
export interface DerHeader {
  /** Bytes of tag + length. */
  headerLength: number;
  /** Total bytes of the TLV (header + content). */
  totalLength: number;
}

/**
 * Reads the tag and length of a DER SEQUENCE from its first bytes (at least 4 given). Returns the
 * header, or a reason. X.690 10.1: definite form, minimal length octets (the shared DER reader's
 * rules); at most 2 length octets, since a certificate file is far below 64 KiB.
 */
export function parseSequenceHeader(first: Uint8Array): { ok: true; header: DerHeader } | { ok: false; reason: string } {
  if (first.length < 2) return { ok: false, reason: 'fewer than 2 header bytes' };
  if (first[0] !== TAG.SEQUENCE) return { ok: false, reason: `tag ${first[0].toString(16)} is not SEQUENCE (30)` };
  if (first[1] > 0x82) return { ok: false, reason: 'length of more than 2 octets' };
  // The usual certificate head `30 82 LL LL` with LL LL >= 256 (minimal, X.690 10.1) needs no cursor.
  if (first[1] === 0x82 && first.length >= 4 && first[2] !== 0) {
    const headerLength = 4;
    return { ok: true, header: { headerLength, totalLength: headerLength + ((first[2] << 8) | first[3]) } };
  }
  const c = new DerCursor(first);
  try {
    c.header(0, first.length);
  } catch (e) {
    if (e instanceof DerError) return { ok: false, reason: e.message };
    throw e;
  }
  return { ok: true, header: { headerLength: c.body, totalLength: c.end } };
}

/**
 * True when `der` is one SEQUENCE exactly filling the bytes, holding exactly SEQUENCE (tbsCertificate),
 * SEQUENCE (signatureAlgorithm), BIT STRING (signatureValue): RFC 5280 4.1 Certificate. The shared DER
 * reader's header rules (X.690 10.1: definite form, the fewest length octets, at most 4 of them), in
 * one loop without a cursor, calls or exceptions: this runs on every touch in certificate mode,
 * between the card's last answer and the identity (issue #11).
 */
export function hasCertificateShape(der: Uint8Array): boolean {
  const n = der.length;
  // Element 0 is the outer SEQUENCE, which must end exactly at n; 1 to 3 are its children in turn,
  // the last of which must end there too.
  let pos = 0;
  for (let k = 0; k < 4; k++) {
    if (pos + 2 > n || der[pos] !== (k === 3 ? TAG.BIT_STRING : TAG.SEQUENCE)) return false;
    let len = der[pos + 1];
    let body = pos + 2;
    if (len & 0x80) {
      const octets = len & 0x7f;
      if (octets === 0 || octets > 4 || body + octets > n || der[body] === 0) return false;
      len = 0;
      for (let i = 0; i < octets; i++) len = len * 256 + der[body + i];
      if (len < 0x80) return false;
      body += octets;
    }
    const end = body + len;
    if (end > n) return false;
    if (k === 0) {
      if (end !== n) return false;
      pos = body;
    } else pos = end;
  }
  return pos === n;
}
