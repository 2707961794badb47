// PC/SC reader state bits (pcsclite pcsclite.h, identical in winscard.h) and the pure rule that turns
// two successive reader states into card events: changes = old ^ new.

/** SCARD_STATE_* bits of dwEventState. */
export const SCARD_STATE = {
  UNAWARE: 0x0000,
  IGNORE: 0x0001,
  CHANGED: 0x0002,
  UNKNOWN: 0x0004,
  UNAVAILABLE: 0x0008,
  EMPTY: 0x0010,
  PRESENT: 0x0020,
  ATRMATCH: 0x0040,
  EXCLUSIVE: 0x0080,
  INUSE: 0x0100,
  MUTE: 0x0200,
} as const;

/** SCardConnect share modes, preferred protocols and SCardDisconnect dispositions. */
export const SCARD_SHARE = { EXCLUSIVE: 1, SHARED: 2 } as const;
export const SCARD_PROTOCOL = { T0: 1, T1: 2 } as const;
export const SCARD_DISPOSITION = { LEAVE: 0, RESET: 1, UNPOWER: 2 } as const;

/** A card transition seen between two reader states. */
export type CardTransition = 'removed' | 'present' | 'mute';

/**
 * The card transitions between reader state `prev` and `next`, in order. pcsc-lite keeps an event
 * counter in the upper 16 bits of dwEventState; when it moved while PRESENT stayed set, the card was
 * taken away and put back between two reports, which is a removal followed by a new touch.
 */
export function cardTransitions(prev: number, next: number): CardTransition[] {
  const changes = prev ^ next;
  const wasPresent = (prev & SCARD_STATE.PRESENT) !== 0;
  const isPresent = (next & SCARD_STATE.PRESENT) !== 0;
  const out: CardTransition[] = [];
  if (wasPresent && !isPresent) out.push('removed');
  else if (wasPresent && isPresent && prev >>> 16 !== next >>> 16) out.push('removed');
  if (isPresent && (!wasPresent || out.length > 0 || (changes & SCARD_STATE.MUTE) !== 0)) {
    out.push(next & SCARD_STATE.MUTE ? 'mute' : 'present');
  }
  return out;
}
