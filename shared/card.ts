// Facts about the My Number Card that both the edge's reader layer and the virtual card need.
// See ../shared/CARD.md in the project brief. Only the JPKI and MyKey applications appear here: the
// applications that hold the My Number are named only by the reader guard's tests and the virtual card.

/** JPKI application (公的個人認証AP). */
export const JPKI_AID = Uint8Array.from([0xd3, 0x92, 0xf0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01]);

/** The project's own MyKey card application, in the proprietary AID range ("MYKEY"). */
export const MYKEY_AID = Uint8Array.from([0xf0, 0x4d, 0x59, 0x4b, 0x45, 0x59, 0x01]);

/** Elementary files of the JPKI application. */
export const JPKI_EF = {
  /** user-authentication certificate, readable without PIN */
  authCert: 0x000a,
  /** its CA certificate, readable without PIN */
  authCaCert: 0x000b,
  /** signing certificate (signing PIN) */
  signCert: 0x0001,
  /** signing CA certificate */
  signCaCert: 0x0002,
  /** user-authentication private key (use after VERIFY on authPin) */
  authKey: 0x0017,
  /** user-authentication PIN: 4 digits, 3 tries */
  authPin: 0x0018,
  /** signing private key */
  signKey: 0x001a,
  /** signing PIN: 6 to 16 of A-Z 0-9, 5 tries */
  signPin: 0x001b,
  /** token string `JPKIAPICCTOKEN2` */
  token: 0x0006,
} as const;

/** Elementary files of the MyKey application. */
export const MYKEY_EF = {
  /** the MyKey ID (8 ASCII characters), readable without PIN, written with the counter's key */
  mykeyId: 0x0001,
} as const;

/** SHA-256 DigestInfo prefix (PKCS#1 v1.5, RFC 8017 9.2 note 1). */
export const SHA256_DIGEST_INFO_PREFIX = Uint8Array.from([0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20]);

/** Certificate policy OID of JPKI user-authentication certificates. */
export const JPKI_AUTH_POLICY_OID = '1.2.392.200149.8.5.1.3.30';
/** Certificate policy OID of JPKI signing certificates. */
export const JPKI_SIGN_POLICY_OID = '1.2.392.200149.8.5.1.1.20';

/** Issuer DN of the JPKI user-authentication CA, as RDNs in order (C, O, OU, OU). */
export const JPKI_AUTH_CA_DN: ReadonlyArray<readonly [string, string]> = [
  ['C', 'JP'],
  ['O', 'JPKI'],
  ['OU', 'JPKI for user authentication'],
  ['OU', 'Japan Agency for Local Authority Information Systems'],
];
