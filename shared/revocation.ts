// Revocation reasons (RFC 5280 5.3.1 CRLReason), shared by the hub's CRL engine, the test CA and the
// change log that tells edges why a MyKey ID was suspended.

/** RFC 5280 5.3.1: CRLReason ::= ENUMERATED; value 7 is not used. */
export const CRL_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  removeFromCRL: 8,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;

/** A revocation reason by name. */
export type CrlReason = keyof typeof CRL_REASONS;

const BY_CODE = new Map<number, CrlReason>(Object.entries(CRL_REASONS).map(([k, v]) => [v, k as CrlReason]));

/** The reason name for an RFC 5280 code, or undefined for an unknown code. */
export function crlReasonFromCode(code: number): CrlReason | undefined {
  return BY_CODE.get(code);
}

/**
 * Whether a revocation with this reason means the holder lost the certificate's use. `superseded`
 * (renewal) and `cessationOfOperation` (the card was replaced in an orderly way) are not a loss: the
 * MyKey ID is expected to be carried over, not treated as compromised.
 */
export function isLossReason(reason: CrlReason): boolean {
  return reason !== 'superseded' && reason !== 'cessationOfOperation' && reason !== 'removeFromCRL';
}
