// The device API: what an enrolled edge asks the hub over HTTPS with its device certificate (mutual
// TLS against the hub's device CA). Its sync secret, snapshots and missed change-log entries of its
// own service, and the counter registration of a link (サービスID登録).
import type { Context, Hono, MiddlewareHandler } from 'hono';
import { Type } from '@sinclair/typebox';
import type { TLSSocket } from 'node:tls';
import { MyKeyError } from '../../shared/errors.ts';
import { certIdentity, issuerKeyOf } from '../../shared/cert-identity.ts';
import { MYKEY_ID_PATTERN, SERVICE_USER_ID_PATTERN } from '../../shared/ids.ts';
import { ChallengeResponse, LinkResponse, Proof } from '../../shared/messages.ts';
import { Snapshot } from '../../shared/sync.ts';
import { identityFromPeerCertificate } from '../broker/identity.ts';
import type { Links } from '../links/links.ts';
import type { ChallengeBinding, ChallengeStore } from '../mykey/challenges.ts';
import type { MyKeyService } from '../mykey/service.ts';
import { parseCertificate } from '../pki/certificate.ts';
import type { DeviceRepo } from '../store/device-repo.ts';
import type { CertIdentity, MyKeyRepo } from '../store/mykey-repo.ts';
import type { OpenApi } from './openapi.ts';
import { problem } from './problem.ts';
import { rateLimit, type RateLimitOptions } from './rate-limit.ts';
import { jsonBody } from './validate.ts';

/** Who is asking: an enrolled, active device. */
export interface DeviceCaller {
  edgeId: string;
  serviceId: string;
}

/**
 * Finds the caller of a request; the default reads the verified TLS client certificate. A refusal
 * carries its code: no verified device certificate at all, or one the hub no longer accepts.
 */
export type DeviceResolver = (c: Context) => DeviceCaller | { refused: 'device_cert_required' | 'unauthorized'; message: string } | undefined;

/**
 * Reads the device from the TLS peer certificate. The device listener requests a client certificate
 * but does not reject a connection without one (enrollment redemption has none yet), so every device
 * route checks here that the TLS layer verified a certificate against the device CA.
 */
export function tlsDeviceResolver(devices: DeviceRepo): DeviceResolver {
  return (c) => {
    const socket = (c.env as { incoming?: { socket?: TLSSocket } } | undefined)?.incoming?.socket;
    if (!socket || typeof socket.getPeerCertificate !== 'function' || !socket.authorized) {
      return { refused: 'device_cert_required', message: 'a device certificate verified against the hub device CA is required (mutual TLS)' };
    }
    const id = identityFromPeerCertificate(socket.getPeerCertificate());
    if (!id.ok) return { refused: 'device_cert_required', message: `the client certificate is not a device certificate (${id.code})` };
    const row = devices.get(id.value.edgeId);
    // The certificate must be the one on record for an active device (a revoked or replaced one is refused).
    if (!row || row.status !== 'active' || row.cert_fingerprint !== id.value.fingerprint || row.service_id !== id.value.serviceId) return undefined;
    return { edgeId: row.edge_id, serviceId: row.service_id };
  };
}

export const DeviceConfig = Type.Object({ edgeId: Type.String(), serviceId: Type.String(), syncSecret: Type.String({ description: 'base64url; HMAC key of the keyed identities' }) });
export const DeviceChanges = Type.Object({ headSeq: Type.Integer(), entries: Type.Array(Type.Unknown(), { description: 'ChangeEntry objects (shared/sync.ts)' }) });
export const CounterLinkRequest = Type.Object(
  {
    identity: Type.Union([
      Type.Object({ mykeyId: Type.String({ pattern: MYKEY_ID_PATTERN }) }, { additionalProperties: false }),
      Type.Object({ certificate: Type.String({ pattern: '^[A-Za-z0-9+/_-]+={0,2}$', maxLength: 16384, description: 'user-authentication certificate read from the card, base64 DER' }) }, { additionalProperties: false }),
    ]),
    serviceUserId: Type.String({ pattern: SERVICE_USER_ID_PATTERN }),
    proof: Type.Optional(Proof),
  },
  { additionalProperties: false },
);

/** POST /v1/device/challenges: a challenge for one counter link, bound to the asking device. */
export const CounterChallengeRequest = Type.Object(
  { serviceUserId: Type.String({ pattern: SERVICE_USER_ID_PATTERN, description: 'the service ID the holder is about to link' }) },
  { additionalProperties: false },
);

/** What a counter-link proof is bound to: this operation, the device's service and edge, the service ID. */
export function counterLinkBinding(d: DeviceCaller, serviceUserId: string): ChallengeBinding {
  return { operation: 'counter_link', params: { serviceId: d.serviceId, serviceUserId }, device: d.edgeId };
}

export interface DeviceRoutesDeps {
  challenges: ChallengeStore;
  links: Links;
  mykeys: MyKeyRepo;
  service: MyKeyService;
  resolveDevice: DeviceResolver;
  rateLimits: { register: RateLimitOptions };
}

export function mountDeviceRoutes(app: Hono<any>, api: OpenApi, deps: DeviceRoutesDeps): void {
  const { links, mykeys } = deps;
  const tag = 'Device';
  const device: MiddlewareHandler<{ Variables: { device: DeviceCaller } }> = async (c, next) => {
    const d = deps.resolveDevice(c);
    if (!d) return problem(c, 'unauthorized', 'a valid, enrolled device certificate is required');
    if ('refused' in d) return problem(c, d.refused, d.message);
    c.set('device', d);
    await next();
  };

  api.route(
    app,
    { method: 'get', path: '/v1/device/config', tag, summary: "The device's service and its sync secret", responses: { 200: { description: 'config', schema: DeviceConfig } }, errors: ['device_cert_required', 'unauthorized'] },
    device,
    (c) => {
      const d = c.get('device');
      const s = links.service(d.serviceId);
      if (!s) return problem(c, 'not_found', 'the device service no longer exists');
      return c.json({ edgeId: d.edgeId, serviceId: d.serviceId, syncSecret: s.sync_secret.toString('base64url') });
    },
  );

  api.route(
    app,
    { method: 'get', path: '/v1/device/snapshot', tag, summary: "A snapshot of the device's service at its head sequence", responses: { 200: { description: 'snapshot', schema: Snapshot } }, errors: ['device_cert_required', 'unauthorized'] },
    device,
    (c) => c.json(links.snapshot(c.get('device').serviceId)),
  );

  api.route(
    app,
    {
      method: 'get',
      path: '/v1/device/changes',
      tag,
      summary: 'Change-log entries after a sequence number (query: after, limit <= 1000)',
      responses: { 200: { description: 'entries', schema: DeviceChanges } },
      errors: ['device_cert_required', 'unauthorized', 'validation_failed'],
    },
    device,
    (c) => {
      const after = Number(c.req.query('after') ?? '0');
      const limit = Math.min(1000, Number(c.req.query('limit') ?? '1000'));
      if (!Number.isSafeInteger(after) || after < 0 || !Number.isSafeInteger(limit) || limit < 1) {
        return problem(c, 'validation_failed', 'after must be an integer >= 0 and limit 1..1000');
      }
      const serviceId = c.get('device').serviceId;
      return c.json({ headSeq: links.headSeq(serviceId), entries: links.changesAfter(serviceId, after, limit) });
    },
  );

  api.route(
    app,
    {
      method: 'post',
      path: '/v1/device/challenges',
      tag,
      summary: 'A one-time challenge for the holder to sign (PIN) for one counter link',
      description:
        "Bound to this device (its certificate's edge id), its service and the service ID given: the proof made over it is accepted by POST /v1/device/links from this device for that service ID only (challenge_device_mismatch, challenge_parameters_mismatch, challenge_operation_mismatch otherwise).",
      request: CounterChallengeRequest,
      responses: { 201: { description: 'the challenge', schema: ChallengeResponse } },
      errors: ['unauthorized', 'validation_failed', 'rate_limited', 'challenge_quota_exceeded', 'unavailable'],
    },
    device,
    rateLimit(deps.rateLimits.register),
    jsonBody(CounterChallengeRequest),
    (c) => {
      const d = c.get('device');
      // The quota is the device's own: edges behind one address never share it.
      const issued = deps.challenges.issue(counterLinkBinding(d, c.get('body').serviceUserId), `edge:${d.edgeId}`);
      if (!issued.ok) return problem(c, issued.code, issued.message);
      return c.json({ challenge: issued.value.challenge, expiresAt: new Date(issued.value.expiresAt).toISOString() }, 201);
    },
  );

  api.route(
    app,
    {
      method: 'post',
      path: '/v1/device/links',
      tag,
      summary: 'Counter registration: link the service ID presented at the counter to the MyKey ID of the touched card',
      description:
        "The identity is what the edge read off the card: the MyKey ID from the MyKey application, or the user-authentication certificate. A bare MyKey ID (anyone can read or type one) is never linked without `proof`, and services that require the holder's consent (the default) need it always: the card's signature (after the PIN) over a challenge from POST /v1/device/challenges for this service ID, made with the same card. A service ID linked to another MyKey ID is never moved from the counter (service_user_id_taken).",
      request: CounterLinkRequest,
      responses: { 201: { description: 'linked', schema: LinkResponse }, 200: { description: 'already linked so', schema: LinkResponse } },
      errors: [
        'unauthorized',
        'validation_failed',
        'mykey_id_not_found',
        'mykey_id_suspended',
        'mykey_id_invalidated',
        'cert_malformed',
        'forbidden',
        'signature_invalid',
        'holder_proof_required',
        'service_user_id_taken',
        'challenge_unknown',
        'challenge_expired',
        'challenge_replayed',
        'challenge_operation_mismatch',
        'challenge_parameters_mismatch',
        'challenge_device_mismatch',
      ],
    },
    device,
    rateLimit(deps.rateLimits.register),
    jsonBody(CounterLinkRequest),
    async (c) => {
      const d = c.get('device');
      const b = c.get('body');
      const s = links.service(d.serviceId);
      if (!s) return problem(c, 'not_found', 'the device service no longer exists');
      let mykeyId: string;
      let proofCert: CertIdentity | undefined;
      if (b.proof) {
        const proven = await deps.service.prove(b.proof, counterLinkBinding(d, b.serviceUserId));
        proofCert = proven.identity;
      } else if (s.require_holder_proof) {
        throw new MyKeyError('holder_proof_required', 'this service requires the holder to confirm with the PIN (proof)');
      } else if ('mykeyId' in b.identity) {
        // A MyKey ID is readable off any card and can be typed by anyone: on its own it proves nothing.
        throw new MyKeyError('holder_proof_required', 'a MyKey ID alone is never linked; send the holder\'s proof or the card\'s certificate');
      }
      if ('mykeyId' in b.identity) {
        mykeyId = b.identity.mykeyId;
        // With a proof, it must be the proof card's MyKey ID.
        if (proofCert) {
          // By issuing key too: under a CA key rollover a serial may be bound twice under one name.
          const bound = mykeys.liveBindingOfCert(proofCert);
          if (bound?.mykey_id !== mykeyId) throw new MyKeyError('forbidden', 'the proof was made with another card');
        }
      } else {
        const parsed = parseCertificate(new Uint8Array(Buffer.from(b.identity.certificate, 'base64')));
        if (!parsed.ok) throw new MyKeyError(parsed.code, parsed.message);
        const issuerKey = issuerKeyOf(parsed.value.issuerDer);
        if (proofCert && certIdentity(proofCert.issuerKey, proofCert.serialHex) !== certIdentity(issuerKey, parsed.value.serialHex)) {
          throw new MyKeyError('forbidden', 'the proof was made with another card');
        }
        const bound = mykeys.liveBindingBySerial(issuerKey, parsed.value.serialHex);
        if (!bound || bound.state !== 'current') throw new MyKeyError('mykey_id_not_found', 'this card has no MyKey ID yet; register one first');
        mykeyId = bound.mykey_id;
      }
      await links.prepareKeys(d.serviceId, mykeyId); // keyed identities derived off the event loop
      const r = links.link({ serviceId: d.serviceId, mykeyId, serviceUserId: b.serviceUserId, by: `edge:${d.edgeId}` });
      return c.json({ serviceId: d.serviceId, serviceUserId: b.serviceUserId, seq: r.entry?.seq ?? null, ...(r.replaced ? { replaced: r.replaced } : {}) }, r.unchanged ? 200 : 201);
    },
  );
}
