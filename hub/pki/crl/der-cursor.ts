// The CRL engine reads DER with the platform's one toolkit (shared/asn1/der.ts): the allocation-free
// DerCursor built for CRLs of millions of entries. These are the engine's names for it.
export { DerError as CrlDerError, DerCursor, TAG as T } from '../../../shared/asn1/der.ts';
