// The per-service "holder proof at the counter" setting in the console: shown on the service page, on
// by default, changed by the operator or the service's own admin (never another service's), stored,
// and audited.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { client, startConsoleHub, type ConsoleHub } from './helpers/console-hub.ts';

const test = suite('console: holder proof setting');
let h: ConsoleHub;

test.before(async () => {
  h = await startConsoleHub();
  await h.th.hub.links.createService({ id: 'library', name: 'Library' });
  await h.th.hub.links.createService({ id: 'museum', name: 'Museum' });
  await h.addOperator('ops', 'operator');
  await h.addOperator('museum-admin', 'service-admin', 'museum');
});
test.after(() => h.close());

const required = async (id: string) => (await h.th.hub.linkRepo.service(id))!.require_holder_proof === 1;
const audits = async () => (await h.repo.auditLog({ limit: 1000 })).filter((r) => r.action === 'service.holder_proof');

test('the service page shows the setting, on by default, and the operator turns it off and on again, audited', async () => {
  const c = client(h);
  await c.signIn('ops');
  const page = await c.get('/console/services/library');
  assert.is(page.status, 200);
  assert.match(page.text, 'data-testid="holder-proof"');
  assert.match(page.text, 'name="required" value="0"');
  assert.ok(await required('library'));
  const off = await c.post('/console/services/library/holder-proof', { required: '0' });
  assert.is(off.status, 303);
  assert.not.ok(await required('library'));
  assert.match((await c.get('/console/services/library')).text, 'name="required" value="1"');
  assert.is((await c.post('/console/services/library/holder-proof', { required: '1' })).status, 303);
  assert.ok(await required('library'));
  const rows = await audits();
  assert.equal(
    rows.map((r) => `${r.actor} ${r.target} ${r.outcome} ${r.detail}`),
    ['ops library ok {"required":true}', 'ops library ok {"required":false}'],
  );
});

test('a bad value is refused, and another service admin cannot change it', async () => {
  const c = client(h);
  await c.signIn('ops');
  await c.get('/console/services/library');
  assert.is((await c.post('/console/services/library/holder-proof', { required: 'maybe' })).status, 400);
  assert.ok(await required('library'));
  const m = client(h);
  await m.signIn('museum-admin');
  await m.get('/console/services/museum');
  assert.is((await m.post('/console/services/library/holder-proof', { required: '0' })).status, 403);
  assert.ok(await required('library'));
  assert.is((await m.post('/console/services/museum/holder-proof', { required: '0' })).status, 303);
  assert.not.ok(await required('museum'));
  assert.ok((await audits()).some((r) => r.actor === 'museum-admin' && r.outcome === 'forbidden'));
});

test.run();
