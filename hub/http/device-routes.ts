// The device API: what an enrolled edge asks the hub over HTTPS with its device certificate (mutual
// TLS against the hub's device CA). Its sync secret, snapshots and missed change-log entries of its
// own service, the counter registration of a link (サービスID登録), and its own lifecycle: rotating
// its certificate and revoking itself (hub/enrollment/device-lifecycle-routes.ts). Bodies: shared/device-api.ts.
import type { Env, Hono } from 'hono';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ChangesPage, CounterChallengeRequest, CounterLinkRequest, DeviceConfig, MAX_CHANGES_PAGE } from '../../shared/device-api.ts';
import { MyKeyError } from '../../shared/errors.ts';
import { certIdentity, issuerKeyOf } from '../../shared/cert-identity.ts';
import { ChallengeResponse, LinkResponse } from '../../shared/messages.ts';
import { Snapshot } from '../../shared/sync.ts';
import type { Links } from '../links/links.ts';
import { Unfolding } from '../links/snapshot.ts';
import type { ChallengeBinding, ChallengeStore } from '../mykey/challenges.ts';
import type { MyKeyService } from '../mykey/service.ts';
import { parseCertificate } from '../pki/certificate.ts';
import type { CertIdentity, MyKeyRepo } from '../store/mykey-repo.ts';
import { deviceAuth, type DeviceResolver } from './device-auth.ts';
import { mountDeviceLifecycleRoutes, type DeviceLifecycleDeps } from '../enrollment/device-lifecycle-routes.ts';
import type { OpenApi } from './openapi.ts';
import { problem } from './problem.ts';
import { rateLimit, type RateLimitOptions } from './rate-limit.ts';
import { createRouter, type BodyLimit, type DeviceCaller } from './router.ts';

export { tlsDeviceResolver, type DeviceResolver } from './device-auth.ts';
export type { DeviceCaller };

/** What a counter-link proof is bound to: this operation, the device's service and edge, the service ID. */
export function counterLinkBinding(d: DeviceCaller, serviceUserId: string): ChallengeBinding {
  return { operation: 'counter_link', params: { serviceId: d.serviceId, serviceUserId }, device: d.edgeId };
}

export interface DeviceRoutesDeps extends BodyLimit {
  challenges: ChallengeStore;
  links: Links;
  mykeys: MyKeyRepo;
  service: MyKeyService;
  resolveDevice: DeviceResolver;
  rateLimits: { register: RateLimitOptions };
  /** Self-revocation and rotation; without it those routes answer 503 unavailable. */
  lifecycle?: DeviceLifecycleDeps;
  /** True when a device certificate (DER) was issued by a retired device CA: the config answer asks for renewal. */
  needsRenewal?: (certDer: Uint8Array) => boolean;
  /**
   * The JPKI user-authentication CA certificates (DER) the hub trusts: sent in the device config so an
   * edge checks a PIN-checked touch's certificate offline (#14).
   */
  jpkiAnchors?: () => readonly Uint8Array[];
}

/** Whether an Accept-Encoding header accepts gzip (RFC 9110 12.5.3: `gzip`, `x-gzip` or `*`, with a q-value above 0). */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  let star = false;
  for (const part of header.split(',')) {
    const [coding, ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const accepted = q === undefined || Number(q.slice(2)) > 0;
    if (coding === 'gzip' || coding === 'x-gzip') return accepted;
    if (coding === '*') star = accepted;
  }
  return star;
}

export function mountDeviceRoutes<E extends Env>(app: Hono<E>, api: OpenApi, deps: DeviceRoutesDeps): void {
  const { links, mykeys } = deps;
  const tag = 'Device';
  const r = createRouter(api, { device: deviceAuth(deps.resolveDevice) }, { maxBodyBytes: deps.maxBodyBytes });
  const registerLimit = rateLimit({ ...deps.rateLimits.register, scope: 'device-register' });

  r.route(
    {
      method: 'get',
      path: '/v1/device/config',
      tag,
      auth: 'device',
      summary: "The device's service and its sync secret",
      responses: { 200: { description: 'config', schema: DeviceConfig } },
      errors: ['not_found'],
    },
    async (c) => {
      const d = c.get('device');
      const s = await links.service(d.serviceId);
      if (!s) return problem(c, 'not_found', 'the device service no longer exists');
      // After a device CA rotation the edge learns here, at its next contact, to renew its certificate.
      const peer = (c.env?.incoming?.socket as TLSSocket | undefined)?.getPeerCertificate?.();
      const renew = !!peer?.raw && deps.needsRenewal?.(new Uint8Array(peer.raw)) === true;
      // PIN-checked touch (#14): the service's level, and the anchors the edge checks certificates against.
      const anchors = (deps.jpkiAnchors?.() ?? []).slice(0, 16).map((der) => Buffer.from(der).toString('base64'));
      return c.json({
        edgeId: d.edgeId,
        serviceId: d.serviceId,
        syncSecret: s.sync_secret.toString('base64url'),
        ...(renew ? { renewCertificate: true } : {}),
        touchAssurance: s.touch_assurance ?? 'possession',
        ...(anchors.length ? { jpkiAnchors: anchors } : {}),
      } satisfies DeviceConfig);
    },
  );

  r.route(
    {
      method: 'get',
      path: '/v1/device/snapshot',
      tag,
      auth: 'device',
      summary: "A snapshot of the device's service at its head sequence",
      description: 'gzip-encoded when the request accepts it (Accept-Encoding: gzip); built once per head sequence and shared by the edges that ask at it.',
      responses: { 200: { description: 'snapshot', schema: Snapshot } },
    },
    async (c) => {
      const open = await links.snapshotOpen(c.get('device').serviceId);
      const zipped = acceptsGzip(c.req.header('accept-encoding'));
      if (open.live) {
        // Being built: sent as it is read (chunked), each page once every page before it is, or its
        // gzip form as it is made. A build that fails before its head answers an error here; after it,
        // the connection is cut (no last chunk: @hono/node-server would end the response after a
        // stream error with a last chunk), so the edge never takes a part for the whole.
        const live = zipped ? open.gzipLive() : open.live;
        await open.live.started;
        const socket = c.env?.incoming?.socket as Socket | undefined;
        return c.body(
          live.stream(() => socket?.destroy()),
          200,
          { 'content-type': 'application/json', vary: 'Accept-Encoding', ...(zipped ? { 'content-encoding': 'gzip' } : {}) },
        );
      }
      // Whole (kept, or its gzip form: made once, while it was built or when first asked for, and kept with it).
      const snap = await open.body;
      const pieces = zipped ? await snap.gzip() : snap.pieces;
      return c.body(
        Unfolding.whole(pieces.parts).stream(() => undefined),
        200,
        {
          'content-type': 'application/json',
          'content-length': String(pieces.bytes),
          vary: 'Accept-Encoding',
          ...(zipped ? { 'content-encoding': 'gzip' } : {}),
        },
      );
    },
  );

  r.route(
    {
      method: 'get',
      path: '/v1/device/changes',
      tag,
      auth: 'device',
      summary: `Change-log entries after a sequence number (query: after, limit <= ${MAX_CHANGES_PAGE})`,
      responses: { 200: { description: 'entries', schema: ChangesPage } },
      errors: ['validation_failed'],
    },
    async (c) => {
      const after = Number(c.req.query('after') ?? '0');
      const limit = Math.min(MAX_CHANGES_PAGE, Number(c.req.query('limit') ?? String(MAX_CHANGES_PAGE)));
      if (!Number.isSafeInteger(after) || after < 0 || !Number.isSafeInteger(limit) || limit < 1) {
        return problem(c, 'validation_failed', `after must be an integer >= 0 and limit 1..${MAX_CHANGES_PAGE}`);
      }
      const serviceId = c.get('device').serviceId;
      return c.json({ headSeq: await links.headSeq(serviceId), entries: await links.changesAfter(serviceId, after, limit) } satisfies ChangesPage);
    },
  );

  r.route(
    {
      method: 'post',
      path: '/v1/device/challenges',
      tag,
      auth: 'device',
      summary: 'A one-time challenge for the holder to sign (PIN) for one counter link',
      description:
        "Bound to this device (its certificate's edge id), its service and the service ID given: the proof made over it is accepted by POST /v1/device/links from this device for that service ID only (challenge_device_mismatch, challenge_parameters_mismatch, challenge_operation_mismatch otherwise).",
      body: CounterChallengeRequest,
      rateLimit: registerLimit,
      responses: { 201: { description: 'the challenge', schema: ChallengeResponse } },
      errors: ['challenge_quota_exceeded', 'unavailable'],
    },
    async (c) => {
      const d = c.get('device');
      // The quota is the device's own: edges behind one address never share it.
      const issued = await deps.challenges.issue(counterLinkBinding(d, c.get('body').serviceUserId), `edge:${d.edgeId}`);
      if (!issued.ok) return problem(c, issued.code, issued.message);
      return c.json({ challenge: issued.value.challenge, expiresAt: new Date(issued.value.expiresAt).toISOString() } satisfies ChallengeResponse, 201);
    },
  );

  r.route(
    {
      method: 'post',
      path: '/v1/device/links',
      tag,
      auth: 'device',
      summary: 'Counter registration: link the service ID presented at the counter to the MyKey ID of the touched card',
      description:
        "The identity is what the edge read off the card: the MyKey ID from the MyKey application, or the user-authentication certificate. A bare MyKey ID (anyone can read or type one) is never linked without `proof`, and services that require the holder's consent (the default) need it always: the card's signature (after the PIN) over a challenge from POST /v1/device/challenges for this service ID, made with the same card. A service ID linked to another MyKey ID is never moved from the counter (service_user_id_taken).",
      body: CounterLinkRequest,
      rateLimit: registerLimit,
      responses: { 201: { description: 'linked', schema: LinkResponse }, 200: { description: 'already linked so', schema: LinkResponse } },
      errors: [
        'not_found',
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
    async (c) => {
      const d = c.get('device');
      const b = c.get('body');
      const s = await links.service(d.serviceId);
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
        throw new MyKeyError('holder_proof_required', "a MyKey ID alone is never linked; send the holder's proof or the card's certificate");
      }
      if ('mykeyId' in b.identity) {
        mykeyId = b.identity.mykeyId;
        // With a proof, it must be the proof card's MyKey ID.
        if (proofCert) {
          // By issuing key too: under a CA key rollover a serial may be bound twice under one name.
          const bound = await mykeys.liveBindingOfCert(proofCert);
          if (bound?.mykey_id !== mykeyId) throw new MyKeyError('forbidden', 'the proof was made with another card');
        }
      } else {
        const parsed = parseCertificate(new Uint8Array(Buffer.from(b.identity.certificate, 'base64')));
        if (!parsed.ok) throw new MyKeyError(parsed.code, parsed.message);
        const issuerKey = issuerKeyOf(parsed.value.issuerDer);
        if (proofCert && certIdentity(proofCert.issuerKey, proofCert.serialHex) !== certIdentity(issuerKey, parsed.value.serialHex)) {
          throw new MyKeyError('forbidden', 'the proof was made with another card');
        }
        const bound = await mykeys.liveBindingBySerial(issuerKey, parsed.value.serialHex);
        if (!bound || bound.state !== 'current') throw new MyKeyError('mykey_id_not_found', 'this card has no MyKey ID yet; register one first');
        mykeyId = bound.mykey_id;
      }
      await links.prepareKeys(d.serviceId, mykeyId); // keyed identities derived off the event loop
      const res = await links.link({ serviceId: d.serviceId, mykeyId, serviceUserId: b.serviceUserId, by: `edge:${d.edgeId}` });
      const body: LinkResponse = { serviceId: d.serviceId, serviceUserId: b.serviceUserId, seq: res.entry?.seq ?? null, ...(res.replaced ? { replaced: res.replaced } : {}) };
      return c.json(body, res.unchanged ? 200 : 201);
    },
  );

  mountDeviceLifecycleRoutes(r, deps.lifecycle, registerLimit);
  r.mount(app);
}
