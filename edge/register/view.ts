// What the counter registration flow shows, step by step (the kiosk page and the command socket
// render it). It never carries the card's identity or the PIN.

/** The registration flow's public state. */
export type RegistrationView =
  | { step: 'off' }
  | { step: 'touch' }
  | { step: 'service_user_id' }
  | { step: 'pin'; triesLeft?: number; retry?: 'pin_wrong' | 'card_removed' | 'card_error' }
  | { step: 'sending' }
  | { step: 'done'; serviceUserId: string; replaced: boolean }
  | { step: 'failed'; code: string };

export type RegistrationStep = RegistrationView['step'];
