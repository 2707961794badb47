// Authentication of device routes: the verified TLS client certificate of an enrolled, active device
// (mutual TLS against the hub's device CA). A certificate of a pending rotation counts too, and its
// first use completes the rotation (hub/enrollment/device-enrollment.ts).
import type { Context, MiddlewareHandler } from 'hono';
import type { TLSSocket } from 'node:tls';
import { identityFromPeerCertificate } from '../broker/identity.ts';
import type { DeviceRepo } from '../store/device-repo.ts';
import { problem } from './problem.ts';
import type { AuthVariables, DeviceCaller, HubEnv } from './router.ts';

export type { DeviceCaller };

/**
 * Finds the caller of a request; the default reads the verified TLS client certificate. A refusal
 * carries its code: no verified device certificate at all, or one the hub no longer accepts.
 */
export type DeviceResolution = DeviceCaller | { refused: 'device_cert_required' | 'unauthorized'; message: string } | undefined;
export type DeviceResolver = (c: Pick<Context<{ Bindings: HubEnv['Bindings'] }>, 'env' | 'req'>) => DeviceResolution | Promise<DeviceResolution>;

/** Completes a pending rotation when its new certificate is presented (DeviceEnrollment.usePending). */
export type PendingRotations = { usePending(edgeId: string, fingerprint: string): Promise<boolean> };

/**
 * Reads the device from the TLS peer certificate. The device listener requests a client certificate
 * but does not reject a connection without one (enrollment redemption has none yet), so every device
 * route checks here that the TLS layer verified a certificate against the device CA.
 */
export function tlsDeviceResolver(devices: DeviceRepo, rotations?: () => PendingRotations | undefined): DeviceResolver {
  return async (c): Promise<DeviceResolution> => {
    const socket = c.env?.incoming?.socket as TLSSocket | undefined;
    if (!socket || typeof socket.getPeerCertificate !== 'function' || !socket.authorized) {
      return { refused: 'device_cert_required', message: 'a device certificate verified against the hub device CA is required (mutual TLS)' };
    }
    const id = identityFromPeerCertificate(socket.getPeerCertificate());
    if (!id.ok) return { refused: 'device_cert_required', message: `the client certificate is not a device certificate (${id.code})` };
    let row = await devices.get(id.value.edgeId);
    if (row && row.status === 'active' && row.cert_fingerprint !== id.value.fingerprint && (await rotations?.()?.usePending(id.value.edgeId, id.value.fingerprint))) {
      row = await devices.get(id.value.edgeId);
    }
    // The certificate must be the one on record for an active device (a revoked or replaced one is refused).
    if (!row || row.status !== 'active' || row.cert_fingerprint !== id.value.fingerprint || row.service_id !== id.value.serviceId) return undefined;
    return { edgeId: row.edge_id, serviceId: row.service_id };
  };
}

/** Middleware of `device` routes: sets `device`, or answers device_cert_required / unauthorized. */
export function deviceAuth(resolve: DeviceResolver): MiddlewareHandler<{ Bindings: HubEnv['Bindings']; Variables: AuthVariables['device'] }> {
  return async (c, next) => {
    const d = await resolve(c);
    if (!d) return problem(c, 'unauthorized', 'a valid, enrolled device certificate is required');
    if ('refused' in d) return problem(c, d.refused, d.message);
    c.set('device', d);
    await next();
  };
}
