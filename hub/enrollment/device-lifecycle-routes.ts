// The device's own lifecycle on the device API, over mutual TLS with its current certificate:
//   POST /v1/device/revoke  the device revokes itself (decommissioning); audited; the broker drops
//                           its session at once, as a revocation in the console does.
//   POST /v1/device/rotate  a new certificate for a new key, without a token while the current
//                           certificate is valid; the current one stays valid until the new one is
//                           used or the overlap passes (device-enrollment.ts).
import type { MiddlewareHandler } from 'hono';
import { DeviceRevokeRequest, DeviceRevokeResponse, DeviceRotateRequest, DeviceRotateResponse } from '../../shared/device-api.ts';
import { csrDerOf, CSR_PEM_MISSING, type DeviceEnrollment } from './device-enrollment.ts';
import type { AuditInput } from '../store/console-repo.ts';
import { problem } from '../http/problem.ts';
import type { createRouter } from '../http/router.ts';

export interface DeviceLifecycleDeps {
  /** The device enrollment (device CA and repo); a getter, the hub opens its CA in `start()`. */
  enrollment: () => DeviceEnrollment | undefined;
  /** Records self-revocations and rotations in the audit log. */
  audit?: (e: AuditInput) => void | Promise<void>;
  /** Validity of a rotated certificate. Default 365 days. */
  certValidityDays?: number;
  now?: () => number;
}

type Router = ReturnType<typeof createRouter>;

export function mountDeviceLifecycleRoutes(r: Router, deps: DeviceLifecycleDeps | undefined, limit?: MiddlewareHandler): void {
  const now = deps?.now ?? Date.now;
  const tag = 'Device';

  r.route(
    {
      method: 'post',
      path: '/v1/device/revoke',
      tag,
      auth: 'device',
      summary: 'The device revokes its own certificate (decommissioning)',
      description:
        "Only the holder of the device key can ask. The certificate is refused by the device API and the broker from then on, and a connected MQTT session is closed at once. Recorded in the audit log. Enrolling the edge id again needs a token with the platform operator's permission.",
      body: DeviceRevokeRequest,
      ...(limit ? { rateLimit: limit } : {}),
      responses: { 200: { description: 'revoked', schema: DeviceRevokeResponse } },
      errors: ['unavailable', 'device_revoked'],
    },
    async (c) => {
      const enrollment = deps?.enrollment();
      if (!enrollment) return problem(c, 'unavailable', 'device enrollment is not available on this hub yet');
      const d = c.get('device');
      const reason = c.get('body').reason ?? 'decommissioned';
      const res = await enrollment.revoke(d.edgeId, `self: ${reason}`);
      const at = now();
      await deps?.audit?.({ at, actor: `edge:${d.edgeId}`, action: 'device.revoke', target: d.edgeId, service_id: d.serviceId, outcome: res.ok ? 'ok' : res.code, detail: { by: 'self', reason } });
      if (!res.ok) return problem(c, res.code, res.message);
      return c.json({ edgeId: d.edgeId, revokedAt: new Date(at).toISOString() } satisfies DeviceRevokeResponse);
    },
  );

  r.route(
    {
      method: 'post',
      path: '/v1/device/rotate',
      tag,
      auth: 'device',
      summary: 'A new certificate for a new device key, without a token',
      description:
        'Sent with the current, still valid device certificate. The new certificate is pending: the current one stays valid until the new one is first used on the device API (then it is superseded, and a broker session still on it is closed) or until `overlapUntil`, whichever comes first. A hub restart forgets a pending rotation (the current certificate stays). An expired or revoked certificate cannot rotate: enroll again with a token.',
      body: DeviceRotateRequest,
      ...(limit ? { rateLimit: limit } : {}),
      responses: { 201: { description: 'the new certificate', schema: DeviceRotateResponse } },
      errors: ['unavailable', 'csr_invalid', 'device_unknown', 'device_revoked', 'device_ca_retired'],
    },
    async (c) => {
      const enrollment = deps?.enrollment();
      if (!enrollment) return problem(c, 'unavailable', 'device enrollment is not available on this hub yet');
      const d = c.get('device');
      const csrDer = csrDerOf(c.get('body').csrPem);
      if (!csrDer) return problem(c, 'csr_invalid', CSR_PEM_MISSING);
      const res = await enrollment.rotate(d.edgeId, csrDer, deps?.certValidityDays ?? 365);
      await deps?.audit?.({
        at: now(),
        actor: `edge:${d.edgeId}`,
        action: 'device.rotate',
        target: d.edgeId,
        service_id: d.serviceId,
        outcome: res.ok ? 'ok' : res.code,
        detail: res.ok ? { certSerial: res.value.serialHex.slice(0, 8) } : {},
      });
      if (!res.ok) return problem(c, res.code, res.message);
      const v = res.value;
      const body: DeviceRotateResponse = {
        certPem: v.certPem,
        caPem: v.caPem,
        serviceId: v.serviceId,
        edgeId: v.edgeId,
        notAfter: v.notAfter.toISOString(),
        overlapUntil: v.overlapUntil.toISOString(),
      };
      return c.json(body, 201, { 'cache-control': 'no-store' });
    },
  );
}
