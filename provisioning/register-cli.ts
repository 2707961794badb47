// The holder's side of the MyKey ID lifecycle from a terminal, for development and demos: what the
// home PC web app does with a card, done with a test certificate and key file (or, with --ca-dir, a
// new test "card" issued by the development test CA).
//
//   tsx provisioning/register-cli.ts register   --hub URL (--ca-dir DIR [--out NAME] | --cert F --key F | --reader [NAME])
//   tsx provisioning/register-cli.ts status     --hub URL --cert F --key F
//   tsx provisioning/register-cli.ts change-id  --hub URL --cert F --key F --mykey-id NEWID
//   tsx provisioning/register-cli.ts invalidate --hub URL --cert F --key F
//   tsx provisioning/register-cli.ts carry-over --hub URL --cert NEW --key NEW --previous-cert OLD --previous-key OLD
//
// With --reader the user-authentication PIN is asked for (echo off), or read from standard input
// (`echo 1234 | ... --reader any`); never from the command line. For the holder at home there is
// edge/holder (a page in the browser).
import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync, chmodSync } from 'node:fs';
import type { ChallengeRequest } from '../shared/messages.ts';
import { exportPkcs8, fromPem, toPem } from './test-ca/ca.ts';
import { openCaDir } from './test-ca/store.ts';
import { readSecretLine, refuseSecretArgument } from './secret-input.ts';

const USAGE = `usage:
  register   --hub URL (--ca-dir DIR [--out NAME] | --cert F --key F | --reader NAME|any)
             (with --reader the PIN is asked for, or read from standard input)
  status     --hub URL --cert F --key F
  change-id  --hub URL --cert F --key F --mykey-id NEWID
  invalidate --hub URL --cert F --key F
  carry-over --hub URL --cert NEW --key NEW --previous-cert OLD --previous-key OLD`;

/** What signs a challenge: a key file, or a real (or virtual) card through the edge's reader layer. */
interface Card {
  certDer: Uint8Array;
  sign(challenge: Uint8Array): Promise<Uint8Array>;
  close?(): Promise<void>;
}

function fileCard(certDer: Uint8Array, key: KeyObject): Card {
  return { certDer, sign: async (ch) => sign('sha256', ch, key) };
}

/** Waits for a card on a reader and reads its user-authentication certificate; signs with the PIN. */
async function readerCard(readerName: string): Promise<Card> {
  const { ReaderManager, readAuthCert, signChallenge, silentReaderLog } = await import('../edge/reader/index.ts');
  const manager = new ReaderManager({ log: silentReaderLog });
  manager.start();
  const reader = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no card was touched within 60 s')), 60_000);
    const found = (r: string) => {
      if (readerName !== 'any' && r !== readerName) return;
      clearTimeout(timer);
      resolve(r);
    };
    for (const r of manager.readers()) if (manager.isCardPresent(r)) found(r);
    manager.on('card-present', ({ reader: r }) => found(r));
    console.error(`touch the card on ${readerName === 'any' ? 'any reader' : readerName} ...`);
  });
  const session = await manager.connect(reader);
  const certDer = await readAuthCert(session);
  const thePin = await readSecretLine('user-authentication PIN (4 digits): ');
  return {
    certDer,
    sign: (ch) => signChallenge(session, thePin, ch),
    async close() {
      await session.close();
      await manager.stop();
    },
  };
}

function fail(msg: string): never {
  console.error(msg);
  process.exit(1);
}

function loadCard(certPath?: string, keyPath?: string): Card {
  if (!certPath || !keyPath) fail(`--cert and --key are required\n${USAGE}`);
  try {
    return fileCard(fromPem(readFileSync(certPath, 'utf8')), createPrivateKey(readFileSync(keyPath, 'utf8')));
  } catch (e) {
    fail(`cannot read the certificate or key: ${(e as Error).message}`);
  }
}

/** What this tool reads of the hub's answers: problem JSON, a challenge, or a MyKey ID's record. */
interface HubBody {
  code?: string;
  detail?: string;
  title?: string;
  challenge: string;
  mykeyId: string;
  status: string;
  statusReason?: string;
  created?: boolean;
  certificates?: { serial: string; state: string; boundAt: string; revoked?: { reason: string } }[];
}

async function call(hub: string, path: string, body: unknown): Promise<{ status: number; body: HubBody }> {
  let res: Response;
  try {
    res = await fetch(new URL(path, hub), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  } catch (e) {
    fail(`the hub at ${hub} cannot be reached: ${(e as Error).message}`);
  }
  return { status: res.status, body: (await res.json().catch(() => ({}))) as HubBody };
}

/**
 * Asks the hub for a challenge for one operation (and its parameters; the hub accepts the proof for
 * exactly that) and signs it as the card's SIGN would.
 */
async function proof(hub: string, card: Card, binding: ChallengeRequest) {
  const ch = await call(hub, '/v1/challenges', binding);
  if (ch.status !== 201) fail(`challenge refused: ${ch.body.code ?? ch.status} ${ch.body.detail ?? ''}`);
  const signature = await card.sign(new Uint8Array(Buffer.from(ch.body.challenge, 'base64url')));
  return { challenge: ch.body.challenge, certificate: Buffer.from(card.certDer).toString('base64'), signature: Buffer.from(signature).toString('base64') };
}

function show(r: { status: number; body: HubBody }) {
  if (r.status >= 400) fail(`refused: ${r.body.code} (${r.status}) ${r.body.detail ?? r.body.title ?? ''}`);
  const b = r.body;
  console.log(
    `MyKey ID: ${b.mykeyId.slice(0, 4)}-${b.mykeyId.slice(4)}  status: ${b.status}${b.statusReason ? ` (${b.statusReason})` : ''}${b.created !== undefined ? (b.created ? '  (created)' : '  (already registered)') : ''}`,
  );
  for (const c of b.certificates ?? []) console.log(`  certificate ${c.serial}  ${c.state}  bound ${c.boundAt}${c.revoked ? `  revoked: ${c.revoked.reason}` : ''}`);
}

async function main() {
  const [cmd, ...rest] = process.argv.slice(2);
  const refused = refuseSecretArgument(rest, ['--pin']);
  if (refused) fail(refused);
  const opt: Record<string, string> = {};
  for (let i = 0; i < rest.length; i++) {
    if (!rest[i].startsWith('--') || i + 1 >= rest.length) fail(`unexpected argument ${rest[i]}\n${USAGE}`);
    opt[rest[i].slice(2)] = rest[++i];
  }
  const hub = opt.hub ?? 'http://127.0.0.1:8080';
  switch (cmd) {
    case 'register': {
      let card: Card;
      if (opt.reader) {
        card = await readerCard(opt.reader);
        try {
          return show(await call(hub, '/v1/mykey-ids', { proof: await proof(hub, card, { purpose: 'register' }) }));
        } finally {
          await card.close?.();
        }
      } else if (opt['ca-dir']) {
        const ca = await openCaDir(opt['ca-dir']);
        const issued = await ca.issue();
        const name = opt.out ?? 'holder';
        writeFileSync(`${name}.cert.pem`, toPem(issued.certDer, 'CERTIFICATE'));
        writeFileSync(`${name}.key.pem`, toPem(await exportPkcs8(issued.keyPair.privateKey), 'PRIVATE KEY'), { mode: 0o600 });
        chmodSync(`${name}.key.pem`, 0o600);
        console.log(`issued a test user-authentication certificate ${issued.serialHex}: ${name}.cert.pem, ${name}.key.pem`);
        card = loadCard(`${name}.cert.pem`, `${name}.key.pem`);
      } else card = loadCard(opt.cert, opt.key);
      return show(await call(hub, '/v1/mykey-ids', { proof: await proof(hub, card, { purpose: 'register' }) }));
    }
    case 'status':
      return show(await call(hub, '/v1/holder/status', { proof: await proof(hub, loadCard(opt.cert, opt.key), { purpose: 'status' }) }));
    case 'change-id':
      if (!opt['mykey-id']) fail(`--mykey-id is required\n${USAGE}`);
      return show(await call(hub, '/v1/holder/mykey-id', { proof: await proof(hub, loadCard(opt.cert, opt.key), { purpose: 'change_id', mykeyId: opt['mykey-id'] }), mykeyId: opt['mykey-id'] }));
    case 'invalidate':
      return show(await call(hub, '/v1/holder/invalidate', { proof: await proof(hub, loadCard(opt.cert, opt.key), { purpose: 'invalidate' }) }));
    case 'carry-over': {
      const next = loadCard(opt.cert, opt.key);
      const prev = loadCard(opt['previous-cert'], opt['previous-key']);
      return show(
        await call(hub, '/v1/holder/carry-over', {
          proof: await proof(hub, next, { purpose: 'carry_over', role: 'new' }),
          previous: { proof: await proof(hub, prev, { purpose: 'carry_over', role: 'previous' }) },
        }),
      );
    }
    default:
      fail(USAGE);
  }
}

main().then(
  () => process.exit(0),
  (e) => fail(e?.code ? `${e.code}: ${e.message}` : String(e?.stack ?? e)),
);
