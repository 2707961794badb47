// Reading whole transparent EFs that hold one DER object (the JPKI certificates), the way JPKI
// middleware does (CARD.md): READ BINARY the first 4 bytes `30 82 LL LL`, take LL LL + 4 as the size,
// then read the rest in 256-byte chunks with the exact remainder last.
import { MyKeyError } from '../../shared/errors.ts';
import { readBinary, selectByName, selectEf } from './apdu.ts';
import { CERT_MAX_BYTES, CERT_MIN_BYTES, hasCertificateShape, parseSequenceHeader } from './der.ts';
import { SW, swError } from './status-words.ts';
import type { CardSession, ResponseApdu } from './transport.ts';

/** Largest READ BINARY chunk of a short APDU (Le 00). */
export const READ_CHUNK = 256;

/** Throws card_error (6A82 included) unless the card answered 90 00. */
export function expectOk(r: ResponseApdu, what: string): void {
  if (r.sw !== SW.ok) throw swError(r.sw, what);
}

/** The data of a READ BINARY answer, which must be exactly `length` bytes at `offset`; anything else is malformed. */
export function readData(r: ResponseApdu, offset: number, length: number, what: string): Uint8Array {
  if (r.sw !== SW.ok) throw swError(r.sw, `READ BINARY ${what}`);
  if (r.data.length !== length) {
    throw new MyKeyError('card_response_malformed', `READ BINARY ${what}: asked ${length} bytes at ${offset}, card sent ${r.data.length}`);
  }
  return r.data;
}

// The helpers below await the card straight and check its answer synchronously: one promise per APDU,
// none per helper (each costs on a touch, where this code runs cold).

/** Selects an application by its exact AID; throws card_error (6A82 included) when it is not there. */
export async function selectApplication(session: CardSession, aid: Uint8Array, what: string): Promise<void> {
  expectOk(await session.transmit(selectByName(aid)), `SELECT ${what}`);
}

/** Selects an EF of the current application; throws card_error when it is not there. */
export async function selectFile(session: CardSession, fid: number, what: string): Promise<void> {
  expectOk(await session.transmit(selectEf(fid)), `SELECT EF ${what}`);
}

/**
 * Reads the rest of the X.509 certificate in the currently selected EF once its first 4 bytes
 * (`head`, READ BINARY at offset 0) are read. The size comes from the card, so it is bounded
 * (CERT_MIN_BYTES..CERT_MAX_BYTES) before any further read, and the result must have the outer shape
 * of a Certificate; otherwise card_response_malformed.
 */
export async function readCertificateRest(session: CardSession, head: Uint8Array, what: string): Promise<Uint8Array> {
  const parsed = parseSequenceHeader(head);
  if (!parsed.ok) throw new MyKeyError('card_response_malformed', `${what}: not a DER certificate (${parsed.reason})`);
  const total = parsed.header.totalLength;
  if (total < CERT_MIN_BYTES || total > CERT_MAX_BYTES) {
    throw new MyKeyError('card_response_malformed', `${what}: certificate size ${total} is outside ${CERT_MIN_BYTES}..${CERT_MAX_BYTES} bytes`);
  }
  // The chunks are known now: they go to the card as one series, which stops at the first answer that
  // is not exactly the chunk asked for (that one is then reported below, as a single read's would be).
  const offsets: number[] = [];
  const reads: Uint8Array[] = [];
  for (let offset = head.length; offset < total; offset += READ_CHUNK) {
    offsets.push(offset);
    reads.push(readBinary(offset, Math.min(READ_CHUNK, total - offset)));
  }
  const chunkLength = (i: number) => Math.min(READ_CHUNK, total - offsets[i]);
  const answers = await session.transmitSeries(reads, (r, i) => r.sw === SW.ok && r.data.length === chunkLength(i));
  const out = new Uint8Array(total);
  out.set(head);
  for (let i = 0; i < answers.length; i++) out.set(readData(answers[i], offsets[i], chunkLength(i), what), offsets[i]);
  if (!hasCertificateShape(out)) throw new MyKeyError('card_response_malformed', `${what}: the bytes read are not shaped like an X.509 certificate`);
  return out;
}
