// Schemas of the HTTP bodies (and, as they land, MQTT payloads) on the wire, with the TypeScript
// types derived from them. The hub validates with these and publishes them as OpenAPI; the edge and
// the tools build requests with the same types. JSON Schema via TypeBox. The device API's bodies
// (what edges and the provisioning tools exchange with the device listener) are in device-api.ts.
import { FormatRegistry, Type, type Static, type TSchema } from '@sinclair/typebox';
import { MYKEY_ID_PATTERN, SERVICE_ID_PATTERN, SERVICE_USER_ID_PATTERN } from './ids.ts';

// String formats used by the schemas (TypeBox checks only formats registered here).
if (!FormatRegistry.Has('uri')) FormatRegistry.Set('uri', (v) => URL.canParse(v));
if (!FormatRegistry.Has('date-time')) {
  FormatRegistry.Set('date-time', (v) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(v) && !Number.isNaN(Date.parse(v)));
}

const base64 = (description: string, maxLength: number) => Type.String({ description, pattern: '^[A-Za-z0-9+/_-]+={0,2}$', minLength: 4, maxLength });

/**
 * POST /v1/challenges: a challenge for one operation and its parameters; a proof made over it is
 * accepted by that operation only (hub/mykey/challenges.ts). Counter links ask the device API instead
 * (POST /v1/device/challenges), which binds the challenge to the asking device too.
 */
export const ChallengeRequest = Type.Object(
  {
    purpose: Type.Union([Type.Literal('register'), Type.Literal('status'), Type.Literal('change_id'), Type.Literal('invalidate'), Type.Literal('carry_over'), Type.Literal('unlink')], {
      description: 'the one operation the proof is for: `register` (POST /v1/mykey-ids), `status`, `change_id` (with `mykeyId`), `invalidate`, `carry_over` (with `role`), `unlink` (with `serviceId`)',
    }),
    mykeyId: Type.Optional(Type.String({ description: '`change_id` only: the MyKey ID that will be asked for', minLength: 8, maxLength: 16 })),
    role: Type.Optional(Type.Union([Type.Literal('previous'), Type.Literal('new')], { description: '`carry_over` only: which card signs (the one bound now, or the new one)' })),
    serviceId: Type.Optional(Type.String({ pattern: SERVICE_ID_PATTERN, description: '`unlink` only: the service to unlink' })),
  },
  { additionalProperties: false },
);
export type ChallengeRequest = Static<typeof ChallengeRequest>;

export const ChallengeResponse = Type.Object({
  challenge: Type.String({ description: 'base64url; the card signs these bytes (SIGN over DigestInfo(SHA-256(challenge)))' }),
  expiresAt: Type.String({ format: 'date-time' }),
});
export type ChallengeResponse = Static<typeof ChallengeResponse>;

/** A JPKI proof of possession of the card. */
export const Proof = Type.Object(
  {
    challenge: Type.String({ description: 'a challenge issued by this hub (base64url)', minLength: 16, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$' }),
    certificate: base64('the user-authentication certificate (利用者証明用電子証明書), DER in base64', 16384),
    signature: base64("the card's signature over the challenge bytes (RSASSA-PKCS1-v1_5 with SHA-256), base64", 2048),
  },
  { additionalProperties: false },
);
export type Proof = Static<typeof Proof>;

export const MyKeyStatus = Type.Union([Type.Literal('active'), Type.Literal('suspended'), Type.Literal('invalidated')]);

export const RegisterResponse = Type.Object({
  mykeyId: Type.String({ pattern: MYKEY_ID_PATTERN }),
  status: MyKeyStatus,
  created: Type.Boolean({ description: 'false when the certificate already had this MyKey ID' }),
});
export type RegisterResponse = Static<typeof RegisterResponse>;

export const HolderView = Type.Object({
  mykeyId: Type.String({ pattern: MYKEY_ID_PATTERN }),
  status: MyKeyStatus,
  statusReason: Type.Union([Type.String(), Type.Null()], { description: 'RFC 5280 reason of a suspension, or `holder`' }),
  createdAt: Type.String({ format: 'date-time' }),
  certificates: Type.Array(
    Type.Object({
      serial: Type.String({ description: 'certificate serial, lower-case hex' }),
      state: Type.Union([Type.Literal('current'), Type.Literal('carried_over'), Type.Literal('ended')]),
      boundAt: Type.String({ format: 'date-time' }),
      unboundAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
      notAfter: Type.String({ format: 'date-time' }),
      revoked: Type.Union([Type.Object({ at: Type.String({ format: 'date-time' }), reason: Type.String() }), Type.Null()]),
    }),
  ),
  links: Type.Optional(
    Type.Array(
      Type.Object({
        serviceId: Type.String(),
        serviceName: Type.String(),
        serviceUserId: Type.String(),
        state: Type.Union([Type.Literal('active'), Type.Literal('suspended')]),
        linkedAt: Type.String({ format: 'date-time' }),
      }),
    ),
  ),
});
export type HolderView = Static<typeof HolderView>;

export const HolderRequest = Type.Object({ proof: Proof }, { additionalProperties: false });
export type HolderRequest = Static<typeof HolderRequest>;

export const ChangeIdRequest = Type.Object(
  { proof: Proof, mykeyId: Type.String({ description: 'the wanted MyKey ID; spaces and hyphens are ignored', minLength: 8, maxLength: 16 }) },
  { additionalProperties: false },
);
export type ChangeIdRequest = Static<typeof ChangeIdRequest>;

export const CarryOverRequest = Type.Object(
  {
    proof: Proof,
    previous: Type.Object({ proof: Proof }, { additionalProperties: false, description: 'proof made with the previous card (its certificate may have expired or been superseded)' }),
  },
  { additionalProperties: false },
);
export type CarryOverRequest = Static<typeof CarryOverRequest>;

/** What a touch must prove for a service (shared/device-api.ts TOUCH_ASSURANCES). */
const TouchAssuranceField = Type.Union([Type.Literal('possession'), Type.Literal('pin')], {
  description: "what a touch at the service's readers proves: `possession` (no PIN, the default) or `pin` (the holder's 4-digit PIN and the card's JPKI signature, checked at the reader)",
});

/** PUT /v1/admin/services/{serviceId}/touch-assurance */
export const TouchAssuranceRequest = Type.Object({ touchAssurance: TouchAssuranceField }, { additionalProperties: false });
export type TouchAssuranceRequest = Static<typeof TouchAssuranceRequest>;

/** POST /v1/admin/services */
export const CreateServiceRequest = Type.Object(
  {
    id: Type.String({ pattern: SERVICE_ID_PATTERN, description: 'lower-case slug, e.g. `library`' }),
    name: Type.String({ minLength: 1, maxLength: 100 }),
    webhookUrl: Type.Optional(Type.String({ format: 'uri', pattern: '^https?://', maxLength: 500 })),
    requireHolderProof: Type.Optional(Type.Boolean({ description: 'counter links need the holder to sign with the PIN (default true)' })),
    touchAssurance: Type.Optional(TouchAssuranceField),
  },
  { additionalProperties: false },
);
export type CreateServiceRequest = Static<typeof CreateServiceRequest>;

export const ServiceView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  status: Type.String(),
  headSeq: Type.Integer(),
  webhookUrl: Type.Union([Type.String(), Type.Null()]),
  requireHolderProof: Type.Optional(Type.Boolean({ description: "counter links need the holder's card signature after the PIN" })),
  touchAssurance: Type.Optional(TouchAssuranceField),
  webhookSecret: Type.Optional(Type.String({ description: 'shown once, when set' })),
  links: Type.Optional(Type.Object({ active: Type.Integer(), suspended: Type.Integer() })),
  webhook: Type.Optional(
    Type.Object({ pending: Type.Integer(), delivered: Type.Integer(), oldestPendingAt: Type.Union([Type.String(), Type.Null()]), lastError: Type.Union([Type.String(), Type.Null()]) }),
  ),
});
export type ServiceView = Static<typeof ServiceView>;

export const CredentialRequest = Type.Object({ label: Type.String({ minLength: 1, maxLength: 100 }) }, { additionalProperties: false });
export const CredentialCreated = Type.Object({ id: Type.String(), token: Type.String({ description: 'Bearer token for the service API; shown only once' }) });

export const WebhookRequest = Type.Object({ url: Type.Union([Type.String({ format: 'uri', pattern: '^https?://', maxLength: 500 }), Type.Null()]) }, { additionalProperties: false });

/** POST /v1/services/{serviceId}/links (the service's business system, server to server) */
export const LinkRequest = Type.Object(
  {
    mykeyId: Type.String({ pattern: MYKEY_ID_PATTERN }),
    serviceUserId: Type.String({ pattern: SERVICE_USER_ID_PATTERN, description: "the service's own ID for the person (library card number)" }),
    move: Type.Optional(
      Type.Boolean({
        description: 'the service moves a service ID that is linked to another MyKey ID (its own decision, recorded in the audit log); without it such a link is refused with service_user_id_taken',
      }),
    ),
  },
  { additionalProperties: false },
);
export type LinkRequest = Static<typeof LinkRequest>;

export const LinkResponse = Type.Object({
  serviceId: Type.String(),
  serviceUserId: Type.String(),
  seq: Type.Union([Type.Integer(), Type.Null()], { description: 'change-log sequence of the change; null when nothing changed' }),
  replaced: Type.Optional(Type.String({ description: 'the service ID this MyKey ID had before, now unlinked' })),
  moved: Type.Optional(Type.Boolean({ description: 'true when the service ID was moved here from another MyKey ID (move: true)' })),
});
export type LinkResponse = Static<typeof LinkResponse>;

export const HolderUnlinkRequest = Type.Object({ proof: Proof, serviceId: Type.String({ pattern: SERVICE_ID_PATTERN }) }, { additionalProperties: false });
export type HolderUnlinkRequest = Static<typeof HolderUnlinkRequest>;

/** Problem details (RFC 9457) with the stable code. */
export const ProblemSchema = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  code: Type.String(),
  detail: Type.Optional(Type.String()),
  instance: Type.Optional(Type.String()),
  errors: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
  reason: Type.Optional(Type.String({ description: 'RFC 5280 CRLReason name, when a certificate is refused as revoked (cert_revoked, cert_revoked_superseded)' })),
  ocsp: Type.Optional(Type.String({ description: 'the ocsp_* code of the OCSP answer the hub refused, when revocation status is unknown because of it' })),
});

/** Every schema by name, for OpenAPI components. */
export const SCHEMAS: Record<string, TSchema> = {
  ChallengeRequest,
  ChallengeResponse,
  Proof,
  RegisterResponse,
  HolderView,
  HolderRequest,
  ChangeIdRequest,
  CarryOverRequest,
  CreateServiceRequest,
  ServiceView,
  CredentialRequest,
  CredentialCreated,
  WebhookRequest,
  TouchAssuranceRequest,
  LinkRequest,
  LinkResponse,
  HolderUnlinkRequest,
  Problem: ProblemSchema,
};
