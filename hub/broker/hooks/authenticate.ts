// authenticate: the CONNECT of an edge is accepted only for an enrolled, active device whose
// current certificate is the one presented, whose client id is its edge id, and whose will is its
// own status. Everything else is refused with a CONNACK return code (MQTT 3.1.1 3.2.2.3):
//   2 identifier rejected  the client id is not the certificate's edge id [MQTT-3.1.3-9]
//   5 not authorized       unknown, revoked, superseded, expired or not yet valid certificate; a
//                          foreign will
// and the server closes the connection after the CONNACK [MQTT-3.2.2-5]. The chain was checked by
// TLS against the device CA (strangers never get here); the repo decides revocation.
import type { AuthenticateError, Client } from 'aedes';
import type { TLSSocket } from 'node:tls';
import type { ErrorCode } from '../../../shared/errors.ts';
import type { BrokerContext } from '../context.ts';
import { edgeIdentity, identityFromPeerCertificate, type EdgeIdentity } from '../identity.ts';
import { checkStatusPayload } from '../payloads.ts';

const IDENTIFIER_REJECTED = 2;
const NOT_AUTHORIZED = 5;

function refusal(returnCode: number, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

export function authenticateHook(ctx: BrokerContext) {
  return (client: Client, username: string | undefined, _password: Buffer | undefined, done: (err: AuthenticateError | null, ok: boolean | null) => void): void => {
    // The store answers asynchronously; a store that fails refuses the connection, never crashes the broker.
    check(client, username, done).catch((err) => {
      ctx.log.error('authenticating an edge failed', { error: err });
      done(refusal(NOT_AUTHORIZED, 'the hub could not check the device'), false);
    });
  };
  async function check(client: Client, username: string | undefined, done: (err: AuthenticateError | null, ok: boolean | null) => void): Promise<void> {
    const refuse = (code: ErrorCode, returnCode: number, what: string, fields: Record<string, unknown> = {}) => {
      // The client id is the peer's own text (up to 64 KiB in MQTT): only its start is logged.
      ctx.refuse(code, what, { clientId: String(client.id ?? '').slice(0, 64), returnCode, ...fields });
      done(refusal(returnCode, what), false);
    };
    let id: EdgeIdentity;
    if (ctx.plainConnections.has(client.conn)) {
      // Development listener on loopback only: no certificate, so the username names the device and
      // must equal the client id. Never enabled in production (see createBroker).
      const row = username === client.id ? await ctx.devices.get(client.id) : undefined;
      if (!row) return refuse('device_unknown', IDENTIFIER_REJECTED, 'plain connection for an unknown device');
      id = edgeIdentity(row.edge_id, row.service_id, '', Infinity);
      if (row.status !== 'active') return refuse('device_revoked', NOT_AUTHORIZED, 'device revoked', { edgeId: id.edgeId });
    } else {
      const sock = client.conn as TLSSocket;
      if (typeof sock.getPeerCertificate !== 'function') return refuse('unauthorized', NOT_AUTHORIZED, 'no client certificate');
      const r = identityFromPeerCertificate(sock.getPeerCertificate(false));
      // A device certificate of ours outside its validity period: told so, so it can re-enroll.
      const invalid = ctx.outOfValidity.get(sock);
      if (invalid) return refuse(invalid, NOT_AUTHORIZED, 'device certificate outside its validity period', { edgeId: r.ok ? r.value.edgeId : undefined });
      // Unverified handshakes were closed before aedes saw them; this is the belt to those braces.
      if (!sock.authorized) return refuse('unauthorized', NOT_AUTHORIZED, 'no verified client certificate');
      if (!r.ok) return refuse(r.code, NOT_AUTHORIZED, r.message);
      id = r.value;
      // MQTT 3.1.1 3.1.3.1: the Server may restrict client ids; ours is the certificate's edge id.
      if (client.id !== id.edgeId) return refuse('device_id_mismatch', IDENTIFIER_REJECTED, 'client id is not the certificate edge id', { edgeId: id.edgeId });
      // A resumed TLS session skips certificate validation, so validity is checked here as well.
      if (id.notAfter <= ctx.now()) return refuse('cert_expired', NOT_AUTHORIZED, 'device certificate expired', { edgeId: id.edgeId });
      if (await ctx.devices.isCertRevoked(id.fingerprint)) return refuse('device_revoked', NOT_AUTHORIZED, 'device certificate revoked', { edgeId: id.edgeId });
      const row = await ctx.devices.get(id.edgeId);
      if (!row || row.cert_fingerprint !== id.fingerprint || row.service_id !== id.serviceId) {
        return refuse('device_unknown', NOT_AUTHORIZED, 'certificate not on record for this edge', { edgeId: id.edgeId });
      }
      if (row.status !== 'active') return refuse('device_revoked', NOT_AUTHORIZED, 'device revoked', { edgeId: id.edgeId });
    }
    // MQTT 3.1.1 3.1.2.5-3.1.2.7: the will is published on an unclean disconnect, so it obeys the same
    // rule as the edge's own publishes: its status topic, a valid offline status of its own, QoS <= 1.
    const will = ctx.wills.get(client);
    ctx.wills.delete(client);
    if (will) {
      if (will.topic !== id.topics.status || will.qos > 1) return refuse('topic_forbidden', NOT_AUTHORIZED, 'will outside the edge status topic', { edgeId: id.edgeId });
      const s = checkStatusPayload(id, will.payload);
      if (!s.ok) return refuse(s.code, NOT_AUTHORIZED, `will payload: ${s.message}`, { edgeId: id.edgeId });
      // The will is what the hub records when the edge vanishes: it must say so.
      if (s.value.online) return refuse('validation_failed', NOT_AUTHORIZED, 'a will must report the edge offline', { edgeId: id.edgeId });
    }
    ctx.identities.set(client, id);
    done(null, true);
  }
}
