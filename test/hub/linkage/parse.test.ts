// The linkage file reader on its own (hub/linkage/parse.ts): what is refused whole and what line by
// line, as a table; the route and the importer are tested through the real stack in linkage.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseLinkageFile } from '../../../hub/linkage/parse.ts';
import { generateLinkageSigner, signLinkageBytes } from '../../../provisioning/test-ca/linkage-writer.ts';

const ed = generateLinkageSigner('ed25519');
const ec = generateLinkageSigner('p256');
const { createPublicKey } = await import('node:crypto');
const signers = [
  { label: 'ed', key: createPublicKey(ed.publicKeyPem) },
  { label: 'ec', key: createPublicKey(ec.publicKeyPem) },
];
const HEADER = (n: number, extra = '') => `{"format":"mykey-linkage","version":1,"issuer":"0a1b","created":"2026-11-30T00:00:00Z","records":${n}${extra}}`;
const REC = (old: string, nu: string) => `{"old":"${old}","new":"${nu}","cert":"MIIB"}`;
const read = (text: string | Uint8Array, key = ed.privateKey) => {
  const bytes = typeof text === 'string' ? new Uint8Array(Buffer.from(text, 'utf8')) : text;
  return parseLinkageFile(bytes, signLinkageBytes(bytes, key), { signers, maxBytes: 4096 });
};

test('a file is refused whole when its encoding, header or record count is wrong', () => {
  const cases: [string, string | Uint8Array, string][] = [
    ['no final line feed', HEADER(0), 'linkage_file_malformed'],
    ['a byte order mark', `\ufeff${HEADER(0)}\n`, 'linkage_file_malformed'],
    ['not UTF-8', new Uint8Array([...Buffer.from(HEADER(0)), 0xff, 0x0a]), 'linkage_file_malformed'],
    ['a header that is not JSON', 'mykey-linkage 1\n', 'linkage_file_malformed'],
    ['an unknown header field', `${HEADER(0, ',"x":1')}\n`, 'linkage_file_malformed'],
    ['a date that is no date', '{"format":"mykey-linkage","version":1,"issuer":"0a1b","created":"yesterday!","records":0}\n', 'linkage_file_malformed'],
    ['fewer records than announced', `${HEADER(2)}\n${REC('01', '02')}\n`, 'linkage_file_malformed'],
    ['more records than announced', `${HEADER(0)}\n${REC('01', '02')}\n`, 'linkage_file_malformed'],
    ['larger than the limit', `${HEADER(0)}\n${' '.repeat(5000)}\n`, 'linkage_file_too_large'],
  ];
  for (const [name, text, code] of cases) {
    const r = read(text);
    assert.is(r.ok ? 'ok' : r.code, code, name);
  }
});

test('nothing of an unsigned or wrongly signed file is read', () => {
  const bytes = new Uint8Array(Buffer.from(`${HEADER(0)}\n`));
  const code = (sig: string | undefined, s = signers) => {
    const r = parseLinkageFile(bytes, sig, { signers: s, maxBytes: 4096 });
    return r.ok ? 'ok' : r.code;
  };
  assert.is(code(undefined), 'linkage_signature_missing');
  assert.is(code('  \n'), 'linkage_signature_missing');
  assert.is(code(signLinkageBytes(bytes, ed.privateKey), []), 'linkage_signers_unconfigured');
  assert.is(code(signLinkageBytes(bytes, generateLinkageSigner().privateKey)), 'linkage_signature_invalid');
  assert.is(code(Buffer.alloc(64).toString('base64')), 'linkage_signature_invalid');
  assert.is(code('A'.repeat(600)), 'linkage_signature_invalid');
  // Either configured signer, Ed25519 or ECDSA P-256; the signature file may end with a newline.
  assert.is(code(`${signLinkageBytes(bytes, ed.privateKey)}\n`), 'ok');
  assert.is(code(signLinkageBytes(bytes, ec.privateKey)), 'ok');
});

test('bad lines are refused with their line numbers and codes; good lines pass', () => {
  const lines = [
    REC('01', '02'), // 2
    'not json', // 3
    '{"old":"01"}', // 4: missing fields
    REC('0x1', '02'), // 5: not hex octets
    REC('00ab', 'AB'), // 6: the same serial (leading zero octet, case)
    REC('0001', '03'), // 7: old serial 01 again
    `{"old":"05","new":"06","cert":"MIIB","extra":1}`, // 8
    '', // 9: an empty line
    REC('07', '08'), // 10
  ];
  const r = read(`${HEADER(lines.length)}\n${lines.join('\n')}\n`);
  assert.ok(r.ok);
  if (!r.ok) return;
  const got = r.value.lines.map((l) => (l.ok ? [l.line, 'ok', l.oldSerial, l.newSerial] : [l.line, l.code]));
  assert.equal(got, [
    [2, 'ok', '01', '02'],
    [3, 'linkage_line_malformed'],
    [4, 'linkage_line_malformed'],
    [5, 'linkage_line_malformed'],
    [6, 'linkage_line_malformed'],
    [7, 'linkage_line_duplicate'],
    [8, 'linkage_line_malformed'],
    [9, 'linkage_line_malformed'],
    [10, 'ok', '07', '08'],
  ]);
  assert.is(r.value.signer, 'ed');
  assert.match(r.value.sha256, /^[0-9a-f]{64}$/);
});

test('linkage signers are Ed25519 or ECDSA P-256 public keys or certificates; anything else stops the hub at start', async () => {
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { generateKeyPairSync } = await import('node:crypto');
  const { loadLinkageSigners } = await import('../../../hub/linkage/parse.ts');
  const { MyKeyError } = await import('../../../shared/errors.ts');
  const dir = mkdtempSync(join(tmpdir(), 'mykey-linkage-signers-'));
  try {
    const file = (name: string, text: string) => (writeFileSync(join(dir, name), text), join(dir, name));
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const good = loadLinkageSigners([file('ed.pem', ed.publicKeyPem), file('ec.pem', ec.publicKeyPem)]);
    assert.equal(
      good.map((g) => g.key.asymmetricKeyType),
      ['ed25519', 'ec'],
    );
    for (const [name, paths] of [
      ['an RSA key', [file('rsa.pem', rsa)]],
      ['ECDSA on another curve', [file('p384.pem', p384)]],
      ['not a key', [file('junk.pem', 'hello')]],
      ['a missing file', [join(dir, 'missing.pem')]],
    ] as const) {
      try {
        loadLinkageSigners(paths);
        assert.unreachable(name);
      } catch (e) {
        assert.instance(e, MyKeyError, name);
        assert.is((e as InstanceType<typeof MyKeyError>).code, 'config_invalid', name);
        assert.match((e as Error).message, '/jpki/linkageSigners/0', name);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
