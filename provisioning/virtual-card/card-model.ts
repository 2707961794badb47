// The virtual card's vocabulary: the faults a test can ask for, the status words it answers with
// (ISO/IEC 7816-4), the applications it holds (with the My Number ones as decoys, CARD.md) and the
// byte helpers of its responses. card.ts is the state machine that uses them. A test double: it
// keeps its own definitions and shares no code with the reader it is tested against.

/** Faults a test can ask the card to show. Counts are of APDUs answered since the card was made. */
export interface CardFaults {
  /**
   * After this many APDUs the card is taken away: the next APDU is not answered and the slot closes
   * its connection (with `dropConnectionMidResponse`, half of the response is sent first).
   */
  removeAfterApdus?: number;
  /** Every response is held back this long by the slot (a slow card or a weak field). */
  delayMs?: number;
  /** After this many APDUs every response is the single byte FF: no room for a status word. */
  garbageAfterApdus?: number;
  /** After this many APDUs every response that carries data loses its last data byte (SW kept). */
  wrongLengthAfterApdus?: number;
  /**
   * The connection drops in the middle of a response: at `removeAfterApdus` (or the first APDU when
   * that is unset), half the response goes out and then the card is gone.
   */
  dropConnectionMidResponse?: boolean;
}

/** What happened to one exchange besides its response; the slot acts on it. */
export type ExchangeFault = 'remove' | 'drop-mid-response';

/** Status words used by the card (ISO/IEC 7816-4:2020 5.6). */
export const SW = {
  ok: 0x9000,
  endOfFile: 0x6282, // end of file reached before reading Ne bytes
  verifyFailed: 0x6300, // authentication failed (EXTERNAL AUTHENTICATE)
  wrongLength: 0x6700,
  incompatibleFile: 0x6981, // command incompatible with file structure
  securityNotSatisfied: 0x6982,
  authBlocked: 0x6983,
  refDataBlocked: 0x6984, // reference data not usable: the PIN is blocked
  conditionsNotSatisfied: 0x6985,
  wrongData: 0x6a80,
  fileNotFound: 0x6a82,
  wrongP1P2: 0x6a86,
  fileExists: 0x6a89,
  offsetBeyondFile: 0x6b00,
  insNotSupported: 0x6d00,
  claNotSupported: 0x6e00,
} as const;

/** ISO 7816-4 11.5.7: 63Cx, x = tries left. */
export const swTriesLeft = (n: number) => 0x63c0 | Math.min(15, n);

// The applications that hold the My Number (CARD.md). Present on the virtual card with decoy data.
export const DECOY_APPS = [
  { id: 'kenmen-nyuryoku', aid: 'd392100031000101' + '0408' }, // 券面事項入力補助AP
  { id: 'kenmen', aid: 'd392100031000101' + '0402' }, // 券面AP
  { id: 'juki', aid: 'd392100031000101' + '0401' }, // 住基AP
  { id: 'kyotsu', aid: 'd392100031000101' + '0100' }, // 共通カードAP
] as const;

export type AppId = 'jpki' | 'mykey' | (typeof DECOY_APPS)[number]['id'];

export interface AppEntry {
  id: AppId;
  aid: Uint8Array;
}

export type PinWhich = 'authPin' | 'signPin';

/** One (command, response) pair as hex, in order. */
export interface TraceEntry {
  apdu: string;
  response: string;
}

export const u8 = (hex: string) => Uint8Array.from(Buffer.from(hex, 'hex'));
export const startsWith = (whole: Uint8Array, prefix: Uint8Array) => prefix.length <= whole.length && prefix.every((b, i) => whole[i] === b);
export const withSw = (data: Uint8Array | undefined, sw: number) => {
  const n = data?.length ?? 0;
  const out = new Uint8Array(n + 2);
  if (data) out.set(data);
  out[n] = sw >> 8;
  out[n + 1] = sw & 0xff;
  return out;
};
