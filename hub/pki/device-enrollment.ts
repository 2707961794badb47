// Enrollment and revocation of edge devices: the device CA issues, the device repo records, and the
// broker is told at once when a device is revoked so its connection ends immediately.
import { ERROR_CODES, fail, ok, type Result } from '../../shared/errors.ts';
import { enrollConflict, type DeviceRepo, type EnrollConflict } from '../store/device-repo.ts';
import type { DeviceCa, IssuedDeviceCertificate } from './device-ca.ts';

export interface DeviceEnrollmentDeps {
  deviceCa: DeviceCa;
  devices: DeviceRepo;
  now?: () => Date;
  /** Called after a revocation is committed (the broker's disconnectEdge). A throw is not fatal. */
  onRevoked?: (edgeId: string) => void;
}

export interface EnrolledDevice extends IssuedDeviceCertificate {
  edgeId: string;
  serviceId: string;
  /** The device CA certificate, for the edge to verify the broker with. */
  caPem: string;
}

export function createDeviceEnrollment({ deviceCa, devices, now = () => new Date(), onRevoked }: DeviceEnrollmentDeps) {
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
    ): Promise<Result<EnrolledDevice, 'csr_invalid' | 'validation_failed' | EnrollConflict>> {
      const before = enrollConflict(devices.get(req.edgeId), req.serviceId, req.allowRevoked);
      if (before) return fail(before, ERROR_CODES[before].title);
      const issued = await deviceCa.issueDeviceCertificate(csrDer, req);
      if (!issued.ok) return issued;
      const c = issued.value;
      const conflict = devices.enroll(
        { edgeId: req.edgeId, serviceId: req.serviceId, certSerial: c.serialHex, certFingerprint: c.fingerprint, notAfter: c.notAfter.getTime() },
        now().getTime(),
        { allowRevoked: req.allowRevoked },
      );
      // Another enrollment of this edge id won the race while the certificate was being made; the
      // certificate just issued is recorded nowhere, so the broker never accepts it.
      if (conflict) return fail(conflict, ERROR_CODES[conflict].title);
      // A re-enrolled edge still connected with its old certificate must come back with the new one.
      onRevoked?.(req.edgeId);
      return ok({ ...c, edgeId: req.edgeId, serviceId: req.serviceId, caPem: deviceCa.certPem });
    },

    /** Revokes the edge's device certificate; the broker refuses it from now on and drops its connection. */
    revoke(edgeId: string, reason: string): Result<true, 'device_unknown' | 'device_revoked'> {
      const row = devices.get(edgeId);
      if (!row) return fail('device_unknown');
      if (!devices.revoke(edgeId, reason.slice(0, 64), now().getTime())) return fail('device_revoked', 'the device is already revoked');
      try {
        onRevoked?.(edgeId);
      } catch {
        // The repo already refuses the device at its next CONNECT; the disconnect is best effort.
      }
      return ok(true);
    },
  };
}

export type DeviceEnrollment = ReturnType<typeof createDeviceEnrollment>;
