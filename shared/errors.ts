// Error codes and the reply envelope shared by the edge and the hub.
//
// Every failure that crosses a boundary (HTTP, MQTT, a card, a file) carries one stable string code
// from ERROR_CODES. The code is what clients and tests match on; the message is for people. Codes are
// translated to HTTP status and problem JSON (RFC 9457) in one place, at the hub's HTTP boundary.

/** Every stable error code, with the HTTP status it maps to and a short title. */
export const ERROR_CODES = {
  // Generic request problems
  bad_request: { status: 400, title: 'The request is malformed' },
  validation_failed: { status: 400, title: 'The request does not match its schema' },
  unsupported_media_type: { status: 415, title: 'The content type is not accepted here' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  not_found: { status: 404, title: 'No such resource' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  rate_limited: { status: 429, title: 'Too many requests' },
  unauthorized: { status: 401, title: 'Authentication is required' },
  forbidden: { status: 403, title: 'Not allowed' },
  conflict: { status: 409, title: 'The request conflicts with the current state' },
  internal: { status: 500, title: 'Internal error' },
  unavailable: { status: 503, title: 'Temporarily unavailable' },

  // Challenges
  challenge_unknown: { status: 400, title: 'The challenge was never issued, or has been used' },
  challenge_expired: { status: 400, title: 'The challenge has expired' },
  challenge_replayed: { status: 400, title: 'The challenge has already been used' },

  // Certificates (JPKI user authentication)
  cert_malformed: { status: 400, title: 'The certificate is not valid DER' },
  cert_unknown_issuer: { status: 422, title: 'The certificate was not issued by a configured JPKI trust anchor' },
  cert_chain_broken: { status: 422, title: 'The certificate signature does not verify against its issuer' },
  cert_expired: { status: 422, title: 'The certificate has expired' },
  cert_not_yet_valid: { status: 422, title: 'The certificate is not yet valid' },
  cert_revoked: { status: 422, title: 'The certificate has been revoked' },
  cert_revocation_unknown: { status: 503, title: 'The revocation status of the certificate could not be determined' },
  cert_key_usage: { status: 422, title: 'The certificate key usage is not digitalSignature only' },
  cert_policy: { status: 422, title: 'The certificate does not carry the JPKI user-authentication policy' },
  cert_key_type: { status: 422, title: 'The certificate key is not RSA-2048' },
  cert_critical_extension: { status: 422, title: 'The certificate has a critical extension the hub does not understand' },
  signature_invalid: { status: 422, title: 'The signature does not verify over the challenge' },
  signature_malformed: { status: 400, title: 'The signature is not of the expected form' },

  // MyKey IDs
  mykey_id_malformed: { status: 400, title: 'A MyKey ID is 8 characters from the MyKey alphabet' },
  mykey_id_taken: { status: 409, title: 'That MyKey ID is already in use' },
  mykey_id_not_found: { status: 404, title: 'No MyKey ID is bound to this certificate' },
  mykey_id_invalidated: { status: 409, title: 'The MyKey ID has been invalidated' },
  mykey_id_suspended: { status: 409, title: 'The MyKey ID is suspended' },
  cert_superseded: { status: 409, title: 'The certificate was replaced by a newer one bound to the same MyKey ID' },
  carry_over_same_certificate: { status: 409, title: 'The new certificate is the one already bound' },
  carry_over_new_cert_bound: { status: 409, title: 'The new certificate is already bound to another MyKey ID' },

  // CRLs
  crl_malformed: { status: 400, title: 'The CRL is not valid DER' },
  crl_unknown_issuer: { status: 422, title: 'The CRL was not issued by a configured trust anchor' },
  crl_signature_invalid: { status: 422, title: 'The CRL signature does not verify' },
  crl_stale: { status: 422, title: 'The CRL is older than the one already applied' },
  crl_fetch_failed: { status: 502, title: 'The CRL could not be fetched' },

  // Card and reader (edge)
  card_removed: { status: 409, title: 'The card was taken away' },
  card_error: { status: 502, title: 'The card answered with an error' },
  card_response_malformed: { status: 502, title: 'The card answered with a malformed response' },
  apdu_refused: { status: 403, title: 'The APDU is outside the reader allowlist' },
  pin_wrong: { status: 403, title: 'The PIN is wrong' },
  pin_blocked: { status: 403, title: 'The PIN is blocked' },
  reader_unavailable: { status: 503, title: 'No reader is available' },
  timeout: { status: 504, title: 'The operation timed out' },

  // Edge devices and the broker
  csr_invalid: { status: 400, title: 'The certificate signing request is malformed, unsigned or of an unsupported key type' },
  device_unknown: { status: 404, title: 'No edge device is enrolled with this identity or certificate' },
  device_revoked: { status: 403, title: 'The edge device or its certificate has been revoked' },
  device_id_mismatch: { status: 403, title: 'The client id is not the edge id of the device certificate' },
  topic_forbidden: { status: 403, title: 'The topic is outside what this client may publish or subscribe to' },

  // Enrollment tokens (one-time, issued in the console for a service and an edge id)
  enrollment_token_invalid: { status: 401, title: 'The enrollment token is unknown, revoked or for another edge id' },
  enrollment_token_expired: { status: 401, title: 'The enrollment token has expired; issue a new one in the console' },
  enrollment_token_used: { status: 409, title: 'The enrollment token has already been used; issue a new one in the console' },

  // Edge state on disk
  state_corrupt: { status: 500, title: 'Stored edge state is corrupt or unreadable' },

  // Config
  config_invalid: { status: 500, title: 'The configuration is invalid' },

  // Console and service admins (trust hardening): an edge belongs to one service
  edge_enrolled_elsewhere: { status: 403, title: 'The edge id is enrolled in another service; that service or a platform operator must revoke it first' },
  edge_service_move: { status: 403, title: "Moving an edge to another service needs a platform operator's explicit permission on the token" },
  device_reenroll_revoked: { status: 403, title: "The edge device was revoked; enrolling it again needs a platform operator's explicit permission on the token" },
  reenroll_needs_operator: { status: 403, title: 'Only a platform operator may allow enrolling a revoked edge id again' },
  // Trust hardening (proofs): challenges bound to one operation, quotas, links that cannot be stolen
  challenge_operation_mismatch: { status: 400, title: 'The challenge was issued for another operation' },
  challenge_parameters_mismatch: { status: 400, title: 'The challenge was issued for the same operation with other parameters' },
  challenge_device_mismatch: { status: 403, title: 'The challenge was issued to another device' },
  challenge_quota_exceeded: { status: 429, title: 'Too many outstanding challenges from this client' },
  holder_proof_required: { status: 403, title: "The holder's proof (card signature after the PIN) is required for this link" },
  service_user_id_taken: { status: 409, title: 'The service ID is linked to another MyKey ID; only the service itself can move it' },
  // Trust hardening: OCSP answers the hub refused (RFC 6960), and revocation reasons with their own code
  cert_revoked_superseded: { status: 422, title: 'The certificate has been revoked as superseded (replaced by a renewed certificate)' },
  ocsp_unavailable: { status: 502, title: 'The OCSP responder could not be reached or answered an error' },
  ocsp_malformed: { status: 502, title: 'The OCSP response is not a valid DER basic response' },
  ocsp_signature_invalid: { status: 502, title: 'The OCSP response signature does not verify' },
  ocsp_responder_unauthorized: { status: 502, title: 'The OCSP response is not signed by the issuing CA or a responder it delegated' },
  ocsp_certid_mismatch: { status: 502, title: 'The OCSP response does not answer for the certificate that was asked about' },
  ocsp_nonce_mismatch: { status: 502, title: 'The OCSP response nonce is not the one sent' },
  ocsp_not_yet_valid: { status: 502, title: 'The OCSP response is dated in the future' },
  ocsp_stale: { status: 502, title: 'The OCSP response is too old' },
  ocsp_cert_unknown: { status: 502, title: 'The OCSP responder does not know the certificate' },
  // Trust hardening: revocation through CRLs (RFC 5280 5.2, 5.3)
  crl_scope_unsupported: { status: 422, title: "The CRL covers only part of its issuer's certificates (issuingDistributionPoint) and cannot stand for the full CRL" },
  crl_delta_unsupported: { status: 422, title: 'A delta CRL cannot stand for the full CRL' },
  crl_critical_extension: { status: 422, title: 'The CRL or one of its entries carries a critical extension the hub cannot process' },
  crl_not_yet_valid: { status: 422, title: "The CRL's thisUpdate is in the future" },
  // Trust hardening: transport and listeners (device listener, enrollment over pinned TLS, broker packet limit)
  device_cert_required: { status: 401, title: 'A device certificate verified against the hub device CA is required (mutual TLS)' },
  insecure_transport: { status: 400, title: 'The enrollment token is only sent over TLS (plain http:// only to a loopback address)' },
  hub_ca_mismatch: { status: 502, title: "The hub's TLS certificate does not chain to the device CA pinned by --ca-fingerprint" },
  mqtt_packet_too_large: { status: 413, title: 'The MQTT packet announces a remaining length over the broker limit' },
  mqtt_packet_malformed: { status: 400, title: 'The MQTT fixed header is malformed (remaining length over 4 bytes)' },
  // Trust hardening (edgesec): kiosk page, exclusive card access, webhook signatures and targets
  kiosk_host_refused: { status: 403, title: 'The Host header names no address the kiosk page is served under (DNS rebinding guard)' },
  kiosk_origin_refused: { status: 403, title: 'The request comes from another origin than the kiosk page' },
  kiosk_token_required: { status: 401, title: 'The kiosk page is served beyond loopback; open its link with the token once' },
  kiosk_token_invalid: { status: 403, title: 'The kiosk token is wrong' },
  reader_busy: { status: 409, title: 'Another program holds the card; the reader could not get it exclusively' },
  webhook_signature_invalid: { status: 401, title: 'The webhook signature is missing, malformed or does not verify' },
  webhook_timestamp_invalid: { status: 401, title: 'The webhook timestamp is missing or outside the accepted window' },
  webhook_replayed: { status: 409, title: 'The webhook id has been seen before (replay)' },
  webhook_url_insecure: { status: 422, title: 'The webhook URL must use https (http only where the operator allows it)' },
  webhook_url_private: { status: 422, title: 'The webhook URL points at a loopback, link-local, private, unspecified or multicast address' },
  webhook_url_invalid: { status: 422, title: 'The webhook URL is not an absolute http(s) URL without credentials' },
  // The holder's home companion (edge/holder)
  holder_host_refused: { status: 403, title: 'The Host header names no loopback address the home companion is served under (DNS rebinding guard)' },
  holder_origin_refused: { status: 403, title: "The request comes from neither the companion's own page nor the hub's configured origin" },
  holder_token_required: { status: 401, title: "Open the companion's link (with its token) once; API calls carry the session token" },
  holder_token_invalid: { status: 403, title: "The home companion's session token is wrong" },
  holder_no_reader: { status: 409, title: 'No card reader is connected' },
  holder_two_readers: { status: 409, title: 'More than one card reader is connected; keep only one (or name it with --reader)' },
  holder_no_card: { status: 409, title: 'No card is on the reader' },
  holder_no_jpki: { status: 422, title: 'The card has no JPKI user-authentication certificate (not a My Number Card, or none issued)' },
  holder_busy: { status: 409, title: 'Another card operation is under way in the companion' },
  holder_same_card: { status: 409, title: 'This is the card already used for the previous proof; put the new card on the reader' },
  holder_step_missing: { status: 409, title: 'The previous card has not signed yet (or its proof expired); start the carry-over again' },
  hub_unreachable: { status: 502, title: 'The hub cannot be reached' },
  // Signed edge updates (updates): releases, rollouts, and what an edge refuses or rolls back from
  release_manifest_invalid: { status: 400, title: 'The release manifest is malformed' },
  release_signature_invalid: { status: 422, title: 'The release is unsigned, signed by an unknown key, or its manifest was altered' },
  release_digest_mismatch: { status: 422, title: 'The release bundle does not match the SHA-256 digest in its signed manifest' },
  release_size_mismatch: { status: 422, title: 'The release bundle is not the size its signed manifest gives' },
  release_bundle_invalid: { status: 422, title: 'The release bundle is not a tar archive of plain files inside its folder' },
  release_downgrade_refused: { status: 409, title: 'The release is older than the running version and not marked as a downgrade' },
  release_wrong_service: { status: 422, title: 'The release targets another service' },
  release_min_version: { status: 409, title: 'The running version is older than the oldest the release can update from' },
  release_exists: { status: 409, title: 'A release with this version is already stored' },
  release_not_found: { status: 404, title: 'No such release, or its bundle is not uploaded yet' },
  release_download_incomplete: { status: 502, title: 'The release download was cut off and could not be completed' },
  range_not_satisfiable: { status: 416, title: 'The requested byte range is outside the bundle' },
  rollout_not_found: { status: 404, title: 'No such rollout' },
  update_self_test_failed: { status: 500, title: 'The new version failed its self-test; the edge rolled back' },
  update_self_test_timeout: { status: 504, title: 'The new version did not pass its self-test in time; the edge rolled back' },
  update_crashed: { status: 500, title: 'The new version stopped before it passed its self-test; the edge rolled back' },
  // Device CA rotation (hub/pki/device-ca.ts)
  device_ca_retired: { status: 503, title: 'This device CA key has been retired by a rotation; the hub must be restarted to issue with the new one' },
  device_ca_rotation_invalid: { status: 500, title: 'The device CA rotation could not be completed' },
  // linkage records (#14): old/new certificate linkage files from the JPKI side (hub/linkage)
  linkage_signers_unconfigured: { status: 503, title: 'No linkage signer is configured (jpki.linkageSigners): linkage files cannot be imported' },
  linkage_signature_missing: { status: 400, title: 'The linkage file comes without its detached signature' },
  linkage_signature_invalid: { status: 422, title: 'The linkage file signature does not verify against any configured linkage signer' },
  linkage_file_too_large: { status: 413, title: 'The linkage file is larger than jpki.linkageMaxBytes' },
  linkage_file_malformed: { status: 422, title: 'The linkage file is not a valid mykey-linkage file (encoding, header or record count)' },
  linkage_issuer_unknown: { status: 422, title: 'The linkage file names an issuer key that is not a configured JPKI trust anchor' },
  linkage_line_malformed: { status: 422, title: 'The linkage record is not valid (JSON, fields or serial form)' },
  linkage_line_duplicate: { status: 422, title: 'The linkage file links this old certificate more than once' },
  linkage_old_unknown: { status: 422, title: 'No live MyKey ID is bound to the old certificate of the linkage record' },
  linkage_old_superseded: { status: 409, title: 'The old certificate was already carried over to another certificate' },
  linkage_old_lost: { status: 409, title: 'The old certificate was revoked for a loss (or its MyKey ID suspended for one): a linkage record does not carry it' },
  linkage_mykey_invalidated: { status: 409, title: 'The MyKey ID of the old certificate was invalidated by its holder' },
  linkage_new_cert_untrusted: { status: 422, title: 'The new certificate of the linkage record does not chain to a configured JPKI trust anchor' },
  linkage_new_cert_invalid: { status: 422, title: 'The new certificate of the linkage record is not a valid user-authentication certificate (DER, validity, profile)' },
  linkage_new_cert_revoked: { status: 422, title: 'The new certificate of the linkage record is itself revoked' },
  linkage_serial_mismatch: { status: 422, title: 'The new serial of the linkage record is not the serial of its certificate' },
  linkage_new_cert_bound: { status: 409, title: 'The new certificate of the linkage record is already bound to another MyKey ID' },
  // PIN-checked touch (#14)
  pin_touch_cert_unbound: { status: 403, title: "The card's user-authentication certificate is not the one bound to the MyKey ID it carries" },
  pin_touch_cert_untrusted: { status: 403, title: "The card's certificate was not issued by a JPKI trust anchor the edge holds, or is outside its validity" },
  pin_touch_signature_invalid: { status: 403, title: "The card's signature does not verify against its certificate's key" },
  pin_touch_replayed: { status: 403, title: "The signature is by the card's key but over another challenge (an old one replayed)" },
  pin_touch_timeout: { status: 408, title: 'The PIN was not entered in time' },
  pin_touch_cancelled: { status: 409, title: 'The PIN-checked touch was cancelled' },
  pin_touch_unavailable: { status: 503, title: 'The edge holds no JPKI trust anchor to check a PIN-checked touch against' },
  // Compact change-log batches (v3, shared/sync.ts; #11 burst fan-out)
  log_batch_miscounted: { status: 400, title: 'The compact change-log batch says another number of entries (n) than it holds' },
} as const satisfies Record<string, { status: number; title: string }>;

/** A stable error code. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** True when `code` is one of ERROR_CODES. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

/**
 * The one error class of the platform: a stable code, a human message, optional details that are
 * safe to show (never keys, PINs or full identifiers), and the underlying cause.
 */
export class MyKeyError extends Error {
  readonly code: ErrorCode;
  readonly details?: Record<string, unknown>;
  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message ?? ERROR_CODES[code].title, { cause: options?.cause });
    this.name = 'MyKeyError';
    this.code = code;
    this.details = options?.details;
  }
  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

/** Problem details (RFC 9457) as the hub sends them; `code` is the stable error code. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail?: string;
  instance?: string;
  /** Echo of the request's transaction id, when it had one. */
  transaction?: string;
  /** Per-field problems for validation errors. */
  errors?: { path: string; message: string }[];
  /** RFC 5280 5.3.1 CRLReason name, when a certificate was refused as revoked. */
  reason?: string;
  /** The code of the OCSP answer the hub refused, when revocation status was unknown because of it. */
  ocsp?: ErrorCode;
}

/** The problem type URI for a code. */
export function problemType(code: ErrorCode): string {
  return `urn:mykey:error:${code}`;
}

/** Builds problem JSON for an error code. */
export function toProblem(code: ErrorCode, detail?: string, extra?: Partial<Problem>): Problem {
  const def = ERROR_CODES[code];
  return { type: problemType(code), title: def.title, status: def.status, code, ...(detail ? { detail } : {}), ...extra };
}

/**
 * The reply envelope used on request/response channels (MQTT commands, edge-local sockets): every
 * reply echoes the request's transaction id and is either ok with data or not ok with an error.
 */
export type Reply<T> = { transaction?: string; ok: true; data: T } | { transaction?: string; ok: false; error: { code: ErrorCode; message: string } };

/** Builds a successful reply. */
export function okReply<T>(data: T, transaction?: string): Reply<T> {
  return transaction === undefined ? { ok: true, data } : { transaction, ok: true, data };
}

/** Builds a failed reply from an error (a MyKeyError keeps its code; anything else is `internal`). */
export function errorReply(err: unknown, transaction?: string): Reply<never> {
  const code: ErrorCode = err instanceof MyKeyError ? err.code : 'internal';
  const message = err instanceof MyKeyError ? err.message : ERROR_CODES.internal.title;
  return transaction === undefined ? { ok: false, error: { code, message } } : { transaction, ok: false, error: { code, message } };
}

/** A check's expected outcome: a value, or a failure with its code. Used where failure is normal. */
export type Result<T, C extends ErrorCode = ErrorCode> = { ok: true; value: T } | { ok: false; code: C; message: string };

/** Successful result. */
export const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
/** Failed result. */
export const fail = <C extends ErrorCode>(code: C, message?: string): { ok: false; code: C; message: string } => ({
  ok: false,
  code,
  message: message ?? ERROR_CODES[code].title,
});
