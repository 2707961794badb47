// The virtual My Number Card: a pure APDU state machine over a card file.
//
// It answers the commands CARD.md lists the way a real card does (JPKI application), implements the
// project's own MyKey application, and holds the My Number applications with decoy contents, selectable
// by full name or by a DF-name prefix (ISO 7816-4 5.3.1.1) exactly like a real card, so the reader
// guard is what must stop them. No I/O here: vpcd-slot.ts carries the bytes to and from pcscd.
import { createHmac, createPrivateKey, privateEncrypt, randomBytes, timingSafeEqual, constants, type KeyObject } from 'node:crypto';
import { JPKI_AID, JPKI_EF, MYKEY_AID, MYKEY_EF } from '../../shared/card.ts';
import { MyKeyError } from '../../shared/errors.ts';
import { parseApdu, toHex, type CommandApdu } from './apdu.ts';
import { JPKI_TOKEN_EF_SIZE, type CardFile } from './card-file.ts';
import { DECOY_APPS, SW, startsWith, swTriesLeft, u8, withSw, type AppEntry, type AppId, type CardFaults, type ExchangeFault, type PinWhich, type TraceEntry } from './card-model.ts';

export type { CardFaults } from './card-model.ts';

export interface VirtualCardOptions {
  faults?: CardFaults;
  /** Called with a fresh copy of the card file whenever PIN counters or the MyKey area change. */
  onChange?: (f: CardFile) => void;
  /** Source of GET CHALLENGE bytes (crypto.randomBytes by default). */
  random?: (n: number) => Uint8Array;
}

export class VirtualCard {
  readonly trace: TraceEntry[] = [];
  private file: CardFile;
  private readonly faults: CardFaults;
  private readonly onChange?: (f: CardFile) => void;
  private readonly random: (n: number) => Uint8Array;
  private readonly atrBytes: Uint8Array;
  private readonly apps: AppEntry[];
  private readonly keys: { authKey: KeyObject; signKey: KeyObject };

  private powered = false;
  private apduCount = 0;
  private app: AppId | null = null;
  private ef: number | null = null;
  private verified = { authPin: false, signPin: false };
  private mykeyAuthenticated = false;
  private challenge: Uint8Array | null = null;

  constructor(file: CardFile, opts: VirtualCardOptions = {}) {
    this.file = structuredClone(file);
    this.faults = opts.faults ?? {};
    this.onChange = opts.onChange;
    this.random = opts.random ?? ((n) => randomBytes(n));
    this.atrBytes = u8(file.atr);
    // ISO 7816-4 5.3.1.1: with a partial DF name the card selects the first match, in this order.
    this.apps = [{ id: 'jpki', aid: JPKI_AID }, ...DECOY_APPS.map((a) => ({ id: a.id, aid: u8(a.aid) })), ...(file.mykey.present ? [{ id: 'mykey' as const, aid: MYKEY_AID }] : [])];
    const key = (b64: string) => createPrivateKey({ key: Buffer.from(b64, 'base64'), format: 'der', type: 'pkcs8' });
    this.keys = { authKey: key(file.jpki.authKey), signKey: key(file.jpki.signKey) };
  }

  /** The answer to reset. */
  get atr(): Uint8Array {
    return this.atrBytes.slice();
  }

  /** The fault settings (the slot applies delays and drops). */
  get faultSettings(): Readonly<CardFaults> {
    return this.faults;
  }

  /** A copy of the card file as it stands now (PIN counters, MyKey area). */
  snapshot(): CardFile {
    return structuredClone(this.file);
  }

  get isPowered(): boolean {
    return this.powered;
  }

  powerOn(): void {
    this.powered = true;
    this.clearVolatile();
  }

  powerOff(): void {
    this.powered = false;
    this.clearVolatile();
  }

  /** Warm reset: everything volatile is gone, as after power off and on. */
  reset(): void {
    this.powered = true;
    this.clearVolatile();
  }

  /**
   * Answers one command APDU with response data + SW. Throws `card_removed` when a fault takes the
   * card away at this APDU.
   */
  transmit(apdu: Uint8Array): Uint8Array {
    const { response, fault } = this.exchange(apdu);
    if (fault) throw new MyKeyError('card_removed', 'the virtual card was taken away (fault injection)');
    return response;
  }

  /** transmit() for the transport: returns the response and the fault to act out, if any. */
  exchange(apdu: Uint8Array): { response: Uint8Array; fault?: ExchangeFault } {
    if (!this.powered) throw new MyKeyError('card_error', 'the virtual card is not powered');
    this.apduCount++;
    let response = this.process(apdu);
    const f = this.faults;
    if (f.wrongLengthAfterApdus !== undefined && this.apduCount > f.wrongLengthAfterApdus && response.length > 2) {
      response = Uint8Array.from([...response.subarray(0, response.length - 3), ...response.subarray(response.length - 2)]);
    }
    if (f.garbageAfterApdus !== undefined && this.apduCount > f.garbageAfterApdus) response = Uint8Array.of(0xff);
    this.trace.push({ apdu: toHex(apdu), response: toHex(response) });
    const removeAt = f.removeAfterApdus ?? (f.dropConnectionMidResponse ? 0 : undefined);
    if (removeAt !== undefined && this.apduCount > removeAt) {
      return { response, fault: f.dropConnectionMidResponse ? 'drop-mid-response' : 'remove' };
    }
    return { response };
  }

  private clearVolatile(): void {
    this.app = null;
    this.ef = null;
    this.verified = { authPin: false, signPin: false };
    this.mykeyAuthenticated = false;
    this.challenge = null;
  }

  private changed(): void {
    this.onChange?.(this.snapshot());
  }

  private process(raw: Uint8Array): Uint8Array {
    const c = parseApdu(raw);
    if (!c) return withSw(undefined, SW.wrongLength);
    if (c.cla === 0x80) {
      if (c.ins === 0x2a) return this.sign(c);
      return withSw(undefined, SW.insNotSupported);
    }
    if (c.cla !== 0x00) return withSw(undefined, SW.claNotSupported);
    switch (c.ins) {
      case 0xa4:
        return this.select(c);
      case 0xb0:
        return this.readBinary(c);
      case 0x20:
        return this.verify(c);
      case 0x84:
        return this.getChallenge(c);
      case 0x82:
        return this.externalAuthenticate(c);
      case 0xe0:
        return this.createFile(c);
      case 0xd6:
        return this.updateBinary(c);
      default:
        return withSw(undefined, SW.insNotSupported);
    }
  }

  // --- SELECT (ISO 7816-4 11.2.2) ---------------------------------------------------------------

  private select(c: CommandApdu): Uint8Array {
    // P2: 00 = return FCI (we return none), 0C = no response data. First or only occurrence only.
    if (c.p2 !== 0x0c && c.p2 !== 0x00) return withSw(undefined, SW.wrongP1P2);
    if (c.kase !== 3 && c.kase !== 4) return withSw(undefined, SW.wrongLength);
    switch (c.p1) {
      case 0x04: {
        // Select by DF name; a prefix of the name selects the first application it matches.
        const found = this.apps.find((a) => startsWith(a.aid, c.data));
        if (!found) return withSw(undefined, SW.fileNotFound);
        if (found.id !== this.app) {
          // Security status belongs to the application: leaving it drops every verification.
          this.clearVolatile();
        }
        this.app = found.id;
        this.ef = null;
        return withSw(undefined, SW.ok);
      }
      case 0x00: {
        // Select by file id from the MF: only the MF itself (3F00) is known.
        if (c.data.length === 2 && c.data[0] === 0x3f && c.data[1] === 0x00) {
          this.clearVolatile();
          return withSw(undefined, SW.ok);
        }
        return withSw(undefined, SW.fileNotFound);
      }
      case 0x02: {
        // Select an EF under the current DF.
        if (c.data.length !== 2) return withSw(undefined, SW.wrongLength);
        const fid = (c.data[0] << 8) | c.data[1];
        if (!this.app || !this.efExists(this.app, fid)) return withSw(undefined, SW.fileNotFound);
        this.ef = fid;
        return withSw(undefined, SW.ok);
      }
      default:
        return withSw(undefined, SW.wrongP1P2);
    }
  }

  private efExists(app: AppId, fid: number): boolean {
    if (app === 'jpki') return (Object.values(JPKI_EF) as number[]).includes(fid);
    if (app === 'mykey') return fid === MYKEY_EF.mykeyId && this.file.mykey.idArea.reserved;
    return this.decoyEf(app, fid) !== undefined;
  }

  // --- READ BINARY (ISO 7816-4 11.3.3) -----------------------------------------------------------

  private readBinary(c: CommandApdu): Uint8Array {
    // P1 bit 8 set would address a short EF identifier, which the card does not offer.
    if (c.p1 & 0x80) return withSw(undefined, SW.wrongP1P2);
    if (c.kase !== 2) return withSw(undefined, SW.wrongLength);
    if (!this.app || this.ef === null) return withSw(undefined, SW.conditionsNotSatisfied);
    const content = this.readable(this.app, this.ef);
    if (typeof content === 'number') return withSw(undefined, content);
    const offset = (c.p1 << 8) | c.p2;
    if (offset >= content.length) return withSw(undefined, SW.offsetBeyondFile);
    const ne = c.ne ?? 256;
    const chunk = content.subarray(offset, offset + ne);
    // ISO 7816-4: fewer bytes than Ne because the file ended -> 6282 with what there is.
    return withSw(chunk, chunk.length < ne ? SW.endOfFile : SW.ok);
  }

  /** The content of a transparent EF, or the SW that refuses reading it. */
  private readable(app: AppId, fid: number): Uint8Array | number {
    const j = this.file.jpki;
    const der = (b64: string) => Uint8Array.from(Buffer.from(b64, 'base64'));
    if (app === 'jpki') {
      switch (fid) {
        case JPKI_EF.authCert:
          return der(j.authCert);
        case JPKI_EF.authCaCert:
          return der(j.authCaCert);
        case JPKI_EF.signCaCert:
          return der(j.signCaCert);
        case JPKI_EF.signCert:
          // The signing certificate names its holder: readable only after the signing PIN.
          return this.verified.signPin ? der(j.signCert) : SW.securityNotSatisfied;
        case JPKI_EF.token:
          return Uint8Array.from(Buffer.from(j.token.padEnd(JPKI_TOKEN_EF_SIZE, ' '), 'latin1'));
        default:
          // Keys and PINs are internal EFs, never transparent.
          return SW.incompatibleFile;
      }
    }
    if (app === 'mykey') {
      const area = this.file.mykey.idArea;
      return area.content ? u8(area.content) : new Uint8Array(8);
    }
    return this.decoyEf(app, fid) ?? SW.fileNotFound;
  }

  private decoyEf(app: AppId, fid: number): Uint8Array | undefined {
    const d = this.file.decoy;
    const ascii = (s: string) => Uint8Array.from(Buffer.from(s, 'utf8'));
    // Shapes are illustrative only; what matters is that the decoy number is in there to be leaked.
    if (app === 'kenmen-nyuryoku') {
      if (fid === 0x0001) return ascii(d.myNumber);
      if (fid === 0x0002) return ascii(`${d.name}\n${d.address}\n${d.birthDate}\n${d.sex}`);
    }
    if (app === 'kenmen' && fid === 0x0001) return ascii(`KENMEN ${d.myNumber} ${d.name}`);
    if (app === 'juki' && fid === 0x0001) return ascii(`JUKI ${d.myNumber} ${d.address}`);
    if (app === 'kyotsu' && fid === 0x0001) return ascii(`KYOTSU ${d.myNumber}`);
    return undefined;
  }

  // --- VERIFY (ISO 7816-4 11.5.6) ----------------------------------------------------------------

  private verify(c: CommandApdu): Uint8Array {
    if (c.p1 !== 0x00 || c.p2 !== 0x80) return withSw(undefined, SW.wrongP1P2);
    const which = this.currentPin();
    if (!which) return withSw(undefined, SW.conditionsNotSatisfied);
    const pin = this.file.jpki[which];
    // No data: report the tries left without using one (OpenSC's jpki driver relies on this).
    if (c.kase === 1) return withSw(undefined, swTriesLeft(pin.triesLeft));
    if (c.kase !== 3) return withSw(undefined, SW.wrongLength);
    if (pin.triesLeft === 0) return withSw(undefined, SW.refDataBlocked);
    const right = Buffer.from(pin.value, 'latin1');
    const match = right.length === c.data.length && timingSafeEqual(right, c.data);
    if (match) {
      const reset = pin.triesLeft !== pin.maxTries;
      pin.triesLeft = pin.maxTries;
      this.verified[which] = true;
      if (reset) this.changed();
      return withSw(undefined, SW.ok);
    }
    pin.triesLeft -= 1;
    this.verified[which] = false;
    this.changed();
    return withSw(undefined, swTriesLeft(pin.triesLeft));
  }

  private currentPin(): PinWhich | undefined {
    if (this.app !== 'jpki') return undefined;
    if (this.ef === JPKI_EF.authPin) return 'authPin';
    if (this.ef === JPKI_EF.signPin) return 'signPin';
    return undefined;
  }

  // --- COMPUTE DIGITAL SIGNATURE, JPKI style (proprietary CLA 80, INS 2A, P1P2 0080) ------------

  private sign(c: CommandApdu): Uint8Array {
    if (this.app !== 'jpki') return withSw(undefined, SW.insNotSupported);
    if (c.p1 !== 0x00 || c.p2 !== 0x80) return withSw(undefined, SW.wrongP1P2);
    if (c.kase !== 4 && c.kase !== 3) return withSw(undefined, SW.wrongLength);
    const which = this.ef === JPKI_EF.authKey ? 'authKey' : this.ef === JPKI_EF.signKey ? 'signKey' : undefined;
    if (!which) return withSw(undefined, SW.conditionsNotSatisfied);
    const pin: PinWhich = which === 'authKey' ? 'authPin' : 'signPin';
    if (this.file.jpki[pin].triesLeft === 0) return withSw(undefined, SW.authBlocked);
    if (!this.verified[pin]) return withSw(undefined, SW.securityNotSatisfied);
    // PKCS#1 v1.5 type-1 padding needs 11 bytes of the 256-byte block (RFC 8017 9.2).
    if (c.data.length > 256 - 11) return withSw(undefined, SW.wrongLength);
    const sig = privateEncrypt({ key: this.keys[which], padding: constants.RSA_PKCS1_PADDING }, c.data);
    return withSw(sig, SW.ok);
  }

  // --- MyKey application: GET CHALLENGE, EXTERNAL AUTHENTICATE, CREATE FILE, UPDATE BINARY -------

  private getChallenge(c: CommandApdu): Uint8Array {
    if (this.app !== 'mykey') return withSw(undefined, SW.insNotSupported);
    if (c.p1 !== 0 || c.p2 !== 0) return withSw(undefined, SW.wrongP1P2);
    if (c.kase !== 2 || c.ne !== 8) return withSw(undefined, SW.wrongLength);
    this.challenge = Uint8Array.from(this.random(8));
    this.mykeyAuthenticated = false;
    return withSw(this.challenge, SW.ok);
  }

  private externalAuthenticate(c: CommandApdu): Uint8Array {
    if (this.app !== 'mykey') return withSw(undefined, SW.insNotSupported);
    if (c.p1 !== 0x00 || c.p2 !== 0x01) return withSw(undefined, SW.wrongP1P2);
    if (c.kase !== 3 || c.data.length !== 32) return withSw(undefined, SW.wrongLength);
    const challenge = this.challenge;
    // A challenge answers one attempt, right or wrong.
    this.challenge = null;
    if (!challenge) return withSw(undefined, SW.conditionsNotSatisfied);
    const expected = createHmac('sha256', Buffer.from(this.file.mykey.writeKey, 'hex')).update(challenge).digest();
    if (!timingSafeEqual(expected, c.data)) return withSw(undefined, SW.verifyFailed);
    this.mykeyAuthenticated = true;
    return withSw(undefined, SW.ok);
  }

  private createFile(c: CommandApdu): Uint8Array {
    if (this.app !== 'mykey') return withSw(undefined, SW.insNotSupported);
    if (c.p1 !== 0 || c.p2 !== 0) return withSw(undefined, SW.wrongP1P2);
    if (c.kase !== 3 || c.data.length !== 2) return withSw(undefined, SW.wrongLength);
    if (((c.data[0] << 8) | c.data[1]) !== MYKEY_EF.mykeyId) return withSw(undefined, SW.wrongData);
    if (!this.mykeyAuthenticated) return withSw(undefined, SW.securityNotSatisfied);
    if (this.file.mykey.idArea.reserved) return withSw(undefined, SW.fileExists);
    this.file.mykey.idArea = { reserved: true, content: '' };
    // ISO 7816-4 11.4.2: the created file becomes the current file.
    this.ef = MYKEY_EF.mykeyId;
    this.changed();
    return withSw(undefined, SW.ok);
  }

  private updateBinary(c: CommandApdu): Uint8Array {
    if (this.app !== 'mykey') return withSw(undefined, SW.insNotSupported);
    if (c.p1 & 0x80) return withSw(undefined, SW.wrongP1P2);
    if (c.kase !== 3) return withSw(undefined, SW.wrongLength);
    if (this.ef === null) return withSw(undefined, SW.conditionsNotSatisfied);
    if (!this.mykeyAuthenticated) return withSw(undefined, SW.securityNotSatisfied);
    const offset = (c.p1 << 8) | c.p2;
    if (offset >= 8) return withSw(undefined, SW.offsetBeyondFile);
    if (offset + c.data.length > 8) return withSw(undefined, SW.wrongLength);
    const area = this.file.mykey.idArea;
    const content = area.content ? u8(area.content) : new Uint8Array(8);
    content.set(c.data, offset);
    area.content = toHex(content);
    this.changed();
    return withSw(undefined, SW.ok);
  }
}
