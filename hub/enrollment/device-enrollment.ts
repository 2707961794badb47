// Enrollment, rotation and revocation of edge devices: the device CA issues, the device repo records,
// and `deviceRevoked` goes out on the fan-out bus (hub/fanout.ts) at once when a certificate is
// revoked or superseded, so the brokers end its connection immediately.
//
// Rotation (POST /v1/device/rotate) needs no token: the device asks with its current certificate over
// mutual TLS and gets a new one for a new key. The new certificate is held as pending, and the
// current one stays the device's, until the new one is first presented on the device API (the
// enrollment tool's self-test does that at once) or the overlap passes, whichever comes first; then
// the new one is recorded and the old one superseded (revoked), and the broker drops a session still
// on the old one. A pending rotation lives in memory: a hub restart forgets it and the current
// certificate simply stays valid (the device rotates again).
import { ERROR_CODES, fail, ok, type Result } from '../../shared/errors.ts';
import type { Emitter } from '../../shared/typed-events.ts';
import type { FanoutEvents } from '../fanout.ts';
import { enrollConflict, type DeviceCertRecord, type DeviceRepo, type EnrollConflict } from '../store/device-repo.ts';
import { pemToDer, type DeviceCa, type IssuedDeviceCertificate } from '../pki/device-ca.ts';

export interface DeviceEnrollmentDeps {
  deviceCa: DeviceCa;
  devices: DeviceRepo;
  now?: () => Date;
  /**
   * Told `deviceRevoked` after a revocation or a superseded certificate is committed (hub/fanout.ts:
   * the broker drops the edge's session).
   */
  events?: Emitter<FanoutEvents>;
  /** How long the current certificate stays valid after a rotation was issued. Default 10 minutes. */
  rotationOverlapMs?: number;
}

/** The refusal of a request body whose `csrPem` holds no certificate request. */
export const CSR_PEM_MISSING = 'csrPem holds no "CERTIFICATE REQUEST" PEM block';

/** The DER of the PKCS#10 request (RFC 2986) in `pem`, or undefined when it holds none (CSR_PEM_MISSING). */
export function csrDerOf(pem: string): Uint8Array | undefined {
  try {
    return pemToDer(pem, 'CERTIFICATE REQUEST');
  } catch {
    return undefined;
  }
}

/** What the device repo records of an issued certificate. */
const recordOf = (c: IssuedDeviceCertificate, edgeId: string, serviceId: string): DeviceCertRecord => ({
  edgeId,
  serviceId,
  certSerial: c.serialHex,
  certFingerprint: c.fingerprint,
  notAfter: c.notAfter.getTime(),
});

/** The default overlap of a rotation (see the header comment). */
export const ROTATION_OVERLAP_MS = 10 * 60_000;

interface PendingRotation {
  rec: DeviceCertRecord;
  until: number;
  timer: ReturnType<typeof setTimeout>;
}

export interface EnrolledDevice extends IssuedDeviceCertificate {
  edgeId: string;
  serviceId: string;
  /** The device CA certificate, for the edge to verify the broker with. */
  caPem: string;
}

export function createDeviceEnrollment({ deviceCa, devices, now = () => new Date(), events, rotationOverlapMs = ROTATION_OVERLAP_MS }: DeviceEnrollmentDeps) {
  const pending = new Map<string, PendingRotation>();
  const drop = (edgeId: string) => {
    const p = pending.get(edgeId);
    if (p) clearTimeout(p.timer);
    pending.delete(edgeId);
  };
  // The repo already refuses the old certificate at its next CONNECT; dropping the session at once is
  // the listeners' job, and one that fails is logged by the bus, never thrown here.
  const disconnect = (edgeId: string) => events?.emit('deviceRevoked', { edgeId });
  /** Records the pending certificate as the device's (superseding the old one). */
  const commit = async (edgeId: string): Promise<boolean> => {
    const p = pending.get(edgeId);
    if (!p) return false;
    drop(edgeId);
    const row = await devices.get(edgeId);
    // Revoked (or moved) meanwhile: the rotation is void.
    if (!row || row.status !== 'active' || row.service_id !== p.rec.serviceId) return false;
    if (await devices.enroll(p.rec, now().getTime())) return false;
    disconnect(edgeId);
    return true;
  };
  return {
    /** The device CA certificate (PEM) edges are told to trust. */
    get caPem(): string {
      return deviceCa.certPem;
    },

    /**
     * Issues a certificate for the edge from its CSR and records it; a re-enrollment supersedes (and
     * revokes) the edge's previous certificate. Authorizing the token is the caller's job; that an edge
     * stays in its service is checked here, before a certificate is issued and again atomically when it
     * is recorded: a live device of another service is never taken over, and a revoked device comes
     * back only with `allowRevoked` (a platform operator's explicit permission on the token).
     */
    async enroll(
      csrDer: Uint8Array,
      req: { edgeId: string; serviceId: string; validityDays: number; allowRevoked?: boolean },
    ): Promise<Result<EnrolledDevice, 'csr_invalid' | 'validation_failed' | 'device_ca_retired' | EnrollConflict>> {
      const before = enrollConflict(await devices.get(req.edgeId), req.serviceId, req.allowRevoked);
      if (before) return fail(before, ERROR_CODES[before].title);
      const issued = await deviceCa.issueDeviceCertificate(csrDer, req);
      if (!issued.ok) return issued;
      const c = issued.value;
      const conflict = await devices.enroll(recordOf(c, req.edgeId, req.serviceId), now().getTime(), { allowRevoked: req.allowRevoked });
      // Another enrollment of this edge id won the race while the certificate was being made; the
      // certificate just issued is recorded nowhere, so the broker never accepts it.
      if (conflict) return fail(conflict, ERROR_CODES[conflict].title);
      drop(req.edgeId); // a token enrollment overrides a rotation in flight
      // A re-enrolled edge still connected with its old certificate must come back with the new one.
      disconnect(req.edgeId);
      return ok({ ...c, edgeId: req.edgeId, serviceId: req.serviceId, caPem: deviceCa.certPem });
    },

    /** Revokes the edge's device certificate; the broker refuses it from now on and drops its connection. */
    async revoke(edgeId: string, reason: string): Promise<Result<true, 'device_unknown' | 'device_revoked'>> {
      drop(edgeId); // a rotation in flight dies with the device
      const row = await devices.get(edgeId);
      if (!row) return fail('device_unknown');
      if (!(await devices.revoke(edgeId, reason.slice(0, 64), now().getTime()))) return fail('device_revoked', 'the device is already revoked');
      disconnect(edgeId);
      return ok(true);
    },

    /**
     * Issues a new certificate for an active device from a CSR of its new key, without a token: the
     * caller has proven the current certificate over mutual TLS. The new one is pending until it is
     * used (`usePending`) or the overlap passes; a second rotation replaces a pending one.
     */
    async rotate(
      edgeId: string,
      csrDer: Uint8Array,
      validityDays: number,
    ): Promise<Result<EnrolledDevice & { overlapUntil: Date }, 'csr_invalid' | 'validation_failed' | 'device_ca_retired' | 'device_unknown' | 'device_revoked'>> {
      const row = await devices.get(edgeId);
      if (!row) return fail('device_unknown');
      if (row.status !== 'active') return fail('device_revoked', 'the device is revoked');
      const issued = await deviceCa.issueDeviceCertificate(csrDer, { edgeId, serviceId: row.service_id, validityDays });
      if (!issued.ok) return issued;
      const c = issued.value;
      drop(edgeId);
      const until = now().getTime() + rotationOverlapMs;
      const timer = setTimeout(() => {
        commit(edgeId).catch(() => {
          // The store is gone (the hub stopped): the rotation is forgotten, as on a restart.
        });
      }, rotationOverlapMs);
      timer.unref?.();
      pending.set(edgeId, { rec: recordOf(c, edgeId, row.service_id), until, timer });
      return ok({ ...c, edgeId, serviceId: row.service_id, caPem: deviceCa.certPem, overlapUntil: new Date(until) });
    },

    /**
     * A device presented `fingerprint` (SHA-256 of the DER, lower-case hex): when it is the edge's
     * pending rotation, the rotation is completed now and true is returned.
     */
    async usePending(edgeId: string, fingerprint: string): Promise<boolean> {
      const p = pending.get(edgeId);
      return !!p && p.rec.certFingerprint === fingerprint && (await commit(edgeId));
    },

    /** Forgets pending rotations and their timers (hub stop). */
    stop(): void {
      for (const id of [...pending.keys()]) drop(id);
    },
  };
}

export type DeviceEnrollment = ReturnType<typeof createDeviceEnrollment>;
