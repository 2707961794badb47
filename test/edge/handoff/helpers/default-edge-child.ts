// A child process for default-targets.test.ts: an edge agent on exactly the config the enrollment
// writes (provisioning/enroll buildEdgeConfig), with its own logger on stderr at the default level and
// stdout untouched, fed touches of linked and unknown cards. The parent reads both streams and the
// state directory afterwards. argv: <state dir>
import { writeFileSync, mkdirSync } from 'node:fs';
import { createEdgeAgent } from '../../../../edge/main.ts';
import { KeyIndex } from '../../../../edge/cache/index.ts';
import { buildEdgeConfig } from '../../../../provisioning/enroll/enroll.ts';
import { stateLayout, type EnrollmentRecord } from '../../../../provisioning/enroll/state-dir.ts';
import { keyedIdentity } from '../../../../shared/sync.ts';

const dir = process.argv[2]!;
const layout = stateLayout(dir);
mkdirSync(layout.tls ?? `${dir}/tls`, { recursive: true });
for (const f of [layout.cert, layout.key, layout.ca]) writeFileSync(f, '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
const record = { edgeId: 'lib-counter-9', serviceId: 'library', deviceApiUrl: 'http://127.0.0.1:9', brokerUrl: 'mqtt://127.0.0.1:9' } as EnrollmentRecord;
const { config } = buildEdgeConfig(layout, record, undefined);
// Answer while out of touch with the (absent) hub, so linked touches really hand a service ID over.
// The touches are fed below; no PC/SC reader is watched (a virtual card another test inserts in the
// machine's vpcd reader would otherwise count as a seventh touch).
const agent = createEdgeAgent({
  ...config,
  readers: { ...config.readers, include: ['no reader in this test'] },
  kiosk: { ...config.kiosk, port: 0 },
  staleness: { ...config.staleness, policy: 'answer-with-warning' },
});
await agent.start();
const secret = new Uint8Array(32).fill(7);
// As if the hub's device config had come: the service's sync secret.
await agent.state.setIdentity({ edgeId: 'lib-counter-9', serviceId: 'library', syncSecret: Buffer.from(secret).toString('base64url') });
const index = new KeyIndex();
index.set(await keyedIdentity(secret, 'mykey', 'B7NQ4KXW'), 'LIB-778899');
agent.cache.replace(index, 1);
for (let i = 0; i < 3; i++) {
  await agent.lookup.touch('ACS ACR1252 PICC 00', { kind: 'mykey', mykeyId: 'B7NQ4KXW' });
  await agent.lookup.touch('ACS ACR1252 PICC 00', { kind: 'mykey', mykeyId: 'Q9RT5HZC' });
}
await agent.stop();
process.stdout.write(`done ${JSON.stringify(agent.lookup.counters())}\n`);
process.exit(0);
