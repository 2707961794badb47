// The certificate linkage file (新旧シリアル番号紐付け): what the JPKI side hands platform operators when
// it renews user-authentication certificates, one old certificate linked to its renewed one per line,
// so the hub can carry each MyKey ID over without the holder's visit. The hub parses and applies it
// (hub/linkage); the test CA writes it (provisioning/test-ca/linkage-writer.ts). Documented in
// hub/pki/README.md ("Certificate linkage files").
//
// UTF-8 JSON Lines (RFC 8259 texts, one per line, each ended by LF): a header line, then one record per
// line. The whole file's exact bytes are signed with a detached signature (Ed25519, RFC 8032, or ECDSA
// P-256 with SHA-256, FIPS 186-4), so no canonical JSON form is needed.
import { Type, type Static } from '@sinclair/typebox';

/** The `format` of the header line. */
export const LINKAGE_FORMAT = 'mykey-linkage';
/** The version this platform reads and writes. */
export const LINKAGE_VERSION = 1;
/** Longest line, LF excluded: a record carries a certificate of about 1.3 KB in base64. */
export const LINKAGE_MAX_LINE_BYTES = 16_384;
/** Most records in one file. */
export const LINKAGE_MAX_RECORDS = 1_000_000;

/** RFC 5280 4.1.2.2: a serial is a positive INTEGER of at most 20 octets; written as hex octets. */
export const LINKAGE_SERIAL_PATTERN = '^(?:[0-9a-fA-F]{2}){1,21}$';

/** The first line. */
export const LinkageHeader = Type.Object(
  {
    format: Type.Literal(LINKAGE_FORMAT),
    version: Type.Literal(LINKAGE_VERSION),
    /**
     * The key identifier (lower-case hex: the CA certificate's subjectKeyIdentifier, which is the
     * authorityKeyIdentifier of the certificates it signed) of the CA key that issued the OLD
     * certificates of this file. The hub needs it to find the old serials: a serial is unique only
     * per issuing key (RFC 5280 4.1.2.2).
     */
    issuer: Type.String({ pattern: '^[0-9a-f]{2,128}$' }),
    /** When the file was made (RFC 3339 / ISO 8601 date-time). */
    created: Type.String({ minLength: 10, maxLength: 40 }),
    /** How many record lines follow: a file cut short is refused as a whole. */
    records: Type.Integer({ minimum: 0, maximum: LINKAGE_MAX_RECORDS }),
  },
  { additionalProperties: false },
);
export type LinkageHeader = Static<typeof LinkageHeader>;

/** One record line: an old certificate (by serial under the header's issuer key) and its renewal. */
export const LinkageRecord = Type.Object(
  {
    /** Serial of the old (renewed, revoked as superseded) certificate, hex octets. */
    old: Type.String({ pattern: LINKAGE_SERIAL_PATTERN }),
    /** Serial of the new certificate, hex octets; must be the serial inside `cert`. */
    new: Type.String({ pattern: LINKAGE_SERIAL_PATTERN }),
    /** The new user-authentication certificate, DER in base64 (RFC 4648 4). */
    cert: Type.String({ minLength: 4, maxLength: LINKAGE_MAX_LINE_BYTES, pattern: '^[A-Za-z0-9+/]+={0,2}$' }),
  },
  { additionalProperties: false },
);
export type LinkageRecord = Static<typeof LinkageRecord>;

/** A serial in the hub's form: lower-case hex octets without leading zero octets (shared/asn1/integer.ts serialHexOf). */
export function normalizeLinkageSerial(hex: string): string {
  const h = hex.toLowerCase();
  let i = 0;
  while (i < h.length - 2 && h.startsWith('00', i)) i += 2;
  return h.slice(i);
}

/** Writes a linkage file: the header, then one record per line, each line ended by LF. */
export function serializeLinkageFile(header: Omit<LinkageHeader, 'format' | 'version' | 'records'>, records: readonly LinkageRecord[]): Uint8Array {
  const head: LinkageHeader = { format: LINKAGE_FORMAT, version: LINKAGE_VERSION, issuer: header.issuer, created: header.created, records: records.length };
  const lines = [JSON.stringify(head), ...records.map((r) => JSON.stringify({ old: r.old, new: r.new, cert: r.cert }))];
  return new Uint8Array(Buffer.from(`${lines.join('\n')}\n`, 'utf8'));
}
