// The project's own MyKey card application (CARD.md): AID F0 4D 59 4B 45 59 01, EF 0001 = the MyKey
// ID as 8 ASCII bytes, readable without PIN. The area may be missing (no application: the common
// case), present but never reserved (SELECT EF gives 6A82), reserved but unwritten (8 zero bytes).
import { MYKEY_EF } from '../../shared/card.ts';
import { isMyKeyId, MYKEY_ID_LENGTH, type MyKeyId } from '../../shared/ids.ts';
import { readBinary, SELECT_MYKEY, selectEf } from './apdu.ts';
import { MyKeyError } from '../../shared/errors.ts';
import { SW, swError } from './status-words.ts';
import type { CardSession, ResponseApdu } from './transport.ts';

/** What the card's MyKey area holds. `malformed`: written, but not a well-formed MyKey ID. */
export type MyKeyArea = { state: 'written'; mykeyId: MyKeyId } | { state: 'absent' | 'unreserved' | 'unwritten' | 'malformed' };

/** Reads the MyKey area without a PIN. Outcomes other than a transport or card failure are results. */
export function readMyKeyArea(session: CardSession): Promise<MyKeyArea> {
  // One turn at the card: SELECT, SELECT EF, READ BINARY, each sent only when the one before answered
  // 90 00 (the series stops at the first other answer, which is then read as before).
  return session.run(() => session.transmitSteps(MYKEY_AREA_FIRST, nextAreaApdu).then(areaOf));
}

// SELECT, SELECT EF, READ BINARY: the same bytes on every touch, built once.
const AREA_SERIES: readonly Uint8Array[] = [SELECT_MYKEY, selectEf(MYKEY_EF.mykeyId), readBinary(0, MYKEY_ID_LENGTH)];

/** The first APDU of the MyKey area's read. */
export const MYKEY_AREA_FIRST = AREA_SERIES[0];

/** The APDU of the area's read after answer `index`, while the card answers 90 00; undefined at the end. */
export function nextAreaApdu(r: ResponseApdu, index: number): Uint8Array | undefined {
  return r.sw === SW.ok && index + 1 < AREA_SERIES.length ? AREA_SERIES[index + 1] : undefined;
}

/** What the answers of the area's read say (SELECT, SELECT EF, READ BINARY, as far as they went). */
export function areaOf(answers: readonly ResponseApdu[]): MyKeyArea {
  // Indexed reads: this runs on every touch, and destructuring goes through the array's iterator.
  const app = answers[0];
  const ef = answers[1];
  const r = answers[2];
  if (app.sw === SW.fileNotFound) return { state: 'absent' };
  if (app.sw !== SW.ok) throw swError(app.sw, 'SELECT MyKey application');
  if (ef.sw === SW.fileNotFound) return { state: 'unreserved' };
  if (ef.sw !== SW.ok) throw swError(ef.sw, 'SELECT EF 0001 (MyKey ID)');
  if (r.sw !== SW.ok) throw swError(r.sw, 'READ BINARY MyKey ID');
  if (r.data.length !== MYKEY_ID_LENGTH) {
    throw new MyKeyError('card_response_malformed', `READ BINARY MyKey ID: expected ${MYKEY_ID_LENGTH} bytes, card sent ${r.data.length}`);
  }
  if (r.data.every((b) => b === 0)) return { state: 'unwritten' };
  let text = '';
  for (const b of r.data) text += String.fromCharCode(b);
  return isMyKeyId(text) ? { state: 'written', mykeyId: text } : { state: 'malformed' };
}
