import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crlIssuerFromCertificate, indexCrl, parseCrl, verifyCrlSignature, type ParsedCrl } from '../../../../hub/pki/crl/index.ts';
import { makeOpensslCa, readOpensslCrlText, type OpensslCa } from './helpers/openssl-ca.ts';
import { NAME, SHA256_RSA, crl, entry, ext, gen, intBytes, oid, reasonExt, seq, tlv, utc } from './helpers/der-build.ts';

const JPKI_DN = '/C=JP/O=JPKI/OU=JPKI for user authentication/OU=Japan Agency for Local Authority Information Systems';

function parsed(der: Uint8Array): ParsedCrl {
  const r = parseCrl(der);
  if (!r.ok) throw new Error(r.message);
  return r.value;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex').toUpperCase();
}

const fromOpenssl = suite<{ ca: OpensslCa; der: Uint8Array }>('CRLs made by openssl ca', { ca: undefined as never, der: undefined as never });

fromOpenssl.before((ctx) => {
  ctx.ca = makeOpensslCa({ subject: JPKI_DN });
  // Serials with the high bit set are written with a leading 00 in DER (X.690 8.3.2).
  const revocations: [string, Parameters<OpensslCa['revoke']>[1], string[]?][] = [
    ['01', 'unspecified'],
    ['80AB01', 'keyCompromise', ['-crl_compromise', '20260101000000Z']],
    ['0FFE', 'cACompromise'],
    ['7F', 'affiliationChanged'],
    ['FF', 'superseded'],
    ['1234567890ABCDEF1234567890ABCDEF', 'cessationOfOperation'],
    ['42', 'certificateHold', ['-crl_hold', '1.2.840.10040.2.3']],
    ['43', 'removeFromCRL'],
    ['C3A9E1D2B4F60718293A4B5C6D7E8F9012345678', 'keyCompromise'],
  ];
  for (const [serial, reason, extra] of revocations) ctx.ca.revoke(serial, reason, extra);
  ctx.der = ctx.ca.genCrl();
});
fromOpenssl.after((ctx) => ctx.ca.cleanup());

fromOpenssl('parses to exactly what openssl crl -text shows', ({ ca, der }) => {
  const want = readOpensslCrlText(ca.crlText(der));
  const crlv = parsed(der);
  assert.is(crlv.version, 2);
  assert.is(crlv.signatureAlgorithmOid, '1.2.840.113549.1.1.11');
  assert.equal(crlv.thisUpdate, want.lastUpdate);
  assert.equal(crlv.nextUpdate, want.nextUpdate);
  assert.is(crlv.crlNumber, want.crlNumber);
  assert.is(hex(crlv.authorityKeyId!), want.authorityKeyId);
  assert.is(crlv.isDelta, false);
  assert.is(crlv.entryCount, want.entries.length);
  assert.is(crlv.entryCount, 9);
  const issuer = crlIssuerFromCertificate(ca.caPem);
  assert.ok(issuer.ok);
  if (issuer.ok) assert.equal(hex(crlv.issuerNameDer), hex(issuer.value.nameDer));
  const index = indexCrl(crlv);
  assert.ok(index.ok);
  if (!index.ok) return;
  const got = [...index.value.entries()];
  assert.equal(
    got,
    want.entries.map(({ serialHex, revokedAt, reason }) => ({ serialHex, revokedAt, reason })),
  );
  for (const e of want.entries) assert.equal(index.value.lookup(e.serialHex), { revokedAt: e.revokedAt, reason: e.reason }, e.serialHex);
});

fromOpenssl('verifies with the CA key and reads the same CRL from PEM', ({ ca, der }) => {
  const issuer = crlIssuerFromCertificate(ca.caPem);
  assert.ok(issuer.ok);
  if (!issuer.ok) return;
  assert.ok(verifyCrlSignature(parsed(der), issuer.value.publicKey));
  const pem = new Uint8Array(readFileSync(join(ca.dir, 'crl.pem')));
  const fromPem = parsed(pem);
  assert.is(hex(fromPem.der), hex(der));
  assert.ok(verifyCrlSignature(fromPem, issuer.value.publicKey));
});

fromOpenssl('parses a CRL without revoked certificates', ({ ca }) => {
  const empty = makeOpensslCa({ subject: '/C=JP/O=Empty CA', dir: undefined });
  try {
    const der = empty.genCrl();
    const c = parsed(der);
    assert.is(c.entryCount, 0);
    const index = indexCrl(c);
    assert.ok(index.ok);
    if (index.ok) {
      assert.is(index.value.size, 0);
      assert.is(index.value.lookup(1n), undefined);
      assert.equal([...index.value.entries()], []);
    }
  } finally {
    empty.cleanup();
  }
  assert.ok(ca);
});

fromOpenssl.run();

const ecdsa = suite('CRLs signed with ECDSA');

ecdsa('parses and verifies an ecdsa-with-SHA256 CRL from an EC CA', () => {
  const ca = makeOpensslCa({ subject: '/C=JP/O=EC Test CA', keyType: 'ec' });
  try {
    ca.revoke('0A', 'keyCompromise');
    const der = ca.genCrl();
    const c = parsed(der);
    assert.is(c.signatureAlgorithmOid, '1.2.840.10045.4.3.2');
    const issuer = crlIssuerFromCertificate(ca.caPem);
    assert.ok(issuer.ok);
    if (issuer.ok) assert.ok(verifyCrlSignature(c, issuer.value.publicKey));
  } finally {
    ca.cleanup();
  }
});

ecdsa.run();

const shapes = suite('CRL shapes');

const serial = (n: number) => intBytes(n);
const when = utc('260301120000Z');

// [description, DER, check of the parsed CRL]
const accepted: [string, Uint8Array, (c: ParsedCrl) => void][] = [
  [
    'a v1 CRL (no version, no extensions)',
    crl({ version: false, entries: [entry(serial(5), when)] }),
    (c) => {
      assert.is(c.version, 1);
      assert.is(c.entryCount, 1);
      assert.is(c.crlNumber, undefined);
    },
  ],
  [
    'long-form lengths everywhere (200 entries, a 130-byte serial)',
    crl({
      entries: [...Array.from({ length: 200 }, (_, i) => entry(intBytes(1, i), when)), entry(tlv(0x02, [0x01, ...new Array(129).fill(7)]), when)],
    }),
    (c) => assert.is(c.entryCount, 201),
  ],
  [
    'GeneralizedTime for thisUpdate, nextUpdate and an entry',
    crl({
      thisUpdate: gen('20500101000000Z'),
      nextUpdate: gen('20991231235959Z'),
      entries: [entry(serial(1), gen('20510615083000Z'))],
    }),
    (c) => {
      assert.equal(c.thisUpdate, new Date(Date.UTC(2050, 0, 1)));
      assert.equal(c.nextUpdate, new Date(Date.UTC(2099, 11, 31, 23, 59, 59)));
    },
  ],
  [
    'UTCTime years 50-99 are 19xx (RFC 5280 5.1.2.4)',
    crl({ thisUpdate: utc('500101000000Z') }),
    (c) => {
      assert.equal(c.thisUpdate, new Date(Date.UTC(1950, 0, 1)));
    },
  ],
  [
    'a delta CRL (deltaCRLIndicator)',
    crl({ extensions: [ext(oid(0x55, 0x1d, 0x14), false, intBytes(8)), ext(oid(0x55, 0x1d, 0x1b), true, intBytes(7))] }),
    (c) => {
      assert.is(c.isDelta, true);
      assert.is(c.baseCrlNumber, 7n);
      assert.is(c.crlNumber, 8n);
    },
  ],
  ['an unknown non-critical CRL extension is ignored', crl({ extensions: [ext(oid(0x2a, 0x03, 0x04), false, tlv(0x05, []))] }), (c) => assert.is(c.entryCount, 0)],
  // Refused by loadCrl with its own code (crl_critical_extension), not here as crl_malformed.
  [
    'an unknown critical CRL extension is recorded (RFC 5280 5.2)',
    crl({ extensions: [ext(oid(0x2a, 0x03, 0x04), true, tlv(0x05, []))] }),
    (c) => {
      assert.equal(c.unknownCriticalExtensions, ['1.2.3.4']);
    },
  ],
  [
    'an issuingDistributionPoint is kept',
    crl({ extensions: [ext(oid(0x55, 0x1d, 0x1c), true, seq(tlv(0x81, [0xff])))] }),
    (c) => {
      assert.equal([...c.issuingDistributionPoint!], [0x30, 0x03, 0x81, 0x01, 0xff]);
    },
  ],
  [
    'entry extensions: invalidityDate, an unknown one, an unknown critical one (counted)',
    crl({
      entries: [
        entry(serial(1), when, [reasonExt(1), ext(oid(0x55, 0x1d, 0x18), false, gen('20260101000000Z'))]),
        entry(serial(2), when, [ext(oid(0x2a, 0x03, 0x04), false, tlv(0x05, []))]),
        entry(serial(3), when, [ext(oid(0x55, 0x1d, 0x1d), true, seq())]),
      ],
    }),
    (c) => {
      assert.is(c.entryCount, 3);
      assert.is(c.unknownCriticalEntryExtensions, 1);
    },
  ],
  ['an empty revokedCertificates SEQUENCE', crl({ entries: [] }), (c) => assert.is(c.entryCount, 0)],
];

for (const [name, der, check] of accepted) {
  shapes(`accepts ${name}`, () => {
    const c = parsed(der);
    check(c);
    const index = indexCrl(c);
    assert.ok(index.ok, index.ok ? '' : index.message);
    if (index.ok) assert.is(index.value.size, c.entryCount);
  });
}

const base = crl({ entries: [entry(serial(1), when)] });
const withTrailing = new Uint8Array([...base, 0x00]);
const rejected: [string, Uint8Array, RegExp?][] = [
  ['trailing data after the CRL', withTrailing, /trailing data/],
  ['version 1 written out (v1 must omit the field)', seq(seq(intBytes(0), SHA256_RSA, NAME, when), SHA256_RSA, tlv(0x03, [0, 1])), /version/],
  ['version 3', seq(seq(intBytes(2), SHA256_RSA, NAME, when), SHA256_RSA, tlv(0x03, [0, 1])), /version/],
  ['a CRL extension twice', crl({ extensions: [ext(oid(0x55, 0x1d, 0x14), false, intBytes(1)), ext(oid(0x55, 0x1d, 0x14), false, intBytes(2))] }), /twice/],
  ['crlExtensions in a v1 CRL', crl({ version: false, extensions: [ext(oid(0x55, 0x1d, 0x14), false, intBytes(1))] }), /v1/],
  ['month 13', crl({ entries: [entry(serial(1), utc('261301000000Z'))] }), /revocationDate/],
  ['February 30', crl({ thisUpdate: utc('260230000000Z') }), /thisUpdate/],
  ['a UTCTime without Z', crl({ thisUpdate: tlv(0x17, Buffer.from('2601010000000')) }), /thisUpdate/],
  ['a GeneralizedTime with fractional seconds', crl({ entries: [entry(serial(1), gen('20260101000000.5Z'))] }), /revocationDate/],
  ['an empty serial', crl({ entries: [entry(tlv(0x02, []), when)] }), /empty serial/],
  ['a serial that is not an INTEGER', crl({ entries: [entry(tlv(0x04, [1]), when)] }), /serial INTEGER/],
  ['a reasonCode that is not an ENUMERATED', crl({ entries: [entry(serial(1), when, [ext(oid(0x55, 0x1d, 0x15), false, intBytes(1))])] }), /reasonCode/],
  ['two reasonCodes on one entry', crl({ entries: [entry(serial(1), when, [reasonExt(1), reasonExt(4)])] }), /duplicate reasonCode/],
  ['an invalidityDate that is a UTCTime', crl({ entries: [entry(serial(1), when, [ext(oid(0x55, 0x1d, 0x18), false, utc('260101000000Z'))])] }), /invalidityDate/],
  ['an empty entry extensions SEQUENCE', crl({ entries: [seq(serial(1), when, seq())] }), /empty crlEntryExtensions/],
  [
    'an indefinite length',
    (() => {
      const d = new Uint8Array(base);
      d[1] = 0x80;
      return d;
    })(),
    /indefinite length/,
  ],
  [
    'a non-minimal long-form length',
    (() => {
      const d = crl({ entries: [entry(serial(1), when)] });
      // Re-encode the outer length (short form) as 81 xx.
      return new Uint8Array([0x30, 0x81, d[1], ...d.subarray(2)]);
    })(),
    /non-minimal length/,
  ],
  [
    'signature differing from signatureAlgorithm (RFC 5280 5.1.1.2)',
    (() => {
      const d = new Uint8Array(base);
      const i = d.indexOf(0x0b); // last byte of the inner sha256WithRSAEncryption OID
      d[i] = 0x0c;
      return d;
    })(),
    /5\.1\.1\.2/,
  ],
  [
    'a signature BIT STRING with unused bits',
    (() => {
      const d = new Uint8Array(base);
      d[d.length - 5] = 3;
      return d;
    })(),
    /signatureValue/,
  ],
  ['bytes that are not a CRL at all', new Uint8Array([1, 2, 3, 4]), /CertificateList/],
  ['nothing', new Uint8Array(0), /missing element/],
  ['PEM with characters outside base64', new Uint8Array(Buffer.from('-----BEGIN X509 CRL-----\nMII*\n-----END X509 CRL-----\n')), /alphabet/],
  ['PEM without an end line', new Uint8Array(Buffer.from('-----BEGIN X509 CRL-----\nMIIB\n')), /END/],
];

for (const [name, der, message] of rejected) {
  shapes(`refuses ${name} as crl_malformed`, () => {
    const r = parseCrl(der);
    assert.is(r.ok, false);
    if (r.ok) return;
    assert.is(r.code, 'crl_malformed');
    assert.match(r.message, /at byte \d+/);
    if (message) assert.match(r.message, message);
  });
}

shapes('never throws on something that is not bytes', () => {
  const r = parseCrl('not bytes' as unknown as Uint8Array);
  assert.is(r.ok, false);
});

shapes.run();
