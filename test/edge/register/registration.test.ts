// Counter registration against a real hub over mutual TLS with an enrolled device certificate: the
// card's MyKey ID or certificate, the service card number, and the holder's proof where the service
// wants it. The card's signing is done with the test key (the PC/SC path is in the serial test).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, signLikeCard, type IssuedCert, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import { MyKeyError } from '../../../shared/errors.ts';
import { createLogger } from '../../../shared/log.ts';
import { certIdentityWithKey, issuerKeyOf } from '../../../shared/cert-identity.ts';
import { keyedIdentitySync } from '../../../shared/sync.ts';
import { CommandSocket, HttpDeviceApi, RegistrationFlow, type HolderSigner, type RegistrationView } from '../../../edge/register/index.ts';
import { issue, startTestHub, type TestHub } from '../../helpers/hub.ts';
import { until } from '../../helpers/polling.ts';
import { enrollEdge } from '../../helpers/enrolled-edge.ts';

interface Ctx {
  h: TestHub;
  ca: TestCa;
  api: HttpDeviceApi;
  proofApi: HttpDeviceApi;
  dir: string;
  logs: string[];
}
const test = suite<Ctx>('counter registration', {} as Ctx);

async function enrolledApi(ctx: Ctx, edgeId: string, serviceId: string): Promise<HttpDeviceApi> {
  const { tls } = await enrollEdge(ctx.h.hub, edgeId, serviceId);
  return new HttpDeviceApi({ hubUrl: ctx.h.hub.addresses.deviceApi!, tls });
}

test.before(async (ctx) => {
  ctx.ca = await createTestCa();
  ctx.h = await startTestHub({ ca: ctx.ca });
  await ctx.h.hub.start();
  // The library chose possession only (no PIN) for links by certificate; a bare MyKey ID still needs the PIN.
  await ctx.h.hub.links.createService({ id: 'library', name: 'Town library', requireHolderProof: false });
  await ctx.h.hub.links.createService({ id: 'points', name: 'Shopping street points', requireHolderProof: true });
  ctx.api = await enrolledApi(ctx, 'lib-counter-1', 'library');
  ctx.proofApi = await enrolledApi(ctx, 'pts-counter-1', 'points');
  ctx.dir = mkdtempSync(join(tmpdir(), 'mykey-register-'));
  ctx.logs = [];
});
test.after(async (ctx) => {
  await ctx.h.close();
  rmSync(ctx.dir, { recursive: true, force: true });
});

async function registered(ctx: Ctx): Promise<{ cert: IssuedCert; mykeyId: string }> {
  const cert = await issue(ctx.ca);
  const res = await ctx.h.request('/v1/mykey-ids', { proof: await ctx.h.proof(cert) });
  assert.is(res.status, 201);
  return { cert, mykeyId: ((await res.json()) as { mykeyId: string }).mykeyId };
}

/** A card signer with the test key; PIN 1234, 3 tries. */
function testSigner(cert: IssuedCert): HolderSigner & { tries: number } {
  const s = {
    tries: 3,
    async sign(_reader: string, pin: string, challenge: Uint8Array) {
      if (pin !== '1234') {
        s.tries--;
        throw new MyKeyError(s.tries === 0 ? 'pin_blocked' : 'pin_wrong', 'wrong', { details: { triesLeft: s.tries } });
      }
      return { certDer: cert.certDer, signature: await signLikeCard(cert.keyPair.privateKey, challenge) };
    },
  };
  return s;
}

function flowOf(ctx: Ctx, opts: Partial<ConstructorParameters<typeof RegistrationFlow>[0]> = {}): { flow: RegistrationFlow; steps: RegistrationView[] } {
  const log = createLogger('test', { level: 'debug', write: (l) => ctx.logs.push(l) });
  const flow = new RegistrationFlow({ api: ctx.api, log, resultMs: 200, ...opts });
  const steps: RegistrationView[] = [];
  flow.on((v) => steps.push(v));
  return { flow, steps };
}

/** The flow's view once it reaches `step` (polled often: a test may wait for a step it soon leaves). */
const atStep = (flow: RegistrationFlow, step: RegistrationView['step']) => viewWhen(flow, (v) => v.step === step, `step ${step}`);

async function mapped(ctx: Ctx, serviceId: string): Promise<Map<string, string>> {
  return new Map((await ctx.h.hub.links.snapshot(serviceId)).entries);
}

test('links the MyKey ID read off the card to the service card number once the holder enters the PIN', async (ctx) => {
  const { cert, mykeyId } = await registered(ctx);
  const { flow, steps } = flowOf(ctx, { signer: testSigner(cert) });
  assert.ok(flow.start().ok);
  assert.ok(flow.wantsCard);
  flow.cardTouched('Virtual PCD 00 00', { kind: 'mykey', mykeyId });
  assert.is(flow.view().step, 'service_user_id');
  assert.ok(flow.serviceUserId(' LIB-000123 ').ok);
  await atStep(flow, 'pin'); // a bare MyKey ID is never linked: the hub answered holder_proof_required
  flow.pin('1234');
  const done = await atStep(flow, 'done');
  assert.equal(done, { step: 'done', serviceUserId: 'LIB-000123', replaced: false });
  assert.equal(
    steps.map((s) => s.step),
    ['touch', 'service_user_id', 'sending', 'pin', 'sending', 'done'],
  );
  const secret = (await ctx.h.hub.links.service('library'))!.sync_secret;
  assert.is((await mapped(ctx, 'library')).get(keyedIdentitySync(secret, 'mykey', mykeyId)), 'LIB-000123');
  await atStep(flow, 'off');
  await flow.stop();
});

test('links by certificate, and the hub files the certificate key too', async (ctx) => {
  const { cert } = await registered(ctx);
  const { flow } = flowOf(ctx);
  flow.start();
  flow.cardTouched('r', { kind: 'cert', certDer: cert.certDer });
  flow.serviceUserId('LIB-000124');
  await atStep(flow, 'done');
  const secret = (await ctx.h.hub.links.service('library'))!.sync_secret;
  // scrypt-v3: the certificate identity names the issuing key (its AKI, the CA's SKI).
  const withKey = certIdentityWithKey({ issuerKey: issuerKeyOf(ctx.ca.nameDer), serialHex: cert.serialHex, aki: Buffer.from(ctx.ca.subjectKeyId).toString('hex') });
  assert.is((await mapped(ctx, 'library')).get(keyedIdentitySync(secret, 'cert', withKey)), 'LIB-000124');
  await flow.stop();
});

test('goes straight to the number when registration starts right after a "not linked" touch', async (ctx) => {
  const { mykeyId } = await registered(ctx);
  const { flow } = flowOf(ctx);
  flow.offer('r', { kind: 'mykey', mykeyId }, 5000);
  flow.start();
  assert.is(flow.view().step, 'service_user_id');
  flow.cancel();
  flow.offer('r', { kind: 'mykey', mykeyId }, 5000);
  flow.forgetOffer(); // another touch came in between
  flow.start();
  assert.is(flow.view().step, 'touch');
  await flow.stop();
});

test('asks for the PIN when the service requires the holder, and retries a wrong PIN', async (ctx) => {
  const { cert, mykeyId } = await registered(ctx);
  const signer = testSigner(cert);
  const { flow } = flowOf(ctx, { api: ctx.proofApi, signer });
  flow.start();
  flow.cardTouched('r', { kind: 'mykey', mykeyId });
  flow.serviceUserId('PT-5');
  await atStep(flow, 'pin'); // the hub said forbidden without a proof
  assert.is(flow.pin('12').ok, false, 'a PIN that is not 4 digits never reaches the card');
  assert.is(signer.tries, 3);
  flow.pin('9999');
  const wrong = await viewWhen(flow, (v) => v.step === 'pin' && v.retry === 'pin_wrong');
  assert.equal(wrong, { step: 'pin', retry: 'pin_wrong', triesLeft: 2 });
  flow.pin('1234');
  await atStep(flow, 'done');
  const secret = (await ctx.h.hub.links.service('points'))!.sync_secret;
  assert.is((await mapped(ctx, 'points')).get(keyedIdentitySync(secret, 'mykey', mykeyId)), 'PT-5');
  assert.not.ok(ctx.logs.join('\n').includes('1234'), 'the PIN is never logged');
  assert.not.ok(ctx.logs.join('\n').includes('9999'), 'the PIN is never logged');
  await flow.stop();
});

test('with requireHolderProof asks for the PIN before the first call, and a blocked PIN ends it', async (ctx) => {
  const { cert, mykeyId } = await registered(ctx);
  const signer = testSigner(cert);
  signer.tries = 1;
  const { flow } = flowOf(ctx, { signer, requireHolderProof: true });
  flow.start();
  flow.cardTouched('r', { kind: 'mykey', mykeyId });
  flow.serviceUserId('LIB-1');
  assert.is(flow.view().step, 'pin');
  flow.pin('0000');
  const failed = await atStep(flow, 'failed');
  assert.equal(failed, { step: 'failed', code: 'pin_blocked' });
  await atStep(flow, 'off');
  await flow.stop();
});

test('a card without a MyKey ID fails with the hub code, and a bad number is refused', async (ctx) => {
  const stranger = await issue(ctx.ca);
  const { flow } = flowOf(ctx);
  flow.start();
  flow.cardTouched('r', { kind: 'cert', certDer: stranger.certDer });
  const bad = flow.serviceUserId('has space');
  assert.is(bad.ok, false);
  if (!bad.ok) assert.is(bad.code, 'validation_failed');
  assert.is(flow.view().step, 'service_user_id');
  flow.serviceUserId('LIB-2');
  assert.equal(await atStep(flow, 'failed'), { step: 'failed', code: 'mykey_id_not_found' });
  await flow.stop();
});

test('an unfinished step times out and forgets the card', async (ctx) => {
  const { flow, steps } = flowOf(ctx, { stepMs: 100, resultMs: 50 });
  flow.start();
  flow.cardTouched('r', { kind: 'mykey', mykeyId: 'B7NQ4KXW' });
  assert.equal(await atStep(flow, 'failed'), { step: 'failed', code: 'timeout' });
  await atStep(flow, 'off');
  assert.is(flow.serviceUserId('LIB-3').ok, false, 'nothing is held any more');
  assert.equal(
    steps.map((s) => s.step),
    ['touch', 'service_user_id', 'failed', 'off'],
  );
  await flow.stop();
});

test('a local program drives registration over the command socket', async (ctx) => {
  const { cert } = await registered(ctx);
  const { flow } = flowOf(ctx);
  const path = join(ctx.dir, 'register.sock');
  const socket = new CommandSocket({ path, flow });
  await socket.start();
  const conn = createConnection(path);
  const lines: any[] = [];
  let buf = '';
  conn.on('data', (d) => {
    buf += d;
    let i: number;
    // biome-ignore lint/suspicious/noAssignInExpressions: the usual split-into-lines loop; the assignment is its condition
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
  });
  const reply = (tx: string) => until(() => lines.find((l) => l.transaction === tx), { what: `reply ${tx}` });
  try {
    await new Promise((r) => conn.once('connect', r));
    conn.write(JSON.stringify({ transaction: 'a', command: 'start' }) + '\n');
    assert.equal((await reply('a')).data, { step: 'touch' });
    flow.cardTouched('r', { kind: 'cert', certDer: cert.certDer });
    conn.write(JSON.stringify({ transaction: 'b', command: 'service-user-id', value: 'LIB-SOCK-1' }) + '\n');
    assert.is((await reply('b')).ok, true);
    await atStep(flow, 'done');
    conn.write(JSON.stringify({ transaction: 'c', command: 'pin', value: '1234' }) + '\n');
    assert.is((await reply('c')).error.code, 'conflict');
    conn.write('not json\n');
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(lines.some((l) => l.ok === false && l.error.code === 'bad_request'));
    assert.ok(
      lines.some((l) => l.event === 'registration' && l.view.step === 'done'),
      'changes are pushed',
    );
  } finally {
    conn.destroy();
    await socket.stop();
    await flow.stop();
  }
});

function viewWhen(flow: RegistrationFlow, pred: (v: RegistrationView) => boolean, what = pred.toString()): Promise<RegistrationView> {
  return until(() => pred(flow.view()) && flow.view(), { what: `the flow at ${what}`, intervalMs: 5, detail: () => `flow is at ${JSON.stringify(flow.view())}` });
}

test.run();
