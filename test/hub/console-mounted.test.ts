// The hub as started serves the operator console and the enrollment endpoint (wiring in hub/main.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestHub } from '../helpers/hub.ts';

test('the started hub serves the console sign-in page and documents enrollment', async () => {
  const h = await startTestHub({ overrides: { broker: { port: 0 }, devices: { httpsPort: 0 } } });
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
    const bad = await h.hub.deviceApp.request('/v1/enrollments', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: 'nope', edgeId: 'e-1', csrPem: 'x' }) });
    assert.ok(bad.status >= 400 && bad.status < 500);
    assert.is((await fetch(`${url}/v1/enrollments`, { method: 'POST' })).status, 404);
  } finally {
    await h.close();
  }
});

test.run();
