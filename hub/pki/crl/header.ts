// The headers of a CRL (RFC 5280 5.1.2): version, signature algorithm, issuer, thisUpdate and
// nextUpdate, where revokedCertificates lies, and the CRL extensions (5.2: cRLNumber,
// deltaCRLIndicator, authorityKeyIdentifier, issuingDistributionPoint), all read in one pass that
// visits no entry. parse.ts quotes the whole CertificateList.
import { DerError as CrlDerError, DerCursor, TAG as T, rangeEquals } from '../../../shared/asn1/der.ts';
import { readUnsigned } from '../../../shared/asn1/integer.ts';
import { oidToString } from '../../../shared/asn1/oid.ts';
import { timeToMs } from '../../../shared/asn1/time.ts';
import type { CrlScope } from './parse.ts';

/** Where the parts of a CRL are, found from the headers alone (no entry is visited). */
export interface CrlLayout {
  der: Uint8Array;
  tbsStart: number;
  tbsEnd: number;
  listStart: number;
  listEnd: number;
}

interface Header extends CrlLayout {
  issuerStart: number;
  issuerEnd: number;
  thisUpdate: number;
  nextUpdate?: number;
  version: 1 | 2;
  sigOid: string;
  sigStart: number;
  sigEnd: number;
  crlNumber?: bigint;
  baseCrlNumber?: bigint;
  aki?: Uint8Array;
  idp?: Uint8Array;
  scope?: CrlScope;
  unknownCritical: string[];
}

/** Decodes an issuingDistributionPoint SEQUENCE body in [start, end) (RFC 5280 5.2.5). */
function readScope(c: DerCursor, start: number, end: number): CrlScope {
  const b = c.buf;
  const scope: CrlScope = {
    distributionPoint: false,
    onlyContainsUserCerts: false,
    onlyContainsCACerts: false,
    onlySomeReasons: false,
    indirectCRL: false,
    onlyContainsAttributeCerts: false,
  };
  let last = -1;
  let p = start;
  while (p < end) {
    const tg = c.read(p, end);
    const n = tg & 0x1f;
    // Fields in order, each at most once (DER, X.690 10.x; SEQUENCE components keep their order).
    if ((tg & 0xc0) !== 0x80 || n > 5 || n <= last) throw new CrlDerError('issuingDistributionPoint: unexpected field', p);
    last = n;
    if (n === 0) {
      if (tg !== 0xa0) throw new CrlDerError('issuingDistributionPoint: distributionPoint must be constructed', p);
      scope.distributionPoint = true;
    } else if (n === 3) {
      if (tg !== 0x83 || c.end === c.body) throw new CrlDerError('issuingDistributionPoint: bad onlySomeReasons', p);
      scope.onlySomeReasons = true;
    } else {
      // BOOLEAN DEFAULT FALSE: DER leaves a FALSE default out (X.690 11.5), so only TRUE may appear.
      if (tg !== (0x80 | n) || c.end - c.body !== 1 || b[c.body] !== 0xff) throw new CrlDerError('issuingDistributionPoint: bad BOOLEAN', p);
      if (n === 1) scope.onlyContainsUserCerts = true;
      else if (n === 2) scope.onlyContainsCACerts = true;
      else if (n === 4) scope.indirectCRL = true;
      else scope.onlyContainsAttributeCerts = true;
    }
    p = c.end;
  }
  return scope;
}

function readTimeAt(c: DerCursor, pos: number, limit: number, what: string): number {
  const tg = c.read(pos, limit);
  const ms = timeToMs(c.buf, tg, c.body, c.end - c.body);
  if (Number.isNaN(ms)) throw new CrlDerError(`${what}: bad Time`, pos);
  return ms;
}

/** Validates a Name (RFC 5280 4.1.2.4): SEQUENCE OF SET OF SEQUENCE { OID, value }. */
function checkName(c: DerCursor, start: number, end: number): void {
  let tg = 0;
  let p = start;
  while (p < end) {
    if (c.read(p, end) !== T.SET || c.end === c.body) throw new CrlDerError('issuer: expected RelativeDistinguishedName SET', p);
    const se = c.end;
    let q = c.body;
    while (q < se) {
      tg = c.read(q, se);
      if (tg !== T.SEQUENCE) throw new CrlDerError('issuer: expected AttributeTypeAndValue', q);
      const ae = c.end;
      tg = c.read(c.body, ae);
      if (tg !== T.OID || c.end === c.body) throw new CrlDerError('issuer: expected attribute type OID', c.start);
      tg = c.read(c.end, ae);
      if (c.end !== ae) throw new CrlDerError('issuer: extra data in AttributeTypeAndValue', c.end);
      q = ae;
    }
    p = se;
  }
}

function readCrlExtensions(c: DerCursor, h: Header, start: number, end: number): void {
  let tg = 0;
  const b = c.buf;
  const seen = new Set<string>();
  let p = start;
  if (p === end) throw new CrlDerError('crlExtensions: empty', p);
  while (p < end) {
    tg = c.read(p, end);
    if (tg !== T.SEQUENCE) throw new CrlDerError('CRL extension: expected SEQUENCE', p);
    const xe = c.end;
    c.expect(T.OID, c.body, xe, 'CRL extension');
    const oid = oidToString(b, c.body, c.end);
    if (seen.has(oid)) throw new CrlDerError(`CRL extension ${oid} appears twice`, p);
    seen.add(oid);
    tg = c.read(c.end, xe);
    let critical = false;
    if (tg === T.BOOLEAN) {
      if (c.end - c.body !== 1 || (b[c.body] !== 0 && b[c.body] !== 0xff)) throw new CrlDerError('CRL extension: bad critical flag', c.start);
      critical = b[c.body] === 0xff;
      tg = c.read(c.end, xe);
    }
    if (tg !== T.OCTET_STRING || c.end !== xe) throw new CrlDerError('CRL extension: expected OCTET STRING value', c.start);
    const vs = c.body;
    const ve = c.end;
    switch (oid) {
      case '2.5.29.20': {
        c.expect(T.INTEGER, vs, ve, 'cRLNumber');
        if (c.end !== ve) throw new CrlDerError('cRLNumber: extra data', c.end);
        h.crlNumber = readUnsigned(b, c.body, c.end, 'cRLNumber');
        break;
      }
      case '2.5.29.27': {
        c.expect(T.INTEGER, vs, ve, 'deltaCRLIndicator');
        if (c.end !== ve) throw new CrlDerError('deltaCRLIndicator: extra data', c.end);
        h.baseCrlNumber = readUnsigned(b, c.body, c.end, 'deltaCRLIndicator');
        break;
      }
      case '2.5.29.35': {
        // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING OPTIONAL,
        //   authorityCertIssuer [1] GeneralNames OPTIONAL, authorityCertSerialNumber [2] INTEGER OPTIONAL }
        c.expect(T.SEQUENCE, vs, ve, 'authorityKeyIdentifier');
        if (c.end !== ve) throw new CrlDerError('authorityKeyIdentifier: extra data', c.end);
        const ae = c.end;
        let q = c.body;
        while (q < ae) {
          tg = c.read(q, ae);
          if (tg === 0x80) h.aki = b.subarray(c.body, c.end);
          else if (tg !== 0xa1 && tg !== 0x82) throw new CrlDerError('authorityKeyIdentifier: unexpected field', q);
          q = c.end;
        }
        break;
      }
      case '2.5.29.28':
        c.expect(T.SEQUENCE, vs, ve, 'issuingDistributionPoint');
        if (c.end !== ve) throw new CrlDerError('issuingDistributionPoint: extra data', c.end);
        h.idp = b.subarray(vs, ve);
        h.scope = readScope(c, c.body, c.end);
        break;
      // issuerAltName, freshestCRL, authorityInfoAccess: informational here.
      case '2.5.29.18':
      case '2.5.29.46':
      case '1.3.6.1.5.5.7.1.1':
        break;
      default:
        // RFC 5280 5.2: a CRL with a critical extension the application cannot process MUST NOT be used.
        // Recorded here and refused by loadCrl with its own code (crl_critical_extension).
        if (critical) h.unknownCritical.push(oid);
    }
    p = xe;
  }
}

/** Reads every header of the CRL and locates revokedCertificates, without visiting the entries. */
export function readHeader(der: Uint8Array): Header {
  let tg = 0;
  const c = new DerCursor(der);
  const n = der.length;
  c.expect(T.SEQUENCE, 0, n, 'CertificateList');
  if (c.end !== n) throw new CrlDerError('trailing data after CertificateList', c.end);
  const outerEnd = c.end;
  c.expect(T.SEQUENCE, c.body, outerEnd, 'tbsCertList');
  const tbsStart = c.start;
  const tbsEnd = c.end;
  const tbsBody = c.body;
  // signatureAlgorithm and signatureValue, after tbsCertList.
  c.expect(T.SEQUENCE, tbsEnd, outerEnd, 'signatureAlgorithm');
  const algStart = c.start;
  const algEnd = c.end;
  c.expect(T.OID, c.body, algEnd, 'signatureAlgorithm');
  const sigOid = oidToString(der, c.body, c.end);
  c.expect(T.BIT_STRING, algEnd, outerEnd, 'signatureValue');
  if (c.end !== outerEnd) throw new CrlDerError('extra data after signatureValue', c.end);
  if (c.end - c.body < 2 || der[c.body] !== 0) throw new CrlDerError('signatureValue: bad BIT STRING', c.start);
  const sigStart = c.body + 1;
  const sigEnd = c.end;

  let p = tbsBody;
  tg = c.read(p, tbsEnd);
  let version: 1 | 2 = 1;
  if (tg === T.INTEGER) {
    if (c.end - c.body !== 1 || der[c.body] !== 1) throw new CrlDerError('version: only v2 (1) may be present', c.start);
    version = 2;
    p = c.end;
    tg = c.read(p, tbsEnd);
  }
  if (tg !== T.SEQUENCE) throw new CrlDerError('signature: expected AlgorithmIdentifier', p);
  if (!rangeEquals(der, c.start, c.end, der.subarray(algStart, algEnd))) {
    throw new CrlDerError('signature differs from signatureAlgorithm (RFC 5280 5.1.1.2)', p);
  }
  p = c.end;
  c.expect(T.SEQUENCE, p, tbsEnd, 'issuer');
  const issuerStart = c.start;
  const issuerEnd = c.end;
  checkName(c, c.body, issuerEnd);
  p = issuerEnd;
  const thisUpdate = readTimeAt(c, p, tbsEnd, 'thisUpdate');
  p = c.end;
  const h: Header = {
    der,
    tbsStart,
    tbsEnd,
    listStart: 0,
    listEnd: 0,
    issuerStart,
    issuerEnd,
    thisUpdate,
    version,
    sigOid,
    sigStart,
    sigEnd,
    unknownCritical: [],
  };
  if (p < tbsEnd && (der[p] === T.UTCTime || der[p] === T.GeneralizedTime)) {
    h.nextUpdate = readTimeAt(c, p, tbsEnd, 'nextUpdate');
    p = c.end;
  }
  if (p < tbsEnd && der[p] === T.SEQUENCE) {
    tg = c.read(p, tbsEnd);
    h.listStart = c.body;
    h.listEnd = c.end;
    p = c.end;
  } else {
    h.listStart = h.listEnd = p;
  }
  if (p < tbsEnd) {
    if (c.read(p, tbsEnd) !== 0xa0) throw new CrlDerError('tbsCertList: unexpected element', p);
    if (version !== 2) throw new CrlDerError('crlExtensions in a v1 CRL', p);
    if (c.end !== tbsEnd) throw new CrlDerError('tbsCertList: extra data after crlExtensions', c.end);
    const xe = c.end;
    c.expect(T.SEQUENCE, c.body, xe, 'crlExtensions');
    if (c.end !== xe) throw new CrlDerError('crlExtensions: extra data', c.end);
    readCrlExtensions(c, h, c.body, c.end);
  }
  return h;
}
