// The platform's ASN.1 toolkit: DER reading (der.ts), OIDs, INTEGERs, times and PEM. Hub PKI, the
// CRL engine and the edge import it; the virtual card keeps its own parser on purpose (a test double
// shares no code with what it tests).
export * from './der.ts';
export * from './oid.ts';
export * from './integer.ts';
export * from './time.ts';
export * from './pem.ts';
export * from './write.ts';
