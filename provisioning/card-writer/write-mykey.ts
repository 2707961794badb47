// The municipal counter's MyKey write (seed: the counter reserves the MyKey card-application area and
// writes the MyKey ID there). Everything goes through a writer-role session of the edge's reader
// layer, whose guard allows the write commands only inside the MyKey application; this file never
// names another application, so the JPKI and My Number applications are never selected.
//
//   SELECT MyKey AP        00 A4 04 0C 07 F0 4D 59 4B 45 59 01
//   GET CHALLENGE          00 84 00 00 08                          -> 8 random bytes
//   EXTERNAL AUTHENTICATE  00 82 00 01 20 HMAC-SHA256(writeKey, challenge)
//   CREATE FILE            00 E0 00 00 02 00 01                     (reserves EF 0001; only if absent)
//   SELECT EF 0001         00 A4 02 0C 02 00 01
//   UPDATE BINARY          00 D6 00 00 08 <MyKey ID, 8 ASCII bytes>
//   then the area is read back without authentication and compared.
import { createHmac } from 'node:crypto';
import { MYKEY_AID, MYKEY_EF } from '../../shared/card.ts';
import { MyKeyError } from '../../shared/errors.ts';
import { isMyKeyId, MYKEY_ID_LENGTH, normalizeMyKeyId, type MyKeyId } from '../../shared/ids.ts';
import { readMyKeyArea, swMeaning, type CardSession, type MyKeyArea } from '../../edge/reader/index.ts';

/** Length of the counter's write key (HMAC-SHA256 key), bytes. */
export const WRITE_KEY_LENGTH = 32;

const SW_OK = 0x9000;
const SW_AUTH_FAILED = 0x6300; // ISO 7816-4: verification failed (no tries counter)
const SW_FILE_EXISTS = 0x6a89;

const hex = (sw: number) => sw.toString(16).toUpperCase().padStart(4, '0').replace(/^(..)/, '$1 ');

function apdu(cla: number, ins: number, p1: number, p2: number, data?: Uint8Array, le?: number): Uint8Array {
  const out = [cla, ins, p1, p2];
  if (data && data.length) out.push(data.length, ...data);
  if (le !== undefined) out.push(le === 256 ? 0 : le);
  return Uint8Array.from(out);
}

const fid = (f: number) => Uint8Array.from([f >> 8, f & 0xff]);

/** Parses the write key from hex (64 hex digits, spaces or colons allowed). */
export function parseWriteKey(text: string): Uint8Array {
  const clean = text.trim().replace(/[\s:]/g, '');
  if (!/^[0-9a-fA-F]*$/.test(clean) || clean.length !== WRITE_KEY_LENGTH * 2) {
    throw new MyKeyError('validation_failed', `the write key must be ${WRITE_KEY_LENGTH} bytes in hex (${WRITE_KEY_LENGTH * 2} hex digits)`);
  }
  return Uint8Array.from(Buffer.from(clean, 'hex'));
}

/** Checks what a person typed as the MyKey ID ("ABCD-EFGH" is fine); throws mykey_id_malformed. */
export function parseMyKeyId(text: string): MyKeyId {
  const id = normalizeMyKeyId(text);
  if (!id) throw new MyKeyError('mykey_id_malformed', `"${text.slice(0, 20)}" is not a MyKey ID: 8 characters of 2-9 and A-Z without I, L, O`);
  return id;
}

export interface WriteMyKeyOptions {
  mykeyId: string;
  writeKey: Uint8Array;
  /** Overwrite a different MyKey ID already on the card. */
  replace?: boolean;
}

export type WriteMyKeyResult = { outcome: 'written'; mykeyId: MyKeyId; reserved: boolean; previous?: string } | { outcome: 'unchanged'; mykeyId: MyKeyId };

async function expectOk(session: CardSession, bytes: Uint8Array, what: string): Promise<Uint8Array> {
  const r = await session.transmit(bytes);
  if (r.sw !== SW_OK) throw new MyKeyError('card_error', `${what}: the card answered ${hex(r.sw)} (${swMeaning(r.sw)})`, { details: { sw: r.sw } });
  return r.data;
}

/**
 * Writes `mykeyId` into the card's MyKey area, reserving it first when needed, and reads it back.
 * Writing the ID already there changes nothing; a different one is refused (conflict) unless `replace`.
 */
export function writeMyKey(session: CardSession, opts: WriteMyKeyOptions): Promise<WriteMyKeyResult> {
  if (!isMyKeyId(opts.mykeyId)) return Promise.reject(new MyKeyError('mykey_id_malformed'));
  if (opts.writeKey.length !== WRITE_KEY_LENGTH) return Promise.reject(new MyKeyError('validation_failed', `the write key must be ${WRITE_KEY_LENGTH} bytes`));
  const id = opts.mykeyId;
  return session.run(async () => {
    const before: MyKeyArea = await readMyKeyArea(session);
    if (before.state === 'absent') {
      throw new MyKeyError('not_found', 'this card has no MyKey application, so no MyKey ID can be written to it; the holder can still use the card (the hub identifies it by its certificate)');
    }
    if (before.state === 'written' && before.mykeyId === id) return { outcome: 'unchanged', mykeyId: id };
    let previous: string | undefined;
    if (before.state === 'written' || before.state === 'malformed') {
      previous = before.state === 'written' ? before.mykeyId : '(malformed)';
      if (!opts.replace) {
        throw new MyKeyError(
          'conflict',
          `the card already holds ${before.state === 'written' ? `MyKey ID ${before.mykeyId.slice(0, 2)}******` : 'a malformed MyKey ID'}; pass --replace to overwrite it`,
        );
      }
    }

    await expectOk(session, apdu(0x00, 0xa4, 0x04, 0x0c, MYKEY_AID), 'SELECT MyKey application');
    const challenge = await expectOk(session, apdu(0x00, 0x84, 0x00, 0x00, undefined, 8), 'GET CHALLENGE');
    if (challenge.length !== 8) throw new MyKeyError('card_response_malformed', `GET CHALLENGE: expected 8 bytes, got ${challenge.length}`);
    const mac = createHmac('sha256', opts.writeKey).update(challenge).digest();
    // P2 01: the counter's write key reference.
    const auth = await session.transmit(apdu(0x00, 0x82, 0x00, 0x01, mac));
    if (auth.sw === SW_AUTH_FAILED) throw new MyKeyError('unauthorized', "the card refused the write key (EXTERNAL AUTHENTICATE 63 00): check the counter's write key");
    if (auth.sw !== SW_OK) throw new MyKeyError('card_error', `EXTERNAL AUTHENTICATE: the card answered ${hex(auth.sw)} (${swMeaning(auth.sw)})`);

    let reserved = false;
    if (before.state === 'unreserved') {
      const c = await session.transmit(apdu(0x00, 0xe0, 0x00, 0x00, fid(MYKEY_EF.mykeyId)));
      if (c.sw === SW_OK) reserved = true;
      else if (c.sw !== SW_FILE_EXISTS) throw new MyKeyError('card_error', `CREATE FILE (reserving the MyKey area): the card answered ${hex(c.sw)} (${swMeaning(c.sw)})`);
    }
    await expectOk(session, apdu(0x00, 0xa4, 0x02, 0x0c, fid(MYKEY_EF.mykeyId)), 'SELECT EF 0001');
    const data = Uint8Array.from(Buffer.from(id, 'latin1'));
    if (data.length !== MYKEY_ID_LENGTH) throw new MyKeyError('mykey_id_malformed');
    await expectOk(session, apdu(0x00, 0xd6, 0x00, 0x00, data), 'UPDATE BINARY');

    const after = await readMyKeyArea(session);
    if (after.state !== 'written' || after.mykeyId !== id) {
      throw new MyKeyError('card_error', `read back after writing: the area is ${after.state === 'written' ? 'holding a different ID' : after.state}`);
    }
    return { outcome: 'written', mykeyId: id, reserved, ...(previous ? { previous } : {}) };
  });
}
