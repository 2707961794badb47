// RFC 5280 5.1.2.4 / 4.1.2.5 CRL times, read by the shared toolkit (shared/asn1/time.ts): UTCTime or
// GeneralizedTime, Zulu, with seconds and without fractions.
export { isValidTime, timeToMs } from '../../../shared/asn1/time.ts';
