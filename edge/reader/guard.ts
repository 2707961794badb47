// The APDU guard: every command passes this allowlist before it reaches the card (deny by default).
//
// The My Number Card also holds applications with the 12-digit My Number and the holder's personal
// facts (CARD.md, "Applications that must never be selected"). ISO 7816-4 lets a SELECT by DF name
// match a *prefix* of a name, lets P1 pick files by path or short EF identifier, lets CLA open other
// logical channels with their own selection. So the guard allows only the exact commands the platform
// needs, keeps track of what is selected (from the card's answers), and refuses everything else with
// MyKeyError('apdu_refused') naming the rule. The core is pure: `checkApdu` and `nextGuardState` are
// functions over data; `ApduGuard` only holds the state between them.
import { JPKI_AID, JPKI_EF, MYKEY_AID, MYKEY_EF, SHA256_DIGEST_INFO_PREFIX } from '../../shared/card.ts';
import { MyKeyError } from '../../shared/errors.ts';
import { bytesEqual, INS, NO_APDU_DATA, parseApdu, type CommandApdu } from './apdu.ts';
import { SW_OK } from './status-words.ts';

/** The application the guard believes is selected. `none` until a SELECT by name succeeds. */
export type GuardApp = 'none' | 'jpki' | 'mykey';

/** What the guard knows of the card's selection state. */
export interface GuardState {
  readonly app: GuardApp;
  /** The current EF's identifier, or undefined when none is known to be selected. */
  readonly ef: number | undefined;
}

/** The state of a freshly connected card: nothing selected that the guard has seen. */
export const INITIAL_GUARD_STATE: GuardState = Object.freeze({ app: 'none', ef: undefined });

/** Capabilities. `writer` is the municipal counter's MyKey write role, off by default. */
export interface GuardOptions {
  writer?: boolean;
}

/** The name of the rule that refused an APDU (stable, for tests and logs). */
export type GuardRule = 'malformed' | 'class' | 'select-by-name' | 'select-mode' | 'select-ef' | 'read-binary' | 'verify' | 'sign' | 'get-response' | 'writer-only' | 'writer-command' | 'instruction';

/** What a command does, once allowed. */
export type ApduKind = 'select-app' | 'select-ef' | 'read-binary' | 'verify' | 'sign' | 'get-response' | 'get-challenge' | 'external-authenticate' | 'create-file' | 'update-binary';

/** The guard's verdict on one APDU. */
export type GuardVerdict = { ok: true; kind: ApduKind; apdu: CommandApdu } | { ok: false; rule: GuardRule; message: string };

/** EFs that may be selected, per application. JPKI signing cert/key/PIN (0001, 001A, 001B) are left out: never needed. */
export const SELECTABLE_EFS: Readonly<Record<Exclude<GuardApp, 'none'>, readonly number[]>> = {
  jpki: [JPKI_EF.authCert, JPKI_EF.authCaCert, JPKI_EF.signCaCert, JPKI_EF.token, JPKI_EF.authKey, JPKI_EF.authPin],
  mykey: [MYKEY_EF.mykeyId],
};

/** EFs that may be read with READ BINARY, per application (the PIN and key EFs are not readable). */
export const READABLE_EFS: Readonly<Record<Exclude<GuardApp, 'none'>, readonly number[]>> = {
  jpki: [JPKI_EF.authCert, JPKI_EF.authCaCert, JPKI_EF.signCaCert, JPKI_EF.token],
  mykey: [MYKEY_EF.mykeyId],
};

const JPKI_SIGN_DATA_LENGTH = SHA256_DIGEST_INFO_PREFIX.length + 32;

const refuse = (rule: GuardRule, message: string): GuardVerdict => ({ ok: false, rule, message });
const allowed = (kind: ApduKind, apdu: CommandApdu): GuardVerdict => ({ ok: true, kind, apdu });
const fidHex = (fid: number) => fid.toString(16).toUpperCase().padStart(4, '0');

function appOfName(name: Uint8Array): Exclude<GuardApp, 'none'> | undefined {
  // Exact match only: equal length and equal bytes. A prefix (ISO 7816-4 partial DF name) never passes.
  if (bytesEqual(name, JPKI_AID)) return 'jpki';
  if (bytesEqual(name, MYKEY_AID)) return 'mykey';
  return undefined;
}

function isAsciiDigits(d: Uint8Array): boolean {
  for (const b of d) if (b < 0x30 || b > 0x39) return false;
  return true;
}

/**
 * Decides whether one APDU may be sent to the card in `state`. Pure. Allowed:
 * - SELECT by DF name (00 A4 04 0C|00) of exactly the JPKI AID or the MyKey AID;
 * - SELECT EF (00 A4 02 0C fid) of a known EF of the selected application;
 * - READ BINARY (00 B0, P1 bit 8 clear) of a readable EF that is selected;
 * - VERIFY (00 20 00 80) on the JPKI auth PIN EF 0018, without data (tries query) or with 4 ASCII digits;
 * - SIGN (80 2A 00 80 33 <SHA-256 DigestInfo> 00) with the JPKI auth key EF 0017 selected;
 * - GET RESPONSE (00 C0 00 00 Le);
 * - writer role only, inside the MyKey application: GET CHALLENGE, EXTERNAL AUTHENTICATE, CREATE FILE,
 *   UPDATE BINARY (on EF 0001).
 */
export function checkApdu(bytes: Uint8Array, state: GuardState, options: GuardOptions = {}): GuardVerdict {
  const parsed = parseApdu(bytes);
  if (!parsed.ok) return refuse('malformed', `malformed APDU: ${parsed.reason}`);
  const apdu = parsed.apdu;
  const { cla, ins, p1, p2, data, le } = apdu;

  // ISO 7816-4 5.4.1: CLA 00 is the interindustry class on the basic channel, no secure messaging, no
  // chaining. Other channels (01-03, 40-4F..) keep their own selection, so they would slip past the
  // state tracking; FF is the PC/SC reader's pseudo-APDU class. Only the JPKI SIGN uses the
  // proprietary class 80.
  if (cla !== 0x00 && !(cla === 0x80 && ins === INS.jpkiSign)) {
    return refuse('class', `CLA ${cla.toString(16).padStart(2, '0')} is not allowed: only 00 (and 80 for the JPKI SIGN) on the basic channel`);
  }

  switch (ins) {
    case INS.select: {
      if (p1 === 0x04) {
        // P2: 00 = first occurrence with FCI, 0C = first occurrence without data. "Next occurrence" and
        // other P2 values are refused.
        if (p2 !== 0x0c && p2 !== 0x00) return refuse('select-by-name', 'SELECT by DF name must use P2 0C or 00 (first occurrence)');
        if (p2 === 0x0c && le !== undefined) return refuse('select-by-name', 'SELECT with P2 0C takes no Le');
        const app = appOfName(data);
        if (!app) return refuse('select-by-name', `SELECT by DF name is allowed only for the exact JPKI or MyKey AID (got ${data.length} byte name)`);
        return allowed('select-app', apdu);
      }
      if (p1 === 0x02) {
        if (p2 !== 0x0c || le !== undefined) return refuse('select-ef', 'SELECT EF must be 00 A4 02 0C 02 <fid> without Le');
        if (data.length !== 2) return refuse('select-ef', `SELECT EF takes a 2-byte file identifier (got ${data.length})`);
        if (state.app === 'none') return refuse('select-ef', 'SELECT EF is allowed only after the JPKI or MyKey application is selected');
        const fid = (data[0] << 8) | data[1];
        if (!SELECTABLE_EFS[state.app].includes(fid)) return refuse('select-ef', `EF ${fidHex(fid)} is not on the allowlist of the ${state.app} application`);
        return allowed('select-ef', apdu);
      }
      // P1 00/01/03 (by file id, child DF, parent), 08/09 (by path) would walk the file tree outside
      // the allowlist.
      return refuse('select-mode', `SELECT with P1 ${p1.toString(16).padStart(2, '0')} is not allowed: only by exact DF name (04) or EF of the selected application (02)`);
    }

    case INS.readBinary: {
      // ISO 7816-4 11.2.3: P1 bit 8 set means P1 bits 1-5 are a short EF identifier, which would read
      // a file the guard never saw selected.
      if (p1 & 0x80) return refuse('read-binary', 'READ BINARY with a short EF identifier (P1 bit 8) is not allowed');
      if (data.length || le === undefined) return refuse('read-binary', 'READ BINARY takes no data and needs Le');
      if (state.app === 'none' || state.ef === undefined) return refuse('read-binary', 'READ BINARY needs a readable EF selected first');
      if (!READABLE_EFS[state.app].includes(state.ef)) return refuse('read-binary', `EF ${fidHex(state.ef)} of the ${state.app} application is not readable`);
      return allowed('read-binary', apdu);
    }

    case INS.verify: {
      if (p1 !== 0x00 || p2 !== 0x80) return refuse('verify', 'VERIFY must be 00 20 00 80 (the current PIN EF)');
      if (state.app !== 'jpki' || state.ef !== JPKI_EF.authPin) return refuse('verify', 'VERIFY is allowed only with the JPKI auth PIN EF 0018 selected');
      if (le !== undefined) return refuse('verify', 'VERIFY takes no Le');
      // No data: asks the tries left without using one (CARD.md). Data: the 4-digit auth PIN in ASCII.
      if (data.length !== 0 && !(data.length === 4 && isAsciiDigits(data))) return refuse('verify', 'VERIFY data must be a 4-digit PIN in ASCII');
      return allowed('verify', apdu);
    }

    case INS.jpkiSign: {
      if (cla !== 0x80 || p1 !== 0x00 || p2 !== 0x80) return refuse('sign', 'SIGN must be 80 2A 00 80');
      if (state.app !== 'jpki' || state.ef !== JPKI_EF.authKey) return refuse('sign', 'SIGN is allowed only with the JPKI auth key EF 0017 selected');
      if (data.length !== JPKI_SIGN_DATA_LENGTH || !bytesEqual(data.subarray(0, SHA256_DIGEST_INFO_PREFIX.length), SHA256_DIGEST_INFO_PREFIX)) {
        return refuse('sign', 'SIGN data must be a SHA-256 DigestInfo (RFC 8017 9.2): 19-byte prefix and a 32-byte digest');
      }
      if (le !== 256) return refuse('sign', 'SIGN must end with Le 00');
      return allowed('sign', apdu);
    }

    case INS.getResponse: {
      if (p1 !== 0x00 || p2 !== 0x00 || data.length || le === undefined) return refuse('get-response', 'GET RESPONSE must be 00 C0 00 00 Le');
      return allowed('get-response', apdu);
    }

    case INS.getChallenge:
    case INS.externalAuthenticate:
    case INS.createFile:
    case INS.updateBinary:
      return checkWriter(apdu, state, options);

    default:
      return refuse('instruction', `INS ${ins.toString(16).padStart(2, '0')} is not on the allowlist`);
  }
}

function checkWriter(apdu: CommandApdu, state: GuardState, options: GuardOptions): GuardVerdict {
  const { ins, p1, p2, data, le } = apdu;
  const allow = (kind: ApduKind): GuardVerdict => allowed(kind, apdu);
  const name = { [INS.getChallenge]: 'GET CHALLENGE', [INS.externalAuthenticate]: 'EXTERNAL AUTHENTICATE', [INS.createFile]: 'CREATE FILE', [INS.updateBinary]: 'UPDATE BINARY' }[ins] ?? 'command';
  if (!options.writer) return refuse('writer-only', `${name} is allowed only for the municipal writer role`);
  if (state.app !== 'mykey') return refuse('writer-command', `${name} is allowed only inside the MyKey application`);
  switch (ins) {
    case INS.getChallenge:
      if (p1 !== 0 || p2 !== 0 || data.length || le === undefined) return refuse('writer-command', 'GET CHALLENGE must be 00 84 00 00 Le');
      return allow('get-challenge');
    case INS.externalAuthenticate:
      if (p1 !== 0 || !data.length) return refuse('writer-command', 'EXTERNAL AUTHENTICATE must be 00 82 00 P2 Lc data');
      return allow('external-authenticate');
    case INS.createFile:
      if (p1 !== 0 || p2 !== 0 || !data.length) return refuse('writer-command', 'CREATE FILE must be 00 E0 00 00 Lc FCP');
      return allow('create-file');
    default:
      if (p1 & 0x80) return refuse('writer-command', 'UPDATE BINARY with a short EF identifier is not allowed');
      if (state.ef !== MYKEY_EF.mykeyId || !data.length || le !== undefined) return refuse('writer-command', 'UPDATE BINARY must write data to the selected MyKey EF 0001');
      return allow('update-binary');
  }
}

/**
 * The guard's state after the card answered `status` to an allowed command. Pure. Conservative: a
 * failed SELECT forgets the selection (the guard then demands a fresh SELECT), so the guard never
 * believes a file is current when the card might have something else current.
 */
export function nextGuardState(state: GuardState, kind: ApduKind, apdu: CommandApdu, status: number): GuardState {
  const success = status === SW_OK || status >> 8 === 0x61;
  switch (kind) {
    case 'select-app':
      return success ? { app: appOfName(apdu.data) ?? 'none', ef: undefined } : INITIAL_GUARD_STATE;
    case 'select-ef':
      return success ? { app: state.app, ef: (apdu.data[0] << 8) | apdu.data[1] } : { app: state.app, ef: undefined };
    case 'create-file':
      // ISO 7816-4 11.5.1: the created file becomes current; the guard demands an explicit SELECT instead.
      return { app: state.app, ef: undefined };
    default:
      return state;
  }
}

/** The guard of one card session: the pure rules plus the selection state between commands. */
export class ApduGuard {
  #state: GuardState = INITIAL_GUARD_STATE;
  /** Whether the state has a readable EF selected (READ BINARY allowed), kept with the state. */
  #readable = false;
  readonly options: Readonly<GuardOptions>;

  constructor(options: GuardOptions = {}) {
    this.options = Object.freeze({ writer: options.writer === true });
  }

  get state(): GuardState {
    return this.#state;
  }

  /**
   * True when `bytes` is a plain READ BINARY `00 B0 P1 P2 Le` (P1 bit 8 clear) and a readable EF is
   * selected: exactly the bytes checkApdu allows as 'read-binary' in this state. The chunks of a
   * certificate take this; a caller that gets false asks check(), which refuses or parses as always.
   */
  allowsPlainRead(bytes: Uint8Array): boolean {
    return this.#readable && bytes instanceof Uint8Array && bytes.length === 5 && bytes[0] === 0x00 && bytes[1] === INS.readBinary && (bytes[2] & 0x80) === 0;
  }

  /** Returns the allowed command, or throws MyKeyError('apdu_refused') naming the rule. */
  check(bytes: Uint8Array): { kind: ApduKind; apdu: CommandApdu } {
    // A plain READ BINARY of the EF just selected: decided with a few byte compares, the very outcome
    // checkApdu gives those bytes (case 2, CLA 00, P1 bit 8 clear, a readable EF selected).
    if (this.allowsPlainRead(bytes)) {
      return { kind: 'read-binary', apdu: { cla: 0x00, ins: INS.readBinary, p1: bytes[2], p2: bytes[3], data: NO_APDU_DATA, le: bytes[4] || 256 } };
    }
    // SELECT `00 A4 04 0C Lc name` of exactly the JPKI or MyKey AID, or `00 A4 02 0C 02 fid` of an EF
    // on the selected application's list: checkApdu's verdict on these very forms (case 3, no Le),
    // reached without its general parse. Every other name or EF, and every other form, takes the full
    // rules below, which refuse it.
    if (bytes instanceof Uint8Array && bytes.length > 5 && bytes[0] === 0x00 && bytes[1] === INS.select && bytes[3] === 0x0c && bytes.length === 5 + bytes[4]) {
      const p1 = bytes[2];
      if (p1 === 0x04) {
        const data = bytes.slice(5);
        if (appOfName(data)) return { kind: 'select-app', apdu: { cla: 0x00, ins: INS.select, p1, p2: 0x0c, data, le: undefined } };
      } else if (p1 === 0x02 && bytes.length === 7) {
        const app = this.#state.app;
        if (app !== 'none' && SELECTABLE_EFS[app].includes((bytes[5] << 8) | bytes[6])) {
          return { kind: 'select-ef', apdu: { cla: 0x00, ins: INS.select, p1, p2: 0x0c, data: bytes.slice(5), le: undefined } };
        }
      }
    }
    const v = checkApdu(bytes, this.#state, this.options);
    if (!v.ok) throw new MyKeyError('apdu_refused', `APDU refused by the reader guard (rule ${v.rule}): ${v.message}`, { details: { rule: v.rule } });
    return { kind: v.kind, apdu: v.apdu };
  }

  /** Records the card's answer to an allowed command. */
  observe(kind: ApduKind, apdu: CommandApdu, status: number): void {
    const state = nextGuardState(this.#state, kind, apdu, status);
    if (state === this.#state) return;
    this.#state = state;
    this.#readable = state.app !== 'none' && state.ef !== undefined && READABLE_EFS[state.app].includes(state.ef);
  }

  /** Forgets the selection (a new connection, a reset card). */
  reset(): void {
    this.#state = INITIAL_GUARD_STATE;
    this.#readable = false;
  }
}
