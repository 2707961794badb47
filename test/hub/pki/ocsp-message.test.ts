// The OCSP request writer and the CertID matching of ocsp-message.ts / ocsp-verify.ts, which the
// client's hot path relies on: the one-pass request writer against a reference written TLV by TLV
// and against the test CA's own request reader, CertIDs hashing the exact issuer Name bytes of each
// certificate (the per-issuer prefix is cached by those bytes), and a batched answer giving each
// certificate its own SingleResponse (the first, when a CertID is answered twice).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { createTestCa, generateRsaKeyPair, issueUserAuthCert, type TestCa } from '../../../provisioning/test-ca/ca.ts';
import { answerOcspRequest, ocspSigner } from '../../../provisioning/test-ca/ocsp-responder.ts';
import { readRequest } from '../../../provisioning/test-ca/ocsp-der.ts';
import { parseCertificateOrThrow, type ParsedCertificate } from '../../../hub/pki/certificate.ts';
import { certIdFor, certIdKey, encodeOcspRequest, keyHashOf, type CertId } from '../../../hub/pki/ocsp-message.ts';
import { OcspRejected, answerFor, verifyOcspResponse, type VerifiedOcspResponse } from '../../../hub/pki/ocsp-verify.ts';
import { trustAnchorFromDer, type TrustAnchor } from '../../../hub/pki/trust-anchors.ts';
import { tlv } from '../../../shared/asn1/write.ts';

interface Ctx {
  ca: TestCa;
  anchor: TrustAnchor;
  certs: ParsedCertificate[];
}
const test = suite<Ctx>('OCSP messages', {} as Ctx);

test.before(async (ctx) => {
  ctx.ca = await createTestCa();
  ctx.anchor = trustAnchorFromDer(ctx.ca.certDer, 'ca');
  const keyPair = await generateRsaKeyPair();
  ctx.certs = [];
  for (let i = 0; i < 200; i++) ctx.certs.push(parseCertificateOrThrow((await issueUserAuthCert(ctx.ca, { keyPair })).certDer));
});

const sha1 = (b: Uint8Array) => new Uint8Array(createHash('sha1').update(b).digest());

/** RFC 6960 4.1.1 OCSPRequest with a nonce (RFC 8954 2.1), written TLV by TLV with the shared writer. */
function referenceRequest(ids: CertId[], nonce: Uint8Array): Uint8Array {
  const sha1Alg = tlv(0x30, tlv(0x06, Uint8Array.from([0x2b, 0x0e, 0x03, 0x02, 0x1a])), tlv(0x05));
  const requests = ids.map((id) => tlv(0x30, tlv(0x30, sha1Alg, tlv(0x04, id.issuerNameHash), tlv(0x04, id.issuerKeyHash), tlv(0x02, id.serial))));
  const nonceExt = tlv(0x30, tlv(0x06, Uint8Array.from([0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02])), tlv(0x04, tlv(0x04, nonce)));
  return tlv(0x30, tlv(0x30, tlv(0x30, ...requests), tlv(0xa2, tlv(0x30, nonceExt))));
}

test('writes the same request as a TLV-by-TLV writer for 1 to 200 CertIDs and nonces of 1 to 32 octets', (ctx) => {
  const issuer = ctx.anchor.cert;
  for (const n of [1, 2, 3, 17, 32, 200]) {
    for (const nonceLength of [1, 16, 32]) {
      const ids = ctx.certs.slice(0, n).map((c) => certIdFor(c, issuer));
      const nonce = new Uint8Array(randomBytes(nonceLength));
      const written = encodeOcspRequest(ids, nonce);
      assert.equal(Buffer.from(written).toString('hex'), Buffer.from(referenceRequest(ids, nonce)).toString('hex'), `${n} CertIDs, nonce of ${nonceLength}`);
      // A CertID given by its fields alone (no DER kept) is written the same.
      const bare = ids.map(({ der: _der, ...fields }) => fields);
      assert.equal(Buffer.from(encodeOcspRequest(bare, nonce)).toString('hex'), Buffer.from(written).toString('hex'));
      // The test CA's own reader (shares no code with the writer) finds every CertID and the nonce.
      const read = readRequest(written);
      assert.is(read.certIds.length, n);
      read.certIds.forEach((r, i) => {
        assert.is(r.hashOid, '1.3.14.3.2.26');
        assert.equal(Buffer.from(r.issuerNameHash), Buffer.from(ids[i].issuerNameHash));
        assert.equal(Buffer.from(r.issuerKeyHash), Buffer.from(ids[i].issuerKeyHash));
        assert.is(r.serial, BigInt(`0x${Buffer.from(ctx.certs[i].serial).toString('hex')}`));
        assert.equal(Buffer.from(r.der), Buffer.from(ids[i].der!));
      });
      assert.equal(Buffer.from(read.nonceExtnValue!), Buffer.from(tlv(0x04, nonce)));
    }
  }
});

test('a CertID hashes the exact issuer Name bytes of its certificate, whichever was asked before', (ctx) => {
  const issuer = ctx.anchor.cert;
  const cert = ctx.certs[0];
  // The same Name with one octet changed (as another encoding of a name would be): its own hash.
  const otherName = Uint8Array.from(cert.issuerDer);
  otherName[otherName.length - 1] ^= 0x01;
  const other: ParsedCertificate = { ...cert, issuerDer: otherName };
  for (const c of [cert, other, cert, other]) {
    const id = certIdFor(c, issuer);
    assert.equal(Buffer.from(id.issuerNameHash), Buffer.from(sha1(c.issuerDer)));
    assert.equal(Buffer.from(id.issuerKeyHash), Buffer.from(keyHashOf(issuer)));
    assert.equal(Buffer.from(id.serial), Buffer.from(c.serial));
  }
  assert.is.not(certIdKey(certIdFor(cert, issuer)), certIdKey(certIdFor(other, issuer)));
});

test('CertID keys differ when any one field differs, whatever the field lengths', (ctx) => {
  const base = certIdFor(ctx.certs[0], ctx.anchor.cert);
  const bent: CertId[] = [
    { ...base, hashAlgorithmOid: '2.16.840.1.101.3.4.2.1' },
    { ...base, issuerNameHash: Uint8Array.from(base.issuerNameHash, (b, i) => (i === 0 ? b ^ 0xff : b)) },
    { ...base, issuerKeyHash: base.issuerKeyHash.subarray(1) },
    { ...base, serial: Uint8Array.of(...base.serial, 0) },
    // Bytes moved from one hash to the next: no separator ambiguity.
    { ...base, issuerNameHash: Uint8Array.of(...base.issuerNameHash, base.issuerKeyHash[0]), issuerKeyHash: base.issuerKeyHash.subarray(1) },
  ];
  const keys = new Set([certIdKey(base), ...bent.map(certIdKey)]);
  assert.is(keys.size, bent.length + 1);
  assert.is(certIdKey({ ...base, der: undefined }), certIdKey(base), 'the DER kept does not change the key');
});

test('a batched answer gives each certificate its own SingleResponse; a CertID answered twice keeps its first answer', async (ctx) => {
  const issuer = ctx.anchor;
  const now = new Date();
  const signer = await ocspSigner(ctx.ca, 'ca');
  const ids = ctx.certs.slice(0, 32).map((c) => certIdFor(c, issuer.cert));
  const revokedSerial = BigInt(`0x${Buffer.from(ctx.certs[5].serial).toString('hex')}`);
  const nonce = new Uint8Array(randomBytes(16));
  const der = await answerOcspRequest(encodeOcspRequest(ids, nonce), {
    ca: ctx.ca,
    signer,
    now,
    status: (serial) => (serial === revokedSerial ? { revokedAt: new Date(now.getTime() - 60_000), reason: 'keyCompromise' } : undefined),
  });
  const basic = verifyOcspResponse(der, { nonce, issuer, now, skewMs: 60_000 });
  const input = { now, skewMs: 60_000, maxAgeMs: 3600_000 };
  ids.forEach((asked, i) => {
    const single = answerFor(basic, { asked, ...input });
    assert.is(single.status.kind, i === 5 ? 'revoked' : 'good');
    assert.equal(Buffer.from(single.certId.serial), Buffer.from(asked.serial));
  });
  // Another certificate of the CA, not asked about: no answer, ocsp_certid_mismatch naming the serial.
  try {
    answerFor(basic, { asked: certIdFor(ctx.certs[100], issuer.cert), ...input });
    assert.unreachable('an answer for a CertID the response does not name');
  } catch (e) {
    assert.instance(e, OcspRejected);
    assert.is((e as OcspRejected).code, 'ocsp_certid_mismatch');
    assert.match((e as OcspRejected).message, 'serialNumber differs');
  }
  // The same CertID twice, revoked first and good second: the first answer counts, as a scan in order gives.
  const first = basic.responses[5];
  const twice: VerifiedOcspResponse = { ...basic, responses: [first, { ...first, status: { kind: 'good' } }, ...basic.responses] };
  assert.is(answerFor(twice, { asked: ids[5], ...input }).status.kind, 'revoked');
});

test.run();
