// The device API contract: every body that enrolled edges and the provisioning tools exchange with
// the hub's device listener (mutual TLS with the device certificate; enrollment redemption with a
// one-time token over TLS pinned to the device CA). The hub validates requests and publishes its
// OpenAPI document with these schemas; the edge and the tools check the hub's answers with the same
// ones, so the two sides cannot drift. Change-log entries and snapshots keep their rules in
// shared/sync.ts and are only referenced here.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { EDGE_ID_PATTERN, MYKEY_ID_PATTERN, SERVICE_ID_PATTERN, SERVICE_USER_ID_PATTERN } from './ids.ts';
import { ChallengeResponse, LinkResponse, Proof } from './messages.ts';
import { ChangeEntry, Snapshot } from './sync.ts';

/** A one-time enrollment token as the console issues it: `mket_<12 hex id>.<43 base64url secret>`. */
export const ENROLLMENT_TOKEN_PATTERN = '^mket_[0-9a-f]{12}\\.[A-Za-z0-9_-]{43}$';

const Pem = (label: string, description: string) => Type.String({ pattern: `-----BEGIN ${label}-----`, maxLength: 16384, description });

/**
 * What a touch proves for a service (the seed's two levels): `possession`, the MyKey ID or certificate
 * read off the card without a PIN (anyone holding the card, or a copy of what it shows, passes);
 * `pin`, the holder's 4-digit PIN and the card's JPKI signature over a fresh challenge made by the
 * edge, verified at the edge with no network.
 */
export const TOUCH_ASSURANCES = ['possession', 'pin'] as const;
export type TouchAssurance = (typeof TOUCH_ASSURANCES)[number];

/**
 * The assurance an edge applies for what the hub said: absent (a hub older than the field) is
 * `possession`; a value this edge does not know (a newer hub's stronger level) is treated as `pin`,
 * the strongest it knows, never as less.
 */
export function touchAssuranceOf(value: string | undefined): TouchAssurance {
  if (value === undefined || value === 'possession') return 'possession';
  return 'pin';
}

/** GET /v1/device/config: who the hub knows this device as, and its service's sync secret. */
export const DeviceConfig = Type.Object({
  edgeId: Type.String({ pattern: EDGE_ID_PATTERN }),
  serviceId: Type.String({ pattern: SERVICE_ID_PATTERN }),
  syncSecret: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', description: 'base64url of 32 bytes; the key of the keyed identities (shared/sync.ts)' }),
  renewCertificate: Type.Optional(
    Type.Boolean({
      description:
        'true when the certificate this request came with was issued by a retired device CA (a CA key rotation): it stays valid until it expires, but the edge should get a new one now through POST /v1/device/rotate and trust the caPem of that answer',
    }),
  ),
  // PIN-checked touch (#14). Both optional: an edge older than them ignores them (and answers on
  // possession alone); a hub older than them sends neither (possession). A plain string, not an enum,
  // so that a later level does not make this edge refuse the whole config (touchAssuranceOf).
  touchAssurance: Type.Optional(
    Type.String({
      pattern: '^[a-z][a-z0-9-]{0,31}$',
      description: "what a touch must prove for the device's service: `possession` (no PIN; the default when absent) or `pin` (the holder's PIN and the card's JPKI signature, checked at the edge)",
    }),
  ),
  jpkiAnchors: Type.Optional(
    Type.Array(Type.String({ pattern: '^[A-Za-z0-9+/]+={0,2}$', maxLength: 16384 }), {
      maxItems: 16,
      description: "the hub's JPKI user-authentication CA certificates (base64 DER): the edge checks a PIN-checked touch's certificate against them, offline",
    }),
  ),
});
export type DeviceConfig = Static<typeof DeviceConfig>;

/** The largest page GET /v1/device/changes answers. */
export const MAX_CHANGES_PAGE = 1000;

/** GET /v1/device/changes?after=N&limit=M: entries after N (in order), at most M, and the head seq. */
export const ChangesPage = Type.Object({
  headSeq: Type.Integer({ minimum: 0 }),
  entries: Type.Array(ChangeEntry, { maxItems: MAX_CHANGES_PAGE }),
});
export type ChangesPage = Static<typeof ChangesPage>;

/** POST /v1/device/challenges: a challenge for one counter link, bound to the asking device. */
export const CounterChallengeRequest = Type.Object(
  { serviceUserId: Type.String({ pattern: SERVICE_USER_ID_PATTERN, description: 'the service ID the holder is about to link' }) },
  { additionalProperties: false },
);
export type CounterChallengeRequest = Static<typeof CounterChallengeRequest>;

/** What the edge read off the card: the MyKey ID from the MyKey application, or the certificate. */
export const LinkIdentity = Type.Union([
  Type.Object({ mykeyId: Type.String({ pattern: MYKEY_ID_PATTERN }) }, { additionalProperties: false }),
  Type.Object(
    { certificate: Type.String({ pattern: '^[A-Za-z0-9+/_-]+={0,2}$', maxLength: 16384, description: 'user-authentication certificate read from the card, base64 DER' }) },
    { additionalProperties: false },
  ),
]);
export type LinkIdentity = Static<typeof LinkIdentity>;

/** POST /v1/device/links: counter registration of a link (サービスID登録). */
export const CounterLinkRequest = Type.Object(
  { identity: LinkIdentity, serviceUserId: Type.String({ pattern: SERVICE_USER_ID_PATTERN }), proof: Type.Optional(Proof) },
  { additionalProperties: false },
);
export type CounterLinkRequest = Static<typeof CounterLinkRequest>;

/** POST /v1/enrollments: a one-time token, the edge id it was issued for, and the edge's CSR. */
export const EnrollmentRequest = Type.Object(
  {
    token: Type.String({ pattern: ENROLLMENT_TOKEN_PATTERN, description: 'the one-time token issued in the console' }),
    edgeId: Type.String({ pattern: EDGE_ID_PATTERN, description: 'must be the edge id the token was issued for' }),
    csrPem: Type.String({ maxLength: 16384, description: 'PKCS#10 CSR (RFC 2986) of the edge key, PEM "CERTIFICATE REQUEST"; ECDSA P-256' }),
  },
  { additionalProperties: false },
);
export type EnrollmentRequest = Static<typeof EnrollmentRequest>;

const issuedFields = {
  certPem: Pem('CERTIFICATE', 'the device certificate (CN = edge id, OU = service id, clientAuth)'),
  caPem: Pem('CERTIFICATE', 'the device CA certificate: trust it for the broker and the hub device API'),
  serviceId: Type.String({ pattern: SERVICE_ID_PATTERN }),
  edgeId: Type.String({ pattern: EDGE_ID_PATTERN }),
  notAfter: Type.String({ format: 'date-time' }),
};

/** POST /v1/enrollments (201): the device certificate and where the edge connects. */
export const EnrollmentResponse = Type.Object({
  ...issuedFields,
  brokerUrl: Type.Optional(Type.String({ pattern: '^mqtts?://', description: 'where the edge connects with its certificate (mqtts://)' })),
  brokerUrls: Type.Optional(
    Type.Array(Type.String({ pattern: '^mqtts?://', maxLength: 512 }), { maxItems: 16, description: 'the other nodes of a broker cluster, which the edge fails over to (edge config broker.urls)' }),
  ),
  hubUrl: Type.Optional(Type.String({ pattern: '^https?://', description: "the hub's device API" })),
  releaseKey: Type.Optional(Type.String({ maxLength: 4096, description: 'the Ed25519 release public key edge updates are signed with (hub releases.publicKeys, the first)' })),
});
export type EnrollmentResponse = Static<typeof EnrollmentResponse>;

/** POST /v1/device/revoke: the device revokes its own certificate (decommissioning). */
export const DeviceRevokeRequest = Type.Object(
  { reason: Type.Optional(Type.String({ pattern: '^[\\x20-\\x7e]{1,64}$', description: 'why, for the audit log (printable ASCII, at most 64)' })) },
  { additionalProperties: false },
);
export type DeviceRevokeRequest = Static<typeof DeviceRevokeRequest>;

export const DeviceRevokeResponse = Type.Object({ edgeId: Type.String({ pattern: EDGE_ID_PATTERN }), revokedAt: Type.String({ format: 'date-time' }) });
export type DeviceRevokeResponse = Static<typeof DeviceRevokeResponse>;

/** POST /v1/device/rotate: a new CSR, sent with the current (still valid) device certificate. */
export const DeviceRotateRequest = Type.Object(
  { csrPem: Type.String({ maxLength: 16384, description: 'PKCS#10 CSR (RFC 2986) of the new edge key, PEM "CERTIFICATE REQUEST"; ECDSA P-256' }) },
  { additionalProperties: false },
);
export type DeviceRotateRequest = Static<typeof DeviceRotateRequest>;

/** POST /v1/device/rotate (201): the new certificate, and until when the current one stays valid. */
export const DeviceRotateResponse = Type.Object({
  ...issuedFields,
  overlapUntil: Type.String({
    format: 'date-time',
    description: 'the current certificate stays valid until the new one is first used on the device API or until this time, whichever comes first',
  }),
});
export type DeviceRotateResponse = Static<typeof DeviceRotateResponse>;

/** Every device API schema by name, for the OpenAPI components. */
export const DEVICE_SCHEMAS: Record<string, TSchema> = {
  DeviceConfig,
  ChangesPage,
  ChangeEntry,
  Snapshot,
  CounterChallengeRequest,
  CounterLinkRequest,
  ChallengeResponse,
  LinkResponse,
  EnrollmentRequest,
  EnrollmentResponse,
  DeviceRevokeRequest,
  DeviceRevokeResponse,
  DeviceRotateRequest,
  DeviceRotateResponse,
};
