// PIN-checked touch (#14) in the console: the service page shows what a touch proves (possession by
// default); the operator or the service's own admin (never another service's) switches it, audited.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { client, startConsoleHub, type ConsoleHub } from './helpers/console-hub.ts';

const test = suite('console: touch assurance setting');
let h: ConsoleHub;

test.before(async () => {
  h = await startConsoleHub();
  await h.th.hub.links.createService({ id: 'points', name: 'Points' });
  await h.th.hub.links.createService({ id: 'museum', name: 'Museum' });
  await h.addOperator('ops', 'operator');
  await h.addOperator('museum-admin', 'service-admin', 'museum');
});
test.after(() => h.close());

const level = async (id: string) => (await h.th.hub.linkRepo.service(id))!.touch_assurance;
const audits = async () => (await h.repo.auditLog({ limit: 1000 })).filter((r) => r.action === 'service.touch_assurance');

test('the service page shows possession by default; the operator requires the PIN and goes back, audited', async () => {
  const c = client(h);
  await c.signIn('ops');
  const page = await c.get('/console/services/points');
  assert.is(page.status, 200);
  assert.match(page.text, 'data-testid="touch-assurance"');
  assert.match(page.text, 'name="level" value="pin"');
  assert.is(await level('points'), 'possession');
  assert.is((await c.post('/console/services/points/touch-assurance', { level: 'pin' })).status, 303);
  assert.is(await level('points'), 'pin');
  assert.match((await c.get('/console/services/points')).text, 'name="level" value="possession"');
  assert.is((await c.post('/console/services/points/touch-assurance', { level: 'possession' })).status, 303);
  assert.is(await level('points'), 'possession');
  assert.equal(
    (await audits()).map((r) => `${r.actor} ${r.target} ${r.outcome} ${r.detail}`),
    ['ops points ok {"touchAssurance":"possession"}', 'ops points ok {"touchAssurance":"pin"}'],
  );
});

test('a bad value is refused, and another service admin cannot change it', async () => {
  const c = client(h);
  await c.signIn('ops');
  await c.get('/console/services/points');
  assert.is((await c.post('/console/services/points/touch-assurance', { level: 'maybe' })).status, 400);
  assert.is(await level('points'), 'possession');
  const m = client(h);
  await m.signIn('museum-admin');
  await m.get('/console/services/museum');
  assert.is((await m.post('/console/services/points/touch-assurance', { level: 'pin' })).status, 403);
  assert.is(await level('points'), 'possession');
  assert.is((await m.post('/console/services/museum/touch-assurance', { level: 'pin' })).status, 303);
  assert.is(await level('museum'), 'pin');
});

test.run();
