// The broker auth backend's routes as RabbitMQ calls them (form-encoded POST, body `allow`/`deny`),
// without a cluster: deny by default, the embedded broker's rules, the hub user's password.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createBrokerAuthApp, mqttTopicOf } from '../../../hub/broker-cluster/auth-backend.ts';
import type { DeviceRow } from '../../../hub/store/device-repo.ts';
import { silentLogger } from '../../../shared/log.ts';

const rows = new Map<string, Pick<DeviceRow, 'edge_id' | 'service_id' | 'cert_fingerprint' | 'not_after' | 'status'>>([
  ['lib-1', { edge_id: 'lib-1', service_id: 'library', cert_fingerprint: 'ab', not_after: Date.now() + 86400_000, status: 'active' }],
  ['lib-9', { edge_id: 'lib-9', service_id: 'library', cert_fingerprint: 'cd', not_after: Date.now() + 86400_000, status: 'revoked' }],
]);
const app = createBrokerAuthApp({ devices: { get: async (id: string) => rows.get(id) as DeviceRow | undefined }, log: silentLogger, hubUser: { username: 'mykey_hub', password: 's3cret' } });
const ask = async (path: string, p: Record<string, string>) =>
  (await app.request(path, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(p).toString() })).text();
const topic = (username: string, permission: string, routing_key: string) => ask('/topic', { username, vhost: '/', resource: 'topic', name: 'amq.topic', permission, routing_key });

test('routing keys map back to MQTT topics', () => {
  assert.is(mqttTopicOf('mykey.v1.svc.library.log'), 'mykey/v1/svc/library/log');
  assert.is(mqttTopicOf('mykey.v1.svc.*.log'), 'mykey/v1/svc/+/log');
});

test('user: an active edge by certificate; never unknown, revoked or with a password', async () => {
  assert.is(await ask('/user', { username: 'lib-1' }), 'allow');
  assert.is(await ask('/user', { username: 'lib-2' }), 'deny');
  assert.is(await ask('/user', { username: 'lib-9' }), 'deny');
  assert.is(await ask('/user', { username: 'lib-1', password: '' }), 'deny');
  assert.is(await ask('/user', { username: 'lib-1', password: 'x' }), 'deny');
  assert.is(await ask('/user', {}), 'deny');
});

test('user: the hub with its password only', async () => {
  assert.is(await ask('/user', { username: 'mykey_hub', password: 's3cret' }), 'allow');
  assert.is(await ask('/user', { username: 'mykey_hub', password: 's3cre' }), 'deny');
  assert.is(await ask('/user', { username: 'mykey_hub' }), 'deny');
});

test('vhost: `/` only, and the client id must be the edge id', async () => {
  assert.is(await ask('/vhost', { username: 'lib-1', vhost: '/', client_id: 'lib-1' }), 'allow');
  assert.is(await ask('/vhost', { username: 'lib-1', vhost: '/', client_id: 'lib-2' }), 'deny');
  assert.is(await ask('/vhost', { username: 'lib-1', vhost: '/' }), 'deny');
  assert.is(await ask('/vhost', { username: 'lib-1', vhost: 'other', client_id: 'lib-1' }), 'deny');
  assert.is(await ask('/vhost', { username: 'lib-9', vhost: '/', client_id: 'lib-9' }), 'deny');
});

test('resource: its own session queue and the MQTT exchange, nothing else', async () => {
  const r = (username: string, resource: string, name: string, permission: string) => ask('/resource', { username, vhost: '/', resource, name, permission });
  assert.is(await r('lib-1', 'queue', 'mqtt-subscription-lib-1qos1', 'configure'), 'allow');
  assert.is(await r('lib-1', 'queue', 'mqtt-subscription-lib-2qos1', 'read'), 'deny');
  assert.is(await r('lib-1', 'exchange', 'amq.topic', 'write'), 'allow');
  assert.is(await r('lib-1', 'exchange', 'amq.topic', 'configure'), 'deny');
  assert.is(await r('lib-1', 'exchange', 'amq.fanout', 'write'), 'deny');
  assert.is(await r('lib-9', 'exchange', 'amq.topic', 'write'), 'deny');
});

test('topic: the embedded broker’s rules for edges, the mosquittoAcl rules for the hub', async () => {
  assert.is(await topic('lib-1', 'read', 'mykey.v1.svc.library.log'), 'allow');
  assert.is(await topic('lib-1', 'read', 'mykey.v1.edge.lib-1.cmd'), 'allow');
  assert.is(await topic('lib-1', 'read', 'mykey.v1.svc.points.log'), 'deny');
  assert.is(await topic('lib-1', 'read', 'mykey.v1.svc.*.log'), 'deny');
  assert.is(await topic('lib-1', 'read', 'mykey.#'), 'deny');
  assert.is(await topic('lib-1', 'write', 'mykey.v1.edge.lib-1.status'), 'allow');
  assert.is(await topic('lib-1', 'write', 'mykey.v1.edge.lib-2.status'), 'deny');
  assert.is(await topic('lib-1', 'write', 'mykey.v1.svc.library.log'), 'deny');
  assert.is(await topic('lib-9', 'read', 'mykey.v1.svc.library.log'), 'deny');
  assert.is(await topic('mykey_hub', 'write', 'mykey.v1.svc.library.log'), 'allow');
  assert.is(await topic('mykey_hub', 'write', 'mykey.v1.edge.lib-1.cmd'), 'allow');
  assert.is(await topic('mykey_hub', 'read', 'mykey.v1.edge.*.status'), 'allow');
  assert.is(await topic('mykey_hub', 'read', 'mykey.v1.svc.library.log'), 'deny');
  assert.is(await topic('mykey_hub', 'write', 'mykey.v1.svc.#.log'), 'deny');
  assert.is(await topic('mykey_hub', 'write', 'other.topic'), 'deny');
});

test('an oversized body is denied', async () => {
  assert.is(await ask('/user', { username: 'lib-1', pad: 'x'.repeat(10_000) }), 'deny');
});

test.run();
