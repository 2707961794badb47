// The signed release contract shared by the release tool, the hub and the edge updater.
//
// A release is a bundle (a tar of the edge package) and a manifest naming its version, SHA-256 digest,
// size, the oldest version it updates from, whether it may downgrade and the services it is for. The
// manifest is signed with Ed25519 (RFC 8032) over its exact UTF-8 bytes, so no canonical JSON form is
// needed: the envelope carries the bytes that were signed, and a verifier parses only what verified.
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { fail, ok, type Result } from './errors.ts';
import { SERVICE_ID_PATTERN } from './ids.ts';

/** A release version: three dot-separated numbers (no pre-release tags: firmware compares plainly). */
export const RELEASE_VERSION_PATTERN = '^(0|[1-9][0-9]{0,8})\\.(0|[1-9][0-9]{0,8})\\.(0|[1-9][0-9]{0,8})$';
const VERSION_RE = new RegExp(RELEASE_VERSION_PATTERN);

/** What a release says about itself; signed. */
export const ReleaseManifest = Type.Object(
  {
    format: Type.Literal(1),
    version: Type.String({ pattern: RELEASE_VERSION_PATTERN }),
    /** SHA-256 of the bundle, lowercase hex. */
    digest: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    size: Type.Integer({ minimum: 1, maximum: 1024 * 1024 * 1024 }),
    /** The oldest running version this release may replace. */
    minVersion: Type.String({ pattern: RELEASE_VERSION_PATTERN }),
    allowDowngrade: Type.Boolean(),
    /** The services whose edges may install it; ['*'] for all. */
    services: Type.Array(Type.Union([Type.Literal('*'), Type.String({ pattern: SERVICE_ID_PATTERN })]), { minItems: 1, maxItems: 256 }),
    createdAt: Type.String({ maxLength: 40 }),
  },
  { additionalProperties: false },
);
export type ReleaseManifest = Static<typeof ReleaseManifest>;

/** The signed manifest as stored and sent: the signed bytes (base64url), the signature and the key id. */
export const SignedRelease = Type.Object(
  {
    manifest: Type.String({ minLength: 1, maxLength: 16_384, pattern: '^[A-Za-z0-9_-]+$' }),
    signature: Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9_-]+$' }),
    keyId: Type.String({ pattern: '^[0-9a-f]{16}$' }),
  },
  { additionalProperties: false },
);
export type SignedRelease = Static<typeof SignedRelease>;

/** Compares two release versions: negative, zero or positive. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

/** True for a well-formed release version. */
export const isReleaseVersion = (v: unknown): v is string => typeof v === 'string' && VERSION_RE.test(v);

/**
 * Reads an Ed25519 public key given as PEM or as the base64 of its SubjectPublicKeyInfo DER (the PEM's
 * body on one line: what the config keys `releases.publicKeys` and `updates.releaseKey` hold).
 */
export function parseReleasePublicKey(text: string): KeyObject {
  const t = text.trim();
  const key = t.startsWith('-----BEGIN') ? createPublicKey(t) : createPublicKey({ key: Buffer.from(t, 'base64'), format: 'der', type: 'spki' });
  if (key.asymmetricKeyType !== 'ed25519') throw new Error('a release key is Ed25519');
  return key;
}

/** True when `text` is an Ed25519 public key in one of the forms parseReleasePublicKey reads. */
export function isReleasePublicKey(text: string): boolean {
  try {
    parseReleasePublicKey(text);
    return true;
  } catch {
    return false;
  }
}

/** The key id: the first 8 bytes of SHA-256 over the SubjectPublicKeyInfo DER, hex. */
export function releaseKeyId(key: KeyObject): string {
  return createHash('sha256')
    .update(key.export({ format: 'der', type: 'spki' }))
    .digest('hex')
    .slice(0, 16);
}

/**
 * Checks an envelope against trusted keys and returns the manifest it signs. Only bytes whose signature
 * verified are parsed, so a tampered manifest never reaches the schema or the caller.
 */
export function verifySignedRelease(envelope: unknown, keys: readonly KeyObject[]): Result<ReleaseManifest, 'release_manifest_invalid' | 'release_signature_invalid'> {
  if (!Value.Check(SignedRelease, envelope)) return fail('release_manifest_invalid', 'the signed release is not { manifest, signature, keyId }');
  const key = keys.find((k) => releaseKeyId(k) === envelope.keyId);
  if (!key) return fail('release_signature_invalid', `the release is signed by key ${envelope.keyId}, which is not trusted here`);
  const bytes = Buffer.from(envelope.manifest, 'base64url');
  // RFC 8032 5.1: Ed25519 signs the message itself (no pre-hash); node takes a null algorithm.
  if (!verify(null, bytes, key, Buffer.from(envelope.signature, 'base64url'))) return fail('release_signature_invalid', 'the release signature does not verify over its manifest');
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return fail('release_manifest_invalid', 'the signed manifest is not JSON');
  }
  if (!Value.Check(ReleaseManifest, parsed)) return fail('release_manifest_invalid', 'the signed manifest does not match its schema');
  return ok(parsed);
}

/** True when the manifest lists the service (or all services). */
export function releaseIsForService(m: ReleaseManifest, serviceId: string): boolean {
  return m.services.includes('*') || m.services.includes(serviceId);
}

/** Update states an edge reports to the hub. */
export const UPDATE_STATES = ['idle', 'downloading', 'installing', 'restarting', 'self_test', 'installed', 'refused', 'failed', 'rolled_back'] as const;

/** POST /v1/device/update: what an edge says about its update. */
export const UpdateReport = Type.Object(
  {
    running: Type.String({ pattern: RELEASE_VERSION_PATTERN }),
    state: Type.Union(UPDATE_STATES.map((s) => Type.Literal(s))),
    version: Type.Optional(Type.String({ pattern: RELEASE_VERSION_PATTERN, description: 'the release the state is about' })),
    code: Type.Optional(Type.String({ pattern: '^[a-z_]{1,64}$' })),
    reason: Type.Optional(Type.String({ maxLength: 300 })),
  },
  { additionalProperties: false },
);
export type UpdateReport = Static<typeof UpdateReport>;

/** GET /v1/device/update: the release offered to this edge, if any. */
export const UpdateOffer = Type.Object({
  release: Type.Union([
    Type.Null(),
    Type.Object({ version: Type.String({ pattern: RELEASE_VERSION_PATTERN }), signed: SignedRelease, bundle: Type.String({ pattern: '^/v1/device/releases/' }), rolloutId: Type.Integer() }),
  ]),
});
export type UpdateOffer = Static<typeof UpdateOffer>;
