// What the PIN-checked touch shows on the kiosk page (#14). It never carries the card's identity, the
// certificate or the PIN: only the step, and the tries left the card reported.

/** The PIN-checked touch's public state. */
export type PinTouchView =
  | { step: 'off' }
  /** The PIN pad; `retry` after a wrong PIN, with the tries left. */
  | { step: 'pin'; triesLeft?: number; retry?: 'pin_wrong' }
  /** The card is verifying the PIN and signing; the edge checks the signature. */
  | { step: 'checking' };
