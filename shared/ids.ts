// Identifiers on the wire: MyKey IDs, service ids and edge ids.

/**
 * The MyKey ID alphabet: digits and capital letters without the look-alikes 0/O, 1/I/L. 31 symbols,
 * so an 8-character MyKey ID has 31^8 (about 8.5e11) values.
 */
export const MYKEY_ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';

/** Length of a MyKey ID. */
export const MYKEY_ID_LENGTH = 8;

/** A MyKey ID: 8 characters from MYKEY_ALPHABET. */
export type MyKeyId = string & { readonly __brand?: 'MyKeyId' };

const MYKEY_RE = new RegExp(`^[${MYKEY_ALPHABET}]{${MYKEY_ID_LENGTH}}$`);

/** JSON-schema pattern for a MyKey ID. */
export const MYKEY_ID_PATTERN = MYKEY_RE.source;

/** True when `s` is a well-formed MyKey ID (exact case; use normalizeMyKeyId for typed input). */
export function isMyKeyId(s: unknown): s is MyKeyId {
  return typeof s === 'string' && MYKEY_RE.test(s);
}

/**
 * Normalizes what a person typed: upper case, spaces and hyphens dropped. Returns undefined when the
 * result is not a MyKey ID. Look-alikes are not silently mapped: `0` is not `O`'s stand-in here, so a
 * typo is refused rather than turned into someone else's id.
 */
export function normalizeMyKeyId(input: string): MyKeyId | undefined {
  const s = input.toUpperCase().replace(/[\s-]/g, '');
  return isMyKeyId(s) ? s : undefined;
}

/** Formats a MyKey ID for people: `ABCD-EFGH`. */
export function formatMyKeyId(id: MyKeyId): string {
  return `${id.slice(0, 4)}-${id.slice(4)}`;
}

/**
 * A random MyKey ID. `randomBytes` is passed in (crypto.randomBytes in production) so this stays pure.
 * Rejection sampling keeps every symbol equally likely.
 */
export function randomMyKeyId(randomBytes: (n: number) => Uint8Array): MyKeyId {
  const n = MYKEY_ALPHABET.length;
  const limit = 256 - (256 % n); // bytes >= limit would bias the distribution
  let out = '';
  while (out.length < MYKEY_ID_LENGTH) {
    for (const b of randomBytes(16)) {
      if (b < limit) out += MYKEY_ALPHABET[b % n];
      if (out.length === MYKEY_ID_LENGTH) break;
    }
  }
  return out;
}

/** Service ids (a library, a shopping street's points): lower-case slug, 2 to 32 characters. */
export const SERVICE_ID_PATTERN = '^[a-z][a-z0-9-]{1,31}$';
const SERVICE_RE = new RegExp(SERVICE_ID_PATTERN);
/** True when `s` is a well-formed service id. */
export function isServiceId(s: unknown): s is string {
  return typeof s === 'string' && SERVICE_RE.test(s);
}

/** Edge ids: lower-case slug, 2 to 64 characters. They appear in MQTT topics, so no `/`, `+` or `#`. */
export const EDGE_ID_PATTERN = '^[a-z0-9][a-z0-9-]{1,63}$';
const EDGE_RE = new RegExp(EDGE_ID_PATTERN);
/** True when `s` is a well-formed edge id. */
export function isEdgeId(s: unknown): s is string {
  return typeof s === 'string' && EDGE_RE.test(s);
}

/**
 * A service's own id for a person (library card number, point card number): 1 to 64 printable ASCII
 * characters. Opaque to the platform.
 */
export const SERVICE_USER_ID_PATTERN = '^[\\x21-\\x7e]{1,64}$';
