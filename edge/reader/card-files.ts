// Reading whole transparent EFs that hold one DER object (the JPKI certificates), the way JPKI
// middleware does (CARD.md): READ BINARY the first 4 bytes `30 82 LL LL`, take LL LL + 4 as the size,
// then read the rest in 256-byte chunks with the exact remainder last.
import { MyKeyError } from '../../shared/errors.ts';
import { readBinary, selectByName, selectEf } from './apdu.ts';
import { CERT_MAX_BYTES, CERT_MIN_BYTES, hasCertificateShape, parseSequenceHeader } from './der.ts';
import { SW, swError } from './status-words.ts';
import type { CardSession, ResponseApdu } from './transport.ts';

const NO_BYTES = new Uint8Array(0);

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

// The READ BINARY of a full chunk at each offset a certificate read uses (4, 260, 516, ...): the
// same bytes on every touch, built once. Internal: nothing hands them out to be written into.
const fullChunkReads: Uint8Array[] = [];
function fullChunkRead(offset: number): Uint8Array {
  const i = (offset - 4) / READ_CHUNK;
  if (!Number.isInteger(i) || i < 0) return readBinary(offset, READ_CHUNK);
  fullChunkReads[i] ??= readBinary(offset, READ_CHUNK);
  return fullChunkReads[i];
}

/** Size bounds and outer shape of a certificate file; card_response_malformed otherwise. */
function certificateTotal(head: Uint8Array, what: string): number {
  const parsed = parseSequenceHeader(head);
  if (!parsed.ok) throw new MyKeyError('card_response_malformed', `${what}: not a DER certificate (${parsed.reason})`);
  const total = parsed.header.totalLength;
  if (total < CERT_MIN_BYTES || total > CERT_MAX_BYTES) throw sizeError(total, what);
  return total;
}

function sizeError(total: number, what: string): MyKeyError {
  return new MyKeyError('card_response_malformed', `${what}: certificate size ${total} is outside ${CERT_MIN_BYTES}..${CERT_MAX_BYTES} bytes`);
}

const READ_CERT_HEAD = readBinary(0, 4);

/**
 * The steps of reading one certificate file, for CardSession.transmitSteps: SELECT the application,
 * SELECT the EF, READ BINARY its first 4 bytes; the size comes from the card, so it is bounded
 * (CERT_MIN_BYTES..CERT_MAX_BYTES) before any further read; then the chunks. Each answer is checked
 * as it comes (a SELECT not answered 90 00 throws card_error, a chunk that is not exactly the bytes
 * asked for throws card_response_malformed), and the file read must have the outer shape of a
 * Certificate. `index` counts this read's own answers from 0.
 */
export class CertificateSteps {
  readonly first: Uint8Array;
  readonly #selectEf: Uint8Array;
  readonly #appName: string;
  readonly #efName: string;
  readonly #what: string;
  #total = 0;
  /** The file, allocated once its size is known; `#filled` bytes of it are read so far. */
  #out: Uint8Array = NO_BYTES;
  #filled = 0;

  constructor(selectApp: Uint8Array, appName: string, fid: number, efName: string, what: string) {
    this.first = selectApp;
    this.#selectEf = selectEf(fid);
    this.#appName = appName;
    this.#efName = efName;
    this.#what = what;
  }

  /** The APDU after this read's answer number `index`, or undefined when the file is read. */
  next(r: ResponseApdu, index: number): Uint8Array | undefined {
    if (index === 0) {
      expectOk(r, `SELECT ${this.#appName}`);
      return this.#selectEf;
    }
    if (index === 1) {
      expectOk(r, `SELECT EF ${this.#efName}`);
      return READ_CERT_HEAD;
    }
    let offset: number;
    if (index === 2) {
      const head = readData(r, 0, 4, this.#what);
      // The usual head `30 82 LL LL` (LL LL >= 256, minimal: X.690 10.1) read in place; any other
      // goes through the DER header rules. The bounds hold either way before any further read.
      const total = head[0] === 0x30 && head[1] === 0x82 && head[2] !== 0 ? 4 + ((head[2] << 8) | head[3]) : certificateTotal(head, this.#what);
      if (total < CERT_MIN_BYTES || total > CERT_MAX_BYTES) throw sizeError(total, this.#what);
      this.#total = total;
      this.#out = new Uint8Array(total);
      this.#out.set(head);
      offset = 4;
    } else {
      const at = 4 + (index - 3) * READ_CHUNK;
      const length = Math.min(READ_CHUNK, this.#total - at);
      // Copied straight in: 256 bytes cost less than any deferral (queueMicrotask makes an async
      // resource per call, which measured several times the copy on every chunk of a touch).
      if (r.sw === SW.ok && r.data.length === length) this.#out.set(r.data, at);
      else readData(r, at, length, this.#what); // throws the exact failure
      offset = at + length;
    }
    this.#filled = offset;
    if (offset >= this.#total) return undefined;
    return this.#total - offset >= READ_CHUNK ? fullChunkRead(offset) : readBinary(offset, this.#total - offset);
  }

  /** The file, once its read has finished (every answer passed through next()). */
  result(): Uint8Array {
    const out = this.#out;
    if (out.length === 0 || this.#filled !== out.length) throw new MyKeyError('internal', `${this.#what}: the read did not finish`);
    if (!hasCertificateShape(out)) throw new MyKeyError('card_response_malformed', `${this.#what}: the bytes read are not shaped like an X.509 certificate`);
    return out;
  }
}

/** Reads a whole certificate file (CertificateSteps) as one series at the card. */
export function readCertificateFile(session: CardSession, steps: CertificateSteps): Promise<Uint8Array> {
  return session.transmitSteps(steps.first, (r, i) => steps.next(r, i)).then(() => steps.result());
}
