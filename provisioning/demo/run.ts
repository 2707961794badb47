// `npm run demo`: the whole story on one machine, narrated. A town with a library and a shopping
// street; one hub; two edges, each on its own vpcd reader slot; a few virtual My Number Cards.
//
// Everything is real: the hub (HTTP, SQLite, aedes over TLS, device API over mutual TLS), the edge
// agents (pcsclite -> pcscd -> vpcd -> virtual card), JPKI-like certificates and CRLs. It exits 0 when
// every step worked and 1 otherwise. Needs pcscd with vsmartcard-vpcd running (see README).
//
//   npm run demo [-- --quiet]
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHubConfig } from '../../hub/config.ts';
import { createHub, type Hub } from '../../hub/main.ts';
import { loadEdgeConfig } from '../../edge/config.ts';
import { createEdgeAgent, type EdgeAgent } from '../../edge/main.ts';
import { ReaderManager, readAuthCert, signChallenge, silentReaderLog } from '../../edge/reader/index.ts';
import { createLogger, silentLogger } from '../../shared/log.ts';
import { formatMyKeyId } from '../../shared/ids.ts';
import { toPem } from '../test-ca/ca.ts';
import { initCaDir, type CaDir } from '../test-ca/store.ts';
import { makeCardFile, type CardFile } from '../virtual-card/card-file.ts';
import { VirtualCard } from '../virtual-card/card.ts';
import { VpcdSlot } from '../virtual-card/vpcd-slot.ts';
import { writeMyKey, parseWriteKey } from '../card-writer/write-mykey.ts';
import { createCsr, generateDeviceKey } from '../enroll/device-key.ts';
import { redeemToken } from '../enroll/hub-client.ts';

const quiet = process.argv.includes('--quiet');
const READERS = ['Virtual PCD 00 00', 'Virtual PCD 00 01'] as const;
const ADMIN = 'demo-admin-token';

// ---------------------------------------------------------------------------------------------
// Narration

const results: { title: string; ok: boolean; note: string }[] = [];
const say = (line: string) => process.stdout.write(`${line}\n`);
const detail = (line: string) => {
  if (!quiet) say(`     ${line}`);
};

async function step(title: string, fn: () => Promise<string>): Promise<void> {
  say(`\n▶ ${results.length + 1}. ${title}`);
  const t0 = performance.now();
  try {
    const note = await fn();
    const ms = Math.round(performance.now() - t0);
    results.push({ title, ok: true, note });
    say(`  ✓ ${note} (${ms} ms)`);
  } catch (e) {
    results.push({ title, ok: false, note: (e as Error).message });
    say(`  ✗ ${(e as Error).message}`);
    throw e;
  }
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---------------------------------------------------------------------------------------------
// The town's business systems: they receive hand-offs from their edges and notices from the hub.

interface BusinessSystem {
  name: string;
  server: Server;
  url: string;
  handoffs: { outcome: string; serviceUserId?: string }[];
  notices: { type: string; serviceUserId: string; reason?: string }[];
}

async function businessSystem(name: string): Promise<BusinessSystem> {
  const sys: BusinessSystem = { name, server: createServer(), url: '', handoffs: [], notices: [] };
  sys.server.on('request', (req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const json = JSON.parse(body || '{}');
      if (req.url === '/touch') sys.handoffs.push(json);
      else sys.notices.push(json);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => sys.server.listen(0, '127.0.0.1', r));
  sys.url = `http://127.0.0.1:${(sys.server.address() as AddressInfo).port}`;
  return sys;
}

// ---------------------------------------------------------------------------------------------

interface Resident {
  name: string;
  file: CardFile;
  card: VirtualCard;
  mykeyId?: string;
  serial: string;
}

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-demo-'));
  const slots = [new VpcdSlot({ slot: 0, log: () => {} }), new VpcdSlot({ slot: 1, log: () => {} })];
  const agents: EdgeAgent[] = [];
  const systems: BusinessSystem[] = [];
  let hub: Hub | undefined;
  let jpki: CaDir;
  const residents: Record<string, Resident> = {};
  const edgeOf: Record<string, EdgeAgent> = {};

  const http = async (method: string, path: string, body?: unknown, token?: string) => {
    const res = await fetch(new URL(path, hub!.addresses.http), {
      method,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };

  /** Puts a card on a reader, lets the edge read it, takes it away; returns the hand-off, if any. */
  const touch = async (agent: EdgeAgent, slot: number, who: Resident, sys: BusinessSystem) => {
    const before = sys.handoffs.length;
    const touches = agent.lookup.counters().touches;
    await slots[slot].insert(who.card);
    await waitFor('the touch to be read', () => agent.lookup.counters().touches > touches);
    await new Promise((r) => setTimeout(r, 150));
    const gone = new Promise<void>((r) => {
      const off = agent.manager.on('card-removed', (e) => {
        if (e.reader === READERS[slot]) {
          off();
          r();
        }
      });
    });
    await slots[slot].remove();
    await gone;
    return sys.handoffs.slice(before).at(-1);
  };

  try {
    say('MyKey Platform demo: a town with a library and a shopping street');
    say('-----------------------------------------------------------------');

    await step('The town starts its hub (SQLite, JPKI checks, MQTT over TLS, device API)', async () => {
      jpki = await initCaDir(join(dir, 'jpki'), { label: 'town-test-jpki' });
      writeFileSync(join(dir, 'jpki.pem'), toPem(jpki.ca.certDer, 'CERTIFICATE'));
      const config = loadHubConfig({
        env: {},
        overrides: {
          dataDir: join(dir, 'hub'),
          http: { port: 0 },
          broker: { port: 0 },
          devices: { httpsPort: 0 },
          admin: { token: ADMIN },
          jpki: { trustAnchors: [join(dir, 'jpki.pem')] },
          webhooks: { baseDelayMs: 100, allowPrivateTargets: true }, // the demo's business systems listen on loopback
        },
      });
      hub = await createHub(config, { log: quiet ? silentLogger : createLogger('hub', { level: 'warn' }) });
      await hub.start();
      await hub.crlManager.apply(await jpki.publishCrl(), 'J-LIS (test)');
      detail(`hub ${hub.addresses.http}, broker ${hub.addresses.mqtts}, device API ${hub.addresses.deviceApi}`);
      return 'hub up, with a test JPKI trust anchor and its first CRL';
    });

    await step('The library and the shopping street join, with their business systems', async () => {
      for (const [id, name] of [
        ['library', 'Town library'],
        ['shotengai', 'Ekimae shopping street points'],
      ] as const) {
        const sys = await businessSystem(name);
        systems.push(sys);
        const r = await http('POST', '/v1/admin/services', { id, name, webhookUrl: `${sys.url}/notices` }, ADMIN);
        if (r.status !== 201) throw new Error(`create ${id}: ${JSON.stringify(r.body)}`);
        detail(`${name}: service "${id}", notices (失効連絡) to ${sys.url}/notices`);
      }
      return '2 services';
    });

    await step("Hanako and Taro create MyKey IDs at home with their cards and PINs; the town hall writes Taro's onto his card", async () => {
      const file = await makeCardFile({ ca: jpki.ca, withMyKeyApp: false, pin: '1234' });
      residents.hanako = { name: 'Hanako', file, card: new VirtualCard(file), serial: '' };
      const taroFile = await makeCardFile({ ca: jpki.ca, withMyKeyApp: true, mykeyId: null, pin: '5678' });
      residents.taro = { name: 'Taro', file: taroFile, card: new VirtualCard(taroFile), serial: '' };
      const manager = new ReaderManager({ log: silentReaderLog });
      manager.start();
      try {
        for (const [who, pin] of [
          ['hanako', '1234'],
          ['taro', '5678'],
        ] as const) {
          const r = residents[who];
          await slots[0].insert(r.card);
          await waitFor('the card', () => manager.isCardPresent(READERS[0]));
          const session = await manager.connect(READERS[0]);
          try {
            const cert = await readAuthCert(session);
            const ch = await http('POST', '/v1/challenges', { purpose: 'register' });
            const sig = await signChallenge(session, pin, new Uint8Array(Buffer.from(ch.body.challenge, 'base64url')));
            const reg = await http('POST', '/v1/mykey-ids', {
              proof: { challenge: ch.body.challenge, certificate: Buffer.from(cert).toString('base64'), signature: Buffer.from(sig).toString('base64') },
            });
            if (reg.status !== 201) throw new Error(`registration: ${JSON.stringify(reg.body)}`);
            r.mykeyId = reg.body.mykeyId;
            detail(`${r.name}: MyKey ID ${formatMyKeyId(r.mykeyId!)} (PIN verified on the card, signature checked by the hub)`);
          } finally {
            await session.close();
          }
          await slots[0].remove();
          await waitFor('the card to go', () => !manager.isCardPresent(READERS[0]));
        }
        // The municipal counter writes Taro's MyKey ID into his card's MyKey area, as he asked.
        await slots[1].insert(residents.taro.card);
        await waitFor('the card', () => manager.isCardPresent(READERS[1]));
        const session = await manager.connect(READERS[1], { writer: true });
        try {
          const w = await writeMyKey(session, { mykeyId: residents.taro.mykeyId!, writeKey: parseWriteKey(residents.taro.file.mykey!.writeKey) });
          detail(`municipal counter: ${w.outcome} ${formatMyKeyId(w.mykeyId)} into Taro's card (read back)`);
        } finally {
          await session.close();
        }
        await slots[1].remove();
        await waitFor('the card to go', () => !manager.isCardPresent(READERS[1]));
      } finally {
        await manager.stop();
      }
      return `Hanako ${formatMyKeyId(residents.hanako.mykeyId!)}, Taro ${formatMyKeyId(residents.taro.mykeyId!)} (also written on his card)`;
    });

    await step('A technician enrolls a reader at each counter; both come online', async () => {
      const plan = [
        { edgeId: 'library-counter-1', serviceId: 'library', slot: 0, sys: systems[0] },
        { edgeId: 'shotengai-shop-7', serviceId: 'shotengai', slot: 1, sys: systems[1] },
      ];
      for (const p of plan) {
        const key = await generateDeviceKey();
        const csrPem = await createCsr(p.edgeId, key.keyPair);
        const token = await hub!.enrollmentTokens.issue({ serviceId: p.serviceId, edgeId: p.edgeId, by: 'demo' });
        // As the enrollment tool does it: over TLS to the device API, pinned to the device CA
        // fingerprint the console shows beside the token (a refusal throws with its code).
        const r = { body: await redeemToken(hub!.addresses.deviceApi!, { token: token.token, edgeId: p.edgeId, csrPem }, { caFingerprint: hub!.deviceCaFingerprint! }) };
        const edir = join(dir, p.edgeId);
        const cfgFiles = { cert: join(dir, `${p.edgeId}.pem`), key: join(dir, `${p.edgeId}.key`), ca: join(dir, `${p.edgeId}-ca.pem`) };
        writeFileSync(cfgFiles.cert, r.body.certPem);
        writeFileSync(cfgFiles.key, key.keyPem, { mode: 0o600 });
        writeFileSync(cfgFiles.ca, r.body.caPem);
        const config = loadEdgeConfig({
          env: {},
          overrides: {
            edgeId: p.edgeId,
            serviceId: p.serviceId,
            hub: { url: r.body.hubUrl },
            broker: { url: r.body.brokerUrl },
            tls: cfgFiles,
            stateDir: edir,
            readers: { include: [READERS[p.slot]] },
            handoff: { targets: [{ type: 'webhook', url: `${p.sys.url}/touch`, outcomes: ['linked', 'not_linked', 'refused', 'degraded'] }] },
            kiosk: { port: 0 },
            registration: { enabled: true },
            logLevel: 'error',
          },
        });
        const agent = createEdgeAgent(config, { log: silentLogger });
        await agent.start();
        agents.push(agent);
        edgeOf[p.serviceId] = agent;
        detail(`${p.edgeId} (${p.serviceId}) on reader "${READERS[p.slot]}", kiosk page ${agent.kiosk?.url ?? '-'}`);
      }
      await waitFor('both edges online at the hub', async () => agents.every((a) => a.cache.synced) && (await hub!.devices.list()).filter((d) => d.online).length === 2, 20_000);
      return 'library-counter-1 and shotengai-shop-7 online, snapshots applied';
    });

    await step('At the library counter, Hanako links her library card by touching her My Number Card', async () => {
      const agent = edgeOf.library;
      const flow = agent.registration!;
      flow.start();
      await slots[0].insert(residents.hanako.card);
      await waitFor('the card at the counter', () => flow.view().step === 'service_user_id');
      flow.serviceUserId('L-0001');
      // The library (like every service by default) wants the holder's consent: Hanako enters her PIN,
      // and her card signs a challenge the hub bound to this reader and this library card number.
      await waitFor('the PIN step', () => ['pin', 'done', 'failed'].includes(flow.view().step));
      if (flow.view().step === 'pin') flow.pin('1234');
      await waitFor('the hub to confirm the link', () => ['done', 'failed'].includes(flow.view().step));
      const v = flow.view();
      await slots[0].remove();
      if (v.step !== 'done') throw new Error(`registration ${JSON.stringify(v)}`);
      flow.cancel();
      // The shopping street links Taro's and Hanako's point cards from its own system (server to server).
      const cred = await http('POST', '/v1/admin/services/shotengai/credentials', { label: 'points system' }, ADMIN);
      for (const [who, card] of [
        ['taro', 'P-123'],
        ['hanako', 'P-456'],
      ] as const) {
        const l = await http('POST', '/v1/services/shotengai/links', { mykeyId: residents[who].mykeyId, serviceUserId: card }, cred.body.token);
        if (l.status !== 201) throw new Error(`link ${card}: ${JSON.stringify(l.body)}`);
      }
      await waitFor('the edges to apply the links', () => edgeOf.library.cache.appliedSeq >= 1 && edgeOf.shotengai.cache.appliedSeq >= 2);
      return 'library card L-0001 linked at the counter; point cards P-123 (Taro) and P-456 (Hanako) linked by the shop system';
    });

    await step('Touch and go: the business systems receive the card numbers, no PIN, no network on the path', async () => {
      const lib = await touch(edgeOf.library, 0, residents.hanako, systems[0]);
      if (lib?.outcome !== 'linked' || lib.serviceUserId !== 'L-0001') throw new Error(`library got ${JSON.stringify(lib)}`);
      detail(`Hanako at the library -> ${systems[0].name} received ${lib.serviceUserId} (certificate mode)`);
      const shop = await touch(edgeOf.shotengai, 1, residents.taro, systems[1]);
      if (shop?.outcome !== 'linked' || shop.serviceUserId !== 'P-123') throw new Error(`shop got ${JSON.stringify(shop)}`);
      detail(`Taro at the shop -> ${systems[1].name} received ${shop.serviceUserId} (MyKey ID read from his card)`);
      return 'L-0001 and P-123 handed over';
    });

    await step("Hanako's card is reported lost: the CRL revokes it and both edges purge her at once", async () => {
      const serial = new Uint8Array(Buffer.from(residents.hanako.file.jpki.authCert, 'base64'));
      const { X509Certificate } = await import('node:crypto');
      const serialHex = new X509Certificate(serial).serialNumber.toLowerCase();
      await jpki.revoke(serialHex, 'keyCompromise');
      const seqBefore = { lib: edgeOf.library.cache.appliedSeq, shop: edgeOf.shotengai.cache.appliedSeq };
      const t0 = performance.now();
      const run = await hub!.crlManager.apply(await jpki.publishCrl(), 'J-LIS (test)');
      if (run.newlySuspended !== 1) throw new Error(`the CRL run suspended ${run.newlySuspended}`);
      await waitFor('both edges to purge', () => edgeOf.library.cache.appliedSeq > seqBefore.lib && edgeOf.shotengai.cache.appliedSeq > seqBefore.shop, 10_000);
      const fanoutMs = Math.round(performance.now() - t0);
      await waitFor('the notices (失効連絡)', () => systems.every((s) => s.notices.some((n) => n.type === 'link.suspended')), 10_000);
      for (const s of systems) {
        const n = s.notices.find((x) => x.type === 'link.suspended')!;
        detail(`${s.name} notified: ${n.serviceUserId} suspended (${n.reason})`);
      }
      return `suspended (keyCompromise); both edges purged ${fanoutMs} ms after the CRL was applied`;
    });

    await step("Hanako's next touch is refused: nothing is handed over", async () => {
      const lib = await touch(edgeOf.library, 0, residents.hanako, systems[0]);
      if (lib?.outcome === 'linked') throw new Error('the library still got a card number');
      detail(`the library edge answered "${lib?.outcome ?? 'nothing'}"`);
      return 'no service ID handed over after the revocation';
    });

    await step('The shop reader goes offline; links change; it catches up when it returns', async () => {
      const shop = edgeOf.shotengai;
      await shop.stop();
      detail('shotengai-shop-7 is offline (Wi-Fi down)');
      const cred = await http('POST', '/v1/admin/services/shotengai/credentials', { label: 'points system 2' }, ADMIN);
      const l = await http('POST', '/v1/services/shotengai/links', { mykeyId: residents.taro.mykeyId, serviceUserId: 'P-124' }, cred.body.token);
      if (l.status !== 201) throw new Error(`relink: ${JSON.stringify(l.body)}`);
      detail('meanwhile Taro replaced his point card: P-123 -> P-124');
      const config = shop.config;
      const again = createEdgeAgent(config, { log: silentLogger });
      await again.start();
      agents[agents.indexOf(shop)] = again;
      edgeOf.shotengai = again;
      const head = await hub!.links.headSeq('shotengai');
      await waitFor('the shop edge to catch up', () => again.cache.appliedSeq >= head, 20_000);
      const got = await touch(again, 1, residents.taro, systems[1]);
      if (got?.serviceUserId !== 'P-124') throw new Error(`the shop got ${JSON.stringify(got)}`);
      return `caught up to sequence ${head}; Taro's touch gives P-124`;
    });

    say('\nSummary');
    say('-------');
    for (const [i, r] of results.entries()) say(`  ${r.ok ? '✓' : '✗'} ${i + 1}. ${r.title}`);
    say(`\nAll ${results.length} steps worked. Nothing in the hub or the edges records who touched which reader when.`);
    return 0;
  } catch (e) {
    say('\nSummary');
    say('-------');
    for (const [i, r] of results.entries()) say(`  ${r.ok ? '✓' : '✗'} ${i + 1}. ${r.title}${r.ok ? '' : `: ${r.note}`}`);
    say(`\nThe demo stopped at a failed step.${(e as Error).stack && !quiet ? `\n${(e as Error).stack}` : ''}`);
    return 1;
  } finally {
    // For test/privacy-logs.serial.test.ts: every identifier the story used, to search the logs for.
    if (process.env.MYKEY_DEMO_IDENTIFIERS)
      writeFileSync(process.env.MYKEY_DEMO_IDENTIFIERS, JSON.stringify(Object.values(residents).map((r) => ({ mykeyId: r.mykeyId, cert: r.file.jpki.authCert }))));
    for (const s of slots) await s.remove().catch(() => {});
    for (const a of agents) await a.stop().catch(() => {});
    await hub?.stop().catch(() => {});
    for (const s of systems) {
      s.server.closeAllConnections();
      s.server.close();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
