// Fuzzes the CRL engine with mutated real CRLs from the test CA: bit flips, byte changes, truncations,
// length edits, inserted, removed and repeated bytes. Whatever the input, parseCrl, indexCrl, loadCrl
// and the name rule never throw and answer only with their stable codes. The PRNG is seeded; the seed
// is printed, and CRL_FUZZ_SEED=<n> replays a run.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createPrivateKey, sign } from 'node:crypto';
import { createTestCa, exportPkcs8 } from '../../../../provisioning/test-ca/ca.ts';
import { writeCrl, type CrlWriterEntry } from '../../../../provisioning/test-ca/crl-writer.ts';
import { crlIssuerFromCertificate, indexCrl, loadCrl, parseCrl, type LoadCrlCode } from '../../../../hub/pki/crl/index.ts';
import { canonicalName, namesMatch } from '../../../../hub/pki/crl/name.ts';
import { CRL_REASONS, type CrlReason } from '../../../../shared/revocation.ts';

const seed = Number(process.env.CRL_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));
console.log(`CRL fuzz seed: ${seed} (replay with CRL_FUZZ_SEED=${seed})`);

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(s: number): () => number {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
const rnd = prng(seed);
const int = (n: number) => Math.floor(rnd() * n);

const ca = await createTestCa({ label: 'fuzz' });
const issuer = crlIssuerFromCertificate(ca.certDer, 'fuzz');
if (!issuer.ok) throw new Error(issuer.message);
const reasons = Object.keys(CRL_REASONS) as CrlReason[];
const now = new Date();
const entries = (n: number): CrlWriterEntry[] =>
  Array.from({ length: n }, (_, i) => ({
    serial: BigInt(i * 7919 + 1) << BigInt(i % 90),
    revokedAt: new Date(now.getTime() - i * 1000),
    reason: reasons[i % reasons.length],
    ...(i % 5 === 0 ? { extensions: [{ oid: '2.5.29.24', critical: false, value: Uint8Array.of(0x18, 0x0f, ...Buffer.from('20260101000000Z')) }] } : {}),
  }));
const base = {
  issuerNameDer: ca.nameDer,
  signingKey: ca.keyPair.privateKey,
  thisUpdate: new Date(now.getTime() - 3600_000),
  nextUpdate: new Date(now.getTime() + 86400_000),
  authorityKeyId: ca.subjectKeyId,
};
const seeds: Uint8Array[] = [
  await writeCrl({ ...base, crlNumber: 1n, entries: [] }),
  await writeCrl({ ...base, crlNumber: 2n, entries: entries(12) }),
  await writeCrl({
    ...base,
    crlNumber: 3n,
    entries: entries(40),
    issuingDistributionPoint: { distributionPointUri: 'http://127.0.0.1/a.crl', onlyContainsUserCerts: true, onlySomeReasons: [1, 3, 8] },
  }),
  await writeCrl({ ...base, crlNumber: 4n, baseCrlNumber: 3n, entries: entries(5), extensions: [{ oid: '1.2.3.4', critical: true, value: Uint8Array.of(5, 0) }] }),
  await writeCrl({ ...base, crlNumber: 5n, entries: entries(300) }),
];
// PEM too: the base64 path.
seeds.push(new Uint8Array(Buffer.from(`-----BEGIN X509 CRL-----\n${Buffer.from(seeds[1]).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END X509 CRL-----\n`)));

/** One random mutation of `d` (a new array). */
function mutate(d: Uint8Array): Uint8Array {
  const n = d.length;
  const at = int(n);
  switch (int(8)) {
    case 0: {
      // flip one bit
      const o = d.slice();
      o[at] ^= 1 << int(8);
      return o;
    }
    case 1: {
      // set a byte to a random or an edge value
      const o = d.slice();
      o[at] = [0x00, 0x7f, 0x80, 0x81, 0x82, 0x84, 0xff][int(7)] ?? int(256);
      if (rnd() < 0.5) o[at] = int(256);
      return o;
    }
    case 2: // truncate
      return d.slice(0, at);
    case 3: {
      // a length edit: the byte after a plausible tag, off by a little or rewritten as long form
      const o = d.slice();
      const i = Math.min(n - 1, at + 1);
      const r = int(3);
      if (r === 0) o[i] = (o[i] + (rnd() < 0.5 ? 1 : -1)) & 0xff;
      else if (r === 1) o[i] = 0x80 | (1 + int(4));
      else return new Uint8Array([...d.subarray(0, i), 0x84, 0xff, 0xff, 0xff, 0xf0, ...d.subarray(i + 1)]);
      return o;
    }
    case 4: {
      // insert random bytes
      const k = 1 + int(8);
      const ins = Array.from({ length: k }, () => int(256));
      return new Uint8Array([...d.subarray(0, at), ...ins, ...d.subarray(at)]);
    }
    case 5: {
      // remove bytes
      const k = 1 + int(8);
      return new Uint8Array([...d.subarray(0, at), ...d.subarray(Math.min(n, at + k))]);
    }
    case 6: {
      // repeat a slice (a duplicated entry or extension)
      const k = 1 + int(64);
      return new Uint8Array([...d.subarray(0, at + k), ...d.subarray(at, Math.min(n, at + k)), ...d.subarray(Math.min(n, at + k))]);
    }
    default: {
      // several flips
      const o = d.slice();
      for (let j = 0; j < 1 + int(6); j++) o[int(n)] ^= 1 << int(8);
      return o;
    }
  }
}

const LOAD_CODES = new Set<LoadCrlCode>([
  'crl_malformed',
  'crl_unknown_issuer',
  'crl_signature_invalid',
  'crl_critical_extension',
  'crl_delta_unsupported',
  'crl_scope_unsupported',
  'crl_not_yet_valid',
]);
const ROUNDS = Number(process.env.CRL_FUZZ_ROUNDS ?? 20_000);

test(`mutated CRLs never crash the engine and give only stable codes (${ROUNDS} inputs)`, () => {
  const tally = new Map<string, number>();
  let input: Uint8Array = seeds[0];
  for (let i = 0; i < ROUNDS; i++) {
    // Mostly one or two mutations of a seed; sometimes a mutation of the last mutant (deeper damage).
    input = rnd() < 0.2 && input.length > 0 ? mutate(input) : mutate(seeds[int(seeds.length)]);
    if (rnd() < 0.3 && input.length > 0) input = mutate(input);
    const where = `round ${i}, seed ${seed}, input ${Buffer.from(input).toString('hex').slice(0, 200)}`;
    let code: string;
    try {
      const p = parseCrl(input);
      if (p.ok) {
        assert.ok(p.value.entryCount >= 0, where);
        canonicalName(p.value.issuerNameDer);
        const idx = indexCrl(p.value);
        if (idx.ok) {
          idx.value.lookup(1n);
          idx.value.lookup('0a');
          idx.value.lookup(BigInt(7919 * 3 + 1) << 3n);
        } else assert.is(idx.code, 'crl_malformed', where);
      } else {
        assert.is(p.code, 'crl_malformed', where);
        assert.type(p.message, 'string');
      }
      const l = loadCrl(input, [issuer.value], { now });
      code = l.ok ? 'ok' : l.code;
      assert.ok(code === 'ok' || LOAD_CODES.has(code as LoadCrlCode), `${where}: unexpected code ${code}`);
    } catch (e) {
      if ((e as Error).name === 'Assertion') throw e;
      throw new Error(`the CRL engine threw ${(e as Error)?.name}: ${(e as Error)?.message} (${where})`);
    }
    tally.set(code, (tally.get(code) ?? 0) + 1);
  }
  console.log('CRL fuzz outcomes:', Object.fromEntries([...tally].sort()));
  // The mutations reached past the parser: signatures were checked and some mutants still loaded.
  assert.ok((tally.get('crl_malformed') ?? 0) > 0);
  assert.ok((tally.get('crl_signature_invalid') ?? 0) > 0);
});

// Mutants of tbsCertList signed again with the CA key get past the signature check, so the checks
// after it (critical extensions, scope, thisUpdate, indexing) see damaged input too.
const signer = createPrivateKey({ key: Buffer.from(await exportPkcs8(ca.keyPair.privateKey)), format: 'der', type: 'pkcs8' });
const SHA256_RSA = Uint8Array.of(0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00);
function derHeader(tag: number, len: number): number[] {
  if (len < 0x80) return [tag, len];
  const bytes: number[] = [];
  for (let v = len; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return [tag, 0x80 | bytes.length, ...bytes];
}
/** The tbsCertList TLV of a DER CRL (its second TLV). */
function tbsOf(der: Uint8Array): Uint8Array {
  const outerHeader = der[1] & 0x80 ? 2 + (der[1] & 0x7f) : 2;
  const p = outerHeader;
  const lenBytes = der[p + 1] & 0x80 ? der[p + 1] & 0x7f : 0;
  let len = lenBytes ? 0 : der[p + 1];
  for (let i = 0; i < lenBytes; i++) len = len * 256 + der[p + 2 + i];
  return der.subarray(p, p + 2 + lenBytes + len);
}
function signedCrl(tbs: Uint8Array): Uint8Array {
  const sig = sign('sha256', tbs, signer);
  const bit = [...derHeader(0x03, sig.length + 1), 0, ...sig];
  const body = [...tbs, ...SHA256_RSA, ...bit];
  return new Uint8Array([...derHeader(0x30, body.length), ...body]);
}
const RESIGNED = Math.max(1, Math.floor(ROUNDS / 10));

test(`mutated tbsCertLists signed again never crash the checks after the signature (${RESIGNED} inputs)`, () => {
  const tbsSeeds = seeds.slice(0, 5).map(tbsOf);
  const tally = new Map<string, number>();
  for (let i = 0; i < RESIGNED; i++) {
    let tbs = mutate(tbsSeeds[int(tbsSeeds.length)]);
    if (rnd() < 0.3 && tbs.length > 0) tbs = mutate(tbs);
    const input = signedCrl(tbs);
    const where = `re-signed round ${i}, seed ${seed}`;
    let code: string;
    try {
      const l = loadCrl(input, [issuer.value], { now });
      code = l.ok ? 'ok' : l.code;
      if (l.ok) for (const s of [1n, 2n, 0x10000n]) l.value.index.lookup(s);
    } catch (e) {
      throw new Error(`the CRL engine threw ${(e as Error)?.name}: ${(e as Error)?.message} (${where}, tbs ${Buffer.from(tbs).toString('hex').slice(0, 200)})`);
    }
    assert.ok(code === 'ok' || LOAD_CODES.has(code as LoadCrlCode), `${where}: unexpected code ${code}`);
    tally.set(code, (tally.get(code) ?? 0) + 1);
  }
  console.log('re-signed CRL fuzz outcomes:', Object.fromEntries([...tally].sort()));
  assert.ok((tally.get('ok') ?? 0) > 0, 'some mutants still load');
});

test('mutated Names never make the name rule throw', () => {
  const names = [ca.nameDer, issuer.value.nameDer];
  for (let i = 0; i < Math.max(1, Math.floor(ROUNDS / 4)); i++) {
    const n = mutate(names[int(names.length)]);
    try {
      const same = namesMatch(n, ca.nameDer);
      assert.type(same, 'boolean');
      canonicalName(n);
    } catch (e) {
      throw new Error(`the name rule threw ${(e as Error)?.message} (round ${i}, seed ${seed}, name ${Buffer.from(n).toString('hex')})`);
    }
  }
});

test('the unmutated seeds load or are refused as the test CA wrote them', () => {
  const codes = seeds.map((s) => {
    const r = loadCrl(s, [issuer.value], { now });
    return r.ok ? 'ok' : r.code;
  });
  // The fourth is a delta CRL with an unknown critical extension: the critical extension is checked first.
  assert.equal(codes, ['ok', 'ok', 'crl_scope_unsupported', 'crl_critical_extension', 'ok', 'ok']);
});

test.run();
