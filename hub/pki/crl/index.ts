// The hub's CRL engine: parse (DER or PEM), verify, index and look up revoked serials, sized for
// JPKI CRLs with millions of entries. Pure apart from node:crypto for the signature check.
export { parseCrl, parseCrlSteps, type CrlScope, type Pace, type ParsedCrl } from './parse.ts';
export { verifyCrlSignature, verifyCrlSignatureAsync, CRL_SIGNATURE_ALGORITHMS } from './verify.ts';
export { indexCrl, indexCrlSteps, type CrlEntry, type CrlIndex, type CrlRevocation, type IndexOptions } from './crl-index.ts';
export { loadCrl, loadCrlPaced, loadCrlSteps, issuersNamed, scopeProblem, type LoadCrlCode, type LoadCrlOptions, type LoadedCrl } from './load.ts';
export { crlIssuerFromCertificate, issuerKeyIdOf, keyIdOf, type CrlIssuer } from './issuer.ts';
export { namesMatch } from './name.ts';
export { serialKey, serialHex } from './serial.ts';
