// loadCrlSteps, the form a scheduled CRL run uses on the hub's event loop: it yields between parsing,
// verifying and indexing, and ends with exactly what loadCrl gives, refusals included.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { crlIssuerFromCertificate, loadCrl, loadCrlSteps, type CrlIssuer } from '../../../../hub/pki/crl/index.ts';
import { makeOpensslCa } from './helpers/openssl-ca.ts';

const ca = makeOpensslCa({ subject: '/C=JP/O=JPKI/OU=JPKI for user authentication' });
const other = makeOpensslCa({ subject: '/C=JP/O=Another CA' });
ca.revoke('80AA', 'keyCompromise');
ca.revoke('11', 'superseded');
const crl = ca.genCrl();
for (const c of [ca, other]) c.cleanup();

function issuer(pem: string, label: string): CrlIssuer {
  const r = crlIssuerFromCertificate(pem, label);
  if (!r.ok) throw new Error(r.message);
  return r.value;
}

/** Runs the steps through, counting the turns it yields. */
function drive(der: Uint8Array, issuers: CrlIssuer[]) {
  const it = loadCrlSteps(der, issuers);
  let turns = 0;
  for (;;) {
    const r = it.next();
    if (r.done) return { result: r.value, turns };
    turns++;
  }
}

test('yields between parsing, verifying and indexing, and loads what loadCrl loads', () => {
  const { result, turns } = drive(crl, [issuer(ca.caPem, 'jpki')]);
  assert.is(turns, 2);
  const once = loadCrl(crl, [issuer(ca.caPem, 'jpki')]);
  assert.ok(result.ok && once.ok);
  if (!result.ok || !once.ok) return;
  assert.is(result.value.index.size, 2);
  assert.is(result.value.index.lookup('80aa')?.reason, 'keyCompromise');
  assert.equal([...result.value.index.entries()], [...once.value.index.entries()]);
});

test('refuses as loadCrl does: a CRL of an issuer not configured, one that is not DER', () => {
  const table: [string, Uint8Array, CrlIssuer[], string][] = [
    ['unknown issuer', crl, [issuer(other.caPem, 'other')], 'crl_unknown_issuer'],
    ['not a CRL', new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00]), [issuer(ca.caPem, 'jpki')], 'crl_malformed'],
  ];
  for (const [name, der, issuers, code] of table) {
    const { result } = drive(der, issuers);
    const once = loadCrl(der, issuers);
    assert.ok(!result.ok && !once.ok, name);
    if (result.ok || once.ok) continue;
    assert.is(result.code, code, name);
    assert.is(once.code, code, name);
  }
});

test.run();
