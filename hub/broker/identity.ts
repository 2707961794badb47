// Who a connection is: the edge identity carried by its TLS client certificate (see the profile in
// hub/pki/device-ca.ts: CN = edge id, OU = service id). Pure over Node's parsed peer certificate.
import { createHash } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { fail, ok, type Result } from '../../shared/errors.ts';
import { isEdgeId, isServiceId } from '../../shared/ids.ts';
import { edgeCommandTopic, edgeReplyTopic, edgeStatusTopic, serviceLogTopic } from '../../shared/topics.ts';

/** An authenticated edge, with the only topics it may use precomputed (compared as plain strings). */
export interface EdgeIdentity {
  edgeId: string;
  serviceId: string;
  /** SHA-256 of the certificate DER, lowercase hex ('' on the development plain listener). */
  fingerprint: string;
  /** Milliseconds since the epoch; Infinity on the plain listener. */
  notAfter: number;
  topics: { log: string; cmd: string; status: string; reply: string };
}

/** Builds an identity (and its topics) from checked ids. */
export function edgeIdentity(edgeId: string, serviceId: string, fingerprint: string, notAfter: number): EdgeIdentity {
  return {
    edgeId,
    serviceId,
    fingerprint,
    notAfter,
    topics: { log: serviceLogTopic(serviceId), cmd: edgeCommandTopic(edgeId), status: edgeStatusTopic(edgeId), reply: edgeReplyTopic(edgeId) },
  };
}

function single(v: string | string[] | undefined): string | undefined {
  // A subject with two CNs (or OUs) is ambiguous; Node gives an array then.
  return typeof v === 'string' ? v : undefined;
}

/**
 * The edge identity of a verified TLS client certificate. The chain and validity were checked by
 * the TLS layer against the device CA; this reads the subject and the fingerprint.
 */
export function identityFromPeerCertificate(peer: PeerCertificate | undefined): Result<EdgeIdentity, 'device_unknown'> {
  if (!peer || !peer.raw || peer.raw.length === 0) return fail('device_unknown', 'no client certificate');
  const edgeId = single(peer.subject?.CN);
  const serviceId = single(peer.subject?.OU);
  if (!isEdgeId(edgeId)) return fail('device_unknown', 'the certificate CN is not an edge id');
  if (!isServiceId(serviceId)) return fail('device_unknown', 'the certificate OU is not a service id');
  const notAfter = Date.parse(peer.valid_to);
  if (!Number.isFinite(notAfter)) return fail('device_unknown', 'unreadable certificate validity');
  const fingerprint = createHash('sha256').update(peer.raw).digest('hex');
  return ok(edgeIdentity(edgeId, serviceId, fingerprint, notAfter));
}
