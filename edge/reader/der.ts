// DER checks on the certificate bytes a card hands over (X.690 8.1, 10.1). A card response is outside
// input: the reader layer checks the length header before trusting it to size the reads, and checks
// the assembled file has the outer shape of an X.509 Certificate (RFC 5280 4.1) before passing it on.
// Full parsing and verification happen at the hub.

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
 * header, or a reason. X.690 10.1: definite form, minimal length octets.
 */
export function parseSequenceHeader(first: Uint8Array): { ok: true; header: DerHeader } | { ok: false; reason: string } {
  if (first.length < 2) return { ok: false, reason: 'fewer than 2 header bytes' };
  if (first[0] !== 0x30) return { ok: false, reason: `tag ${first[0].toString(16)} is not SEQUENCE (30)` };
  const l0 = first[1];
  if (l0 < 0x80) return { ok: true, header: { headerLength: 2, totalLength: 2 + l0 } };
  if (l0 === 0x81) {
    if (first.length < 3) return { ok: false, reason: 'truncated length' };
    if (first[2] < 0x80) return { ok: false, reason: 'non-minimal DER length' };
    return { ok: true, header: { headerLength: 3, totalLength: 3 + first[2] } };
  }
  if (l0 === 0x82) {
    if (first.length < 4) return { ok: false, reason: 'truncated length' };
    const len = (first[2] << 8) | first[3];
    if (len < 0x100) return { ok: false, reason: 'non-minimal DER length' };
    return { ok: true, header: { headerLength: 4, totalLength: 4 + len } };
  }
  if (l0 === 0x80) return { ok: false, reason: 'indefinite length is not DER' };
  return { ok: false, reason: 'length of more than 2 octets' };
}

/** One TLV's extent inside `buf` from `at`, or undefined when it does not fit. */
function tlvEnd(buf: Uint8Array, at: number, end: number): { tag: number; next: number } | undefined {
  if (at + 2 > end) return undefined;
  const tag = buf[at];
  if ((tag & 0x1f) === 0x1f) return undefined; // high tag numbers never occur at this level
  const l0 = buf[at + 1];
  let len: number;
  let hdr: number;
  if (l0 < 0x80) {
    len = l0;
    hdr = 2;
  } else {
    const n = l0 & 0x7f;
    if (n === 0 || n > 3 || at + 2 + n > end) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | buf[at + 2 + i];
    hdr = 2 + n;
  }
  const next = at + hdr + len;
  return next <= end ? { tag, next } : undefined;
}

/**
 * True when `der` is one SEQUENCE exactly filling the bytes, holding exactly SEQUENCE (tbsCertificate),
 * SEQUENCE (signatureAlgorithm), BIT STRING (signatureValue): RFC 5280 4.1 Certificate.
 */
export function hasCertificateShape(der: Uint8Array): boolean {
  const h = parseSequenceHeader(der);
  if (!h.ok || h.header.totalLength !== der.length) return false;
  const expected = [0x30, 0x30, 0x03];
  let at = h.header.headerLength;
  for (const tag of expected) {
    const t = tlvEnd(der, at, der.length);
    if (!t || t.tag !== tag) return false;
    at = t.next;
  }
  return at === der.length;
}
