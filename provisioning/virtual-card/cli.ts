// The virtual My Number Card from the command line.
//
//   tsx provisioning/virtual-card/cli.ts make --ca <test-ca dir> --out card.json [--pin 1234] [--mykey ABCDEFGH]
//   tsx provisioning/virtual-card/cli.ts make --cert auth.pem --key auth-key.pem --ca-cert ca.pem --out card.json
//   tsx provisioning/virtual-card/cli.ts insert card.json [--slot 0|1]     (Ctrl-C takes the card out)
//   tsx provisioning/virtual-card/cli.ts show card.json
//
// `insert` keeps the card file in step with the card: a PIN blocked through the reader stays blocked,
// and a MyKey ID written at a counter terminal is there next time.
import { existsSync, readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { MyKeyError } from '../../shared/errors.ts';
import { formatMyKeyId, normalizeMyKeyId } from '../../shared/ids.ts';
import { exportPkcs8, fromPem, type IssuedCert, type TestCa } from '../test-ca/ca.ts';
import { buildCardFile, cardFilePersister, loadCardFile, mykeyIdOf, saveCardFile, type CardFile } from './card-file.ts';
import { VirtualCard } from './card.ts';
import { VpcdSlot } from './vpcd-slot.ts';

const USAGE = `usage:
  cli.ts make --ca <test-ca dir> --out <card.json> [options]
  cli.ts make --cert <auth cert PEM> --key <its PKCS#8 key PEM> --ca-cert <CA cert PEM> --out <card.json> [options]
      --pin <4 digits>            user-authentication PIN (default 1234)
      --sign-pin <6-16 A-Z0-9>    signing PIN (default ABC123)
      --mykey <MyKey ID>          write this MyKey ID into the card's MyKey area
      --mykey-reserved            reserve the MyKey area but leave it empty
      --no-mykey-app              a card without the MyKey application
      --label <text>              label of the card file
      --write-key <64 hex>        the municipal counter's write key (random by default)
  cli.ts insert <card.json> [--slot 0|1]
  cli.ts show <card.json>`;

/** The part of provisioning/test-ca/store.ts this CLI uses. */
interface CaDirLike {
  ca: TestCa;
  issue(opts?: { profile?: 'auth' | 'sign' }): Promise<IssuedCert>;
}

async function openCaDirIfAvailable(dir: string): Promise<CaDirLike> {
  // Loaded on demand so the PEM-trio path never loads the test CA; a literal path so the build
  // (scripts/build.ts) bundles it.
  let mod: { openCaDir?: (dir: string) => Promise<CaDirLike> };
  try {
    mod = (await import('../test-ca/store.ts')) as typeof mod;
  } catch (cause) {
    throw new MyKeyError('unavailable', 'provisioning/test-ca/store.ts is not available: use --cert/--key/--ca-cert', { cause });
  }
  if (typeof mod.openCaDir !== 'function') throw new MyKeyError('unavailable', 'test-ca store has no openCaDir');
  return mod.openCaDir(dir);
}

function readPem(path: string, what: string): Uint8Array {
  if (!existsSync(path)) throw new MyKeyError('not_found', `${what} ${path} does not exist`);
  try {
    return fromPem(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new MyKeyError('validation_failed', `${what} ${path} is not PEM`, { cause });
  }
}

async function make(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      'ca-cert': { type: 'string' },
      out: { type: 'string' },
      pin: { type: 'string' },
      'sign-pin': { type: 'string' },
      mykey: { type: 'string' },
      'mykey-reserved': { type: 'boolean' },
      'no-mykey-app': { type: 'boolean' },
      label: { type: 'string' },
      'write-key': { type: 'string' },
    },
    strict: true,
  });
  if (!values.out) throw new MyKeyError('bad_request', `--out is required\n${USAGE}`);
  let mykeyId: string | null = null;
  if (values.mykey !== undefined) {
    const id = normalizeMyKeyId(values.mykey);
    if (!id) throw new MyKeyError('mykey_id_malformed', `--mykey: not a MyKey ID (8 of ${'23456789ABCDEFGHJKMNPQRSTUVWXYZ'})`);
    mykeyId = id;
  } else if (values['mykey-reserved']) mykeyId = '';

  let parts: Pick<Parameters<typeof buildCardFile>[0], 'authCertDer' | 'authCaCertDer' | 'signCertDer' | 'signCaCertDer' | 'authKeyPkcs8' | 'signKeyPkcs8'>;
  if (values.ca) {
    const caDir = await openCaDirIfAvailable(resolve(values.ca));
    const auth = await caDir.issue({ profile: 'auth' });
    const sign = await caDir.issue({ profile: 'sign' });
    parts = {
      authCertDer: auth.certDer,
      authCaCertDer: caDir.ca.certDer,
      signCertDer: sign.certDer,
      signCaCertDer: caDir.ca.certDer,
      authKeyPkcs8: await exportPkcs8(auth.keyPair.privateKey),
      signKeyPkcs8: await exportPkcs8(sign.keyPair.privateKey),
    };
  } else if (values.cert && values.key && values['ca-cert']) {
    const certDer = readPem(values.cert, 'certificate');
    const caDer = readPem(values['ca-cert'], 'CA certificate');
    const keyDer = readPem(values.key, 'private key');
    const cert = new X509Certificate(Buffer.from(certDer));
    const key = createPrivateKey({ key: Buffer.from(keyDer), format: 'der', type: 'pkcs8' });
    if (!cert.checkPrivateKey(key)) throw new MyKeyError('validation_failed', 'the private key does not belong to the certificate');
    // Without a CA directory there is no separate signing certificate: the same pair stands in for it.
    parts = { authCertDer: certDer, authCaCertDer: caDer, signCertDer: certDer, signCaCertDer: caDer, authKeyPkcs8: keyDer, signKeyPkcs8: keyDer };
  } else {
    throw new MyKeyError('bad_request', `give --ca <dir>, or --cert, --key and --ca-cert\n${USAGE}`);
  }
  const card = buildCardFile({
    ...parts,
    label: values.label,
    pin: values.pin,
    signPin: values['sign-pin'],
    mykeyId,
    withMyKeyApp: !values['no-mykey-app'],
    writeKeyHex: values['write-key']?.toLowerCase(),
  });
  await saveCardFile(values.out, card);
  console.log(`wrote ${values.out}: ${describe(card)}`);
}

function describe(card: CardFile): string {
  const cert = new X509Certificate(Buffer.from(card.jpki.authCert, 'base64'));
  const id = mykeyIdOf(card);
  const area = !card.mykey.present
    ? 'no MyKey application'
    : !card.mykey.idArea.reserved
      ? 'MyKey area not reserved'
      : id
        ? `MyKey ID ${formatMyKeyId(id).slice(0, 5)}****`
        : 'MyKey area reserved, empty';
  return [
    `"${card.label}"`,
    `auth cert serial ${cert.serialNumber.toLowerCase()} valid to ${new Date(cert.validTo).toISOString().slice(0, 10)}`,
    `auth PIN ${card.jpki.authPin.triesLeft}/${card.jpki.authPin.maxTries} tries`,
    `signing PIN ${card.jpki.signPin.triesLeft}/${card.jpki.signPin.maxTries} tries`,
    area,
  ].join(', ');
}

async function insert(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, options: { slot: { type: 'string', default: '0' } }, allowPositionals: true, strict: true });
  const path = positionals[0];
  if (!path) throw new MyKeyError('bad_request', `which card file?\n${USAGE}`);
  if (values.slot !== '0' && values.slot !== '1') throw new MyKeyError('bad_request', '--slot is 0 or 1');
  const slotNo = Number(values.slot) as 0 | 1;
  const file = await loadCardFile(path);
  const persist = cardFilePersister(path, (err) => console.error(`could not save ${path}: ${(err as Error).message}`));
  const card = new VirtualCard(file, { onChange: persist.onChange });
  let done!: (code: number) => void;
  const finished = new Promise<number>((r) => (done = r));
  const slot = new VpcdSlot({
    slot: slotNo,
    log: (level, msg) => console[level === 'warn' ? 'warn' : 'log'](msg),
    onRemoved: (why) => {
      console.error(`the card left the reader (${why})`);
      done(1);
    },
  });
  await slot.insert(card);
  console.log(`inserted ${describe(file)} into slot ${slotNo} (reader "Virtual PCD 00 0${slotNo}"); Ctrl-C takes it out`);
  const stop = () => done(0);
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const code = await finished;
  await slot.remove();
  await persist.flush();
  console.log(`removed after ${slot.stats.apdus} APDUs`);
  process.exit(code);
}

async function show(args: string[]): Promise<void> {
  const path = args[0];
  if (!path) throw new MyKeyError('bad_request', `which card file?\n${USAGE}`);
  console.log(describe(await loadCardFile(path)));
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (cmd === 'make') return make(rest);
  if (cmd === 'insert') return insert(rest);
  if (cmd === 'show') return show(rest);
  console.error(USAGE);
  process.exit(cmd === undefined || cmd === '--help' || cmd === '-h' ? 0 : 2);
}

main(process.argv.slice(2)).catch((err) => {
  if (err instanceof MyKeyError) console.error(`error [${err.code}]: ${err.message}`);
  else console.error(`error: ${(err as Error).message ?? String(err)}`);
  process.exit(1);
});
