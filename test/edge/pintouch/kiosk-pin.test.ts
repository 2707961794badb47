// The kiosk page's PIN pad routes (#14) over real HTTP: the PIN goes to the flow's action and nowhere
// else (never into the view), JSON only, the page's own origin only, and 404 where PIN-checked touches
// are not wired.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KioskServer, type ActionReply } from '../../../edge/kiosk/index.ts';

const calls: string[] = [];
const ok: ActionReply = { ok: true };
const kiosk = new KioskServer({ pinTouch: { pin: (p) => (calls.push(`pin:${p}`), ok), cancel: () => (calls.push('cancel'), ok) } });
const bare = new KioskServer();

test.before(async () => {
  await kiosk.start();
  await bare.start();
});
test.after(async () => {
  await kiosk.stop();
  await bare.stop();
});

const post = (base: string, path: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  fetch(`${base}${path}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });

test('the PIN pad shows on the page view without the PIN, and the PIN posted reaches the flow only', async () => {
  kiosk.showPinTouch({ step: 'pin', triesLeft: 3 });
  const view = (await (await fetch(`${kiosk.url}/api/view`)).json()) as { screen: string; pin: unknown };
  assert.equal([view.screen, view.pin], ['pin', { step: 'pin', triesLeft: 3 }]);
  const r = await post(kiosk.url, '/api/pin', { pin: '2468' });
  assert.is(r.status, 200);
  assert.equal(calls, ['pin:2468']);
  assert.not.ok(JSON.stringify(kiosk.view()).includes('2468'));
  assert.is((await post(kiosk.url, '/api/pin/cancel', {})).status, 200);
  assert.equal(calls, ['pin:2468', 'cancel']);
  kiosk.showPinTouch({ step: 'off' });
  assert.is(kiosk.view().screen, 'idle');
});

test('a form post, a PIN that is not a string and a foreign origin are refused before the flow', async () => {
  const before = calls.length;
  assert.is((await post(kiosk.url, '/api/pin', 'pin=1234', { 'content-type': 'application/x-www-form-urlencoded' })).status, 415);
  assert.is((await post(kiosk.url, '/api/pin', { pin: 1234 })).status, 400);
  const foreign = await post(kiosk.url, '/api/pin', { pin: '1234' }, { 'content-type': 'application/json', origin: 'https://evil.example' });
  assert.is(foreign.status, 403);
  assert.is(((await foreign.json()) as { code: string }).code, 'kiosk_origin_refused');
  assert.is(calls.length, before);
});

test('an edge without PIN-checked touches answers 404 on the PIN route', async () => {
  const r = await post(bare.url, '/api/pin', { pin: '1234' });
  assert.is(r.status, 404);
});

test.run();
