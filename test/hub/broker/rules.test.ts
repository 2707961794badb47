// The broker's pure rules, table-driven: which topics an edge may use, what a status payload must
// be, and how a peer certificate becomes an edge identity.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { PeerCertificate } from 'node:tls';
import { canPublish, canReceive, canSubscribe, mosquittoAcl } from '../../../hub/broker/acl.ts';
import { edgeIdentity, identityFromPeerCertificate } from '../../../hub/broker/identity.ts';
import { checkReplyPayload, checkStatusPayload } from '../../../hub/broker/payloads.ts';
import { isLoopback } from '../../../hub/broker/broker.ts';

const me = edgeIdentity('edge-01', 'library', 'ab'.repeat(32), Date.now() + 1e9);

const subscribe: Array<[string, boolean]> = [
  ['mykey/v1/svc/library/log', true],
  ['mykey/v1/edge/edge-01/cmd', true],
  ['mykey/v1/svc/museum/log', false],
  ['mykey/v1/edge/edge-02/cmd', false],
  ['mykey/v1/edge/edge-01/status', false],
  ['mykey/v1/edge/edge-01/reply', false],
  ['mykey/v1/svc/+/log', false],
  ['mykey/v1/svc/library/#', false],
  ['#', false],
  ['+/+/+/+/+', false],
  ['$SYS/#', false],
  ['mykey/v1/svc/library/log/', false],
  ['MYKEY/v1/svc/library/log', false],
  ['', false],
];
for (const [topic, allowed] of subscribe) {
  test(`subscribing to "${topic}" is ${allowed ? 'allowed' : 'refused'}`, () => {
    assert.is(canSubscribe(me, topic).ok, allowed);
    assert.is(canReceive(me, topic), allowed);
  });
}

const publish: Array<[string, boolean]> = [
  ['mykey/v1/edge/edge-01/status', true],
  ['mykey/v1/edge/edge-01/reply', true],
  ['mykey/v1/edge/edge-01/cmd', false],
  ['mykey/v1/svc/library/log', false],
  ['mykey/v1/edge/edge-02/status', false],
  ['mykey/v1/edge/edge-012/status', false],
  ['other', false],
];
for (const [topic, allowed] of publish) {
  test(`publishing on "${topic}" is ${allowed ? 'allowed' : 'refused'}`, () => {
    assert.is(canPublish(me, topic).ok, allowed);
  });
}

const good = { edgeId: 'edge-01', serviceId: 'library', online: true, appliedSeq: 5, version: '1.0.0', health: 'ok', at: '2026-11-25T10:00:00.000Z' };
const statuses: Array<[string, unknown, string]> = [
  ['a valid status', good, 'ok'],
  ['a status with counters', { ...good, counters: { touches: 1, handoffs: 1, notLinked: 0, refused: 0, errors: 0 } }, 'ok'],
  ['an unknown health', { ...good, health: 'great' }, 'validation_failed'],
  ['a date that is not a date', { ...good, at: 'yesterday' }, 'validation_failed'],
  ['a fractional seq', { ...good, appliedSeq: 1.5 }, 'validation_failed'],
  ['a missing field', { ...good, online: undefined }, 'validation_failed'],
  ['an extra field', { ...good, reader: 'x' }, 'validation_failed'],
  ['a status with the reader health', { ...good, reader: { state: 'needs_replug', resets: 3, failedResets: 3, model: 'ACS ACR1252U', usbId: '072f:223b' } }, 'ok'],
  ['a reader in an unknown state', { ...good, reader: { state: 'on_fire', resets: 0 } }, 'validation_failed'],
  ['a reader health with an extra field', { ...good, reader: { state: 'ok', resets: 0, serial: 'RR1234' } }, 'validation_failed'],
  ['a reader usb id that is not vendor:product', { ...good, reader: { state: 'ok', resets: 0, usbId: 'ACR1252' } }, 'validation_failed'],
  ['another edge id', { ...good, edgeId: 'edge-02' }, 'device_id_mismatch'],
  ['another service', { ...good, serviceId: 'museum' }, 'device_id_mismatch'],
  ['an array', [good], 'validation_failed'],
  ['null', null, 'validation_failed'],
];
for (const [what, value, code] of statuses) {
  test(`status payload: ${what} gives ${code}`, () => {
    const r = checkStatusPayload(me, Buffer.from(JSON.stringify(value)));
    assert.is(r.ok ? 'ok' : r.code, code);
  });
}

test('status payload: invalid UTF-8 / not JSON and oversized payloads are refused', () => {
  const r1 = checkStatusPayload(me, Buffer.from([0xff, 0xfe, 0x7b]));
  assert.is(r1.ok ? 'ok' : r1.code, 'validation_failed');
  const r2 = checkStatusPayload(me, Buffer.alloc(64 * 1024 + 1, 0x20));
  assert.is(r2.ok ? 'ok' : r2.code, 'payload_too_large');
});

test('reply payloads must be the reply envelope', () => {
  assert.ok(checkReplyPayload(Buffer.from('{"ok":true,"data":1,"transaction":"t"}')).ok);
  assert.ok(checkReplyPayload(Buffer.from('{"ok":false,"error":{"code":"internal","message":"x"}}')).ok);
  for (const bad of ['{}', '[]', '"ok"', '{"ok":"yes"}', `{"ok":true,"transaction":"${'x'.repeat(65)}"}`]) assert.not.ok(checkReplyPayload(Buffer.from(bad)).ok, bad);
});

function peer(subject: Record<string, string | string[]>, raw = Buffer.from([1, 2, 3])): PeerCertificate {
  return { subject, raw, valid_to: 'Dec 25 18:23:30 2036 GMT' } as unknown as PeerCertificate;
}

test('a peer certificate with CN = edge id and OU = service id becomes that identity', () => {
  const r = identityFromPeerCertificate(peer({ O: 'MyKey Platform devices', OU: 'library', CN: 'edge-01' }));
  assert.ok(r.ok);
  if (r.ok) {
    assert.is(r.value.edgeId, 'edge-01');
    assert.is(r.value.topics.log, 'mykey/v1/svc/library/log');
    assert.is(r.value.fingerprint, '039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81');
    assert.is(r.value.notAfter, Date.parse('2036-12-25T18:23:30Z'));
  }
});

const badPeers: Array<[string, PeerCertificate | undefined]> = [
  ['no certificate', undefined],
  ['an empty certificate', peer({ CN: 'edge-01', OU: 'library' }, Buffer.alloc(0))],
  ['two CNs', peer({ CN: ['edge-01', 'edge-02'], OU: 'library' })],
  ['a CN with a wildcard', peer({ CN: 'edge-#', OU: 'library' })],
  ['a CN with a slash', peer({ CN: 'edge/01', OU: 'library' })],
  ['no OU', peer({ CN: 'edge-01' })],
  ['an OU that is not a service id', peer({ CN: 'edge-01', OU: 'Library Dept' })],
];
for (const [what, p] of badPeers) {
  test(`a peer certificate with ${what} is not an edge identity`, () => {
    const r = identityFromPeerCertificate(p);
    assert.is(r.ok ? 'ok' : r.code, 'device_unknown');
  });
}

test('the Mosquitto ACL gives each edge exactly its own topics', () => {
  const acl = mosquittoAcl([me], 'mykey-hub');
  assert.match(
    acl,
    /user edge-01\ntopic read mykey\/v1\/svc\/library\/log\ntopic read mykey\/v1\/edge\/edge-01\/cmd\ntopic write mykey\/v1\/edge\/edge-01\/status\ntopic write mykey\/v1\/edge\/edge-01\/reply\n/,
  );
  assert.match(acl, /^user mykey-hub\n/);
});

test('loopback addresses are recognised for the development listener', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.ok(isLoopback(h), h);
  for (const h of ['0.0.0.0', '::', '192.168.1.10', 'example.com', '128.0.0.1']) assert.not.ok(isLoopback(h), h);
});

test.run();
