// The hub as started serves the operator console and the enrollment endpoint (wiring in hub/main.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate } from 'node:crypto';
import { runConsoleCli } from '../../hub/console/cli.ts';
import { startTestHub } from '../helpers/hub.ts';
import { client, PASSWORD } from './console/helpers/console-hub.ts';
import { enrollEdge } from '../helpers/enrolled-edge.ts';

test('the started hub serves the console sign-in page and documents enrollment', async () => {
  const h = await startTestHub();
  try {
    const { url } = await h.hub.start();
    const res = await fetch(`${url}/console`, { redirect: 'manual' });
    assert.ok([200, 302, 303].includes(res.status), String(res.status));
    const signIn = await fetch(new URL(res.headers.get('location') ?? '/console', url));
    assert.is(signIn.status, 200);
    assert.match(await signIn.text(), /<form/);
    // Enrollment redemption lives on the device listener (TLS, CA pinned by the enrollment tool), not here.
    const doc = (await (await h.hub.deviceApp.request('/openapi.json')).json()) as { paths: Record<string, unknown> };
    assert.ok(doc.paths['/v1/enrollments']);
    const bad = await h.hub.deviceApp.request('/v1/enrollments', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: 'nope', edgeId: 'e-1', csrPem: 'x' }),
    });
    assert.ok(bad.status >= 400 && bad.status < 500);
    assert.is((await fetch(`${url}/v1/enrollments`, { method: 'POST' })).status, 404);
  } finally {
    await h.close();
  }
});

test('the started hub shows its device CA fingerprint and device API URL in the enroll command', async () => {
  const h = await startTestHub();
  try {
    const { url } = await h.hub.start();
    await h.hub.links.createService({ id: 'library', name: 'Library' });
    const code = await runConsoleCli(['add-operator', 'ops', '--role', 'operator'], h.hub.store, { out: () => {}, readPassword: async () => PASSWORD });
    assert.is(code, 0);
    const c = client(h.hub, undefined, url);
    assert.is((await c.signIn('ops')).status, 303);
    await c.get('/console/enrollments');
    const r = await c.post('/console/enrollments', { serviceId: 'library', edgeId: 'library-01', hours: '1' });
    assert.is(r.status, 303);
    const page = await c.get(r.location!);
    const fp = new X509Certificate(h.hub.deviceCa!.certPem).fingerprint256;
    const command = /data-testid="enroll-command">([^<]+)</.exec(page.text)?.[1];
    assert.is(command, `npx tsx provisioning/enroll/cli.ts enroll --hub ${h.hub.addresses.deviceApi} --ca-fingerprint ${fp} --edge-id library-01 --state-dir /var/lib/mykey-edge`);
  } finally {
    await h.close();
  }
});

test("in the started hub a service admin cannot issue a token for another service's edge, and that service sees the attempt", async () => {
  const h = await startTestHub();
  try {
    const { url } = await h.hub.start();
    await h.hub.links.createService({ id: 'library', name: 'Library' });
    await h.hub.links.createService({ id: 'museum', name: 'Museum' });
    for (const [name, service] of [
      ['lib-admin', 'library'],
      ['mus-admin', 'museum'],
    ]) {
      assert.is(await runConsoleCli(['add-operator', name, '--role', 'service-admin', '--service', service], h.hub.store, { out: () => {}, readPassword: async () => PASSWORD }), 0);
    }
    await enrollEdge(h.hub, 'museum-gate-1', 'museum');
    const lib = client(h.hub, undefined, url);
    assert.is((await lib.signIn('lib-admin')).status, 303);
    await lib.get('/console/enrollments');
    const r = await lib.post('/console/enrollments', { serviceId: 'library', edgeId: 'museum-gate-1', hours: '1' });
    assert.is(r.status, 403);
    assert.match(r.text, 'data-code="edge_enrolled_elsewhere"');
    assert.is((await h.hub.devices.get('museum-gate-1'))!.service_id, 'museum');
    const mus = client(h.hub, undefined, url);
    assert.is((await mus.signIn('mus-admin')).status, 303);
    const audit = await mus.get('/console/audit');
    assert.match(audit.text, /lib-admin[\s\S]*edge_enrolled_elsewhere/);
  } finally {
    await h.close();
  }
});

test.run();
