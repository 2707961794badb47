// TLS sessions on the broker's listener: no session tickets are issued (RFC 5077; they cost memory per
// edge and no edge resumes) and Node keeps no server-side session cache unless asked, so a session
// offered again is not resumed: every connection presents and verifies its certificate, and a device
// revoked since its last connection is refused with CONNACK 5. Raw TLS and a hand-made CONNECT, so the
// session can be kept and offered again.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect as tlsConnect, type SecureContextOptions, type TLSSocket } from 'node:tls';
import { startFixture, type EdgeCreds, type Fixture } from './helpers/fixture.ts';

let f: Fixture;
test.before(async () => {
  f = await startFixture();
});
test.after(async () => {
  await f.close();
});

/** A TLS 1.2 connection with the edge's certificate (TLS 1.2: a ticket would come in the handshake itself). */
function open(edge: EdgeCreds, session?: Buffer): Promise<TLSSocket> {
  const tls: SecureContextOptions = { ca: f.ca.certPem, cert: edge.certPem, key: edge.keyPem };
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: f.port, ...tls, maxVersion: 'TLSv1.2', checkServerIdentity: () => undefined, ...(session ? { session } : {}) }, () => resolve(s));
    s.once('error', reject);
    s.setTimeout(5000, () => s.destroy(new Error('TLS connection timed out')));
  });
}

/** MQTT 3.1.1 3.1: a CONNECT with the client id, clean session, keep alive 30 s. */
function connectPacket(clientId: string): Buffer {
  const id = Buffer.from(clientId);
  const body = Buffer.concat([Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 30, id.length >> 8, id.length & 0xff]), id]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

/** Sends CONNECT and resolves with the CONNACK return code (MQTT 3.1.1 3.2.2.3); rejects after 5 s. */
function connack(s: TLSSocket, clientId: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no CONNACK within 5 s')), 5000);
    s.once('data', (d: Buffer) => {
      clearTimeout(t);
      if (d[0] !== 0x20 || d.length < 4) return reject(new Error(`not a CONNACK: ${d.toString('hex')}`));
      resolve(d[3]);
    });
    s.write(connectPacket(clientId));
  });
}

test('the broker issues no TLS session ticket', async () => {
  const edge = await f.enroll('edge-ticket', 'library');
  const s = await open(edge);
  assert.ok(s.authorized);
  assert.is(s.getTLSTicket(), undefined);
  assert.is(await connack(s, edge.edgeId), 0);
  s.destroy();
});

test('a device revoked since its last connection cannot resume its TLS session and is refused with CONNACK 5', async () => {
  const edge = await f.enroll('edge-resume', 'library');
  const first = await open(edge);
  assert.is(await connack(first, edge.edgeId), 0);
  const session = first.getSession();
  first.destroy();
  assert.ok(session, 'the client kept a session to offer');
  assert.ok((await f.enrollment.revoke('edge-resume', 'stolen')).ok);
  const again = await open(edge, session);
  // A resumed session would skip the certificate check of the handshake.
  assert.is(again.isSessionReused(), false);
  assert.ok(again.authorized);
  assert.is(await connack(again, edge.edgeId), 5);
  again.destroy();
  assert.ok(
    f.logs.some((l) => l.code === 'device_revoked' && l.edgeId === 'edge-resume'),
    JSON.stringify(f.logs),
  );
});

test.run();
