// The one thing the kiosk page shows: the current screen, built from the current touch or the
// registration flow. No earlier touch survives here (no usage history on the page either).
import type { TouchResult } from '../handoff/types.ts';
import type { PinTouchView } from '../pintouch/view.ts';
import type { RegistrationView } from '../register/view.ts';

/** Health shown as a banner. */
export type KioskHealth = 'ok' | 'degraded' | 'stale' | 'clock_unsure' | 'not_synced';

/** The reader's trouble as the page shows it (edge/reader/reader-health.ts); absent while it works. */
export interface KioskReaderView {
  state: 'missing' | 'unresponsive' | 'resetting' | 'needs_replug';
  /** What the shop is asked to do. */
  advice: 'wait' | 'connect' | 'replug' | 'technician';
}

/** What the page renders. */
export interface KioskView {
  screen: 'idle' | 'result' | 'register' | 'pin';
  health: KioskHealth;
  registrationEnabled: boolean;
  result?: {
    outcome: TouchResult['outcome'];
    serviceUserId?: string;
    reason?: string;
    answer?: 'linked' | 'not_linked';
    /** The page offers registration for this card (not linked, registration on). */
    canRegister: boolean;
  };
  register?: RegistrationView;
  /** The PIN-checked touch's PIN pad (#14). */
  pin?: Exclude<PinTouchView, { step: 'off' }>;
  reader?: KioskReaderView;
}

/** The page view of a touch result (only what the page shows; never the MyKey ID). */
export function resultView(r: TouchResult, registrationEnabled: boolean): NonNullable<KioskView['result']> {
  const notLinked = r.outcome === 'not_linked' || (r.outcome === 'degraded' && r.answer === 'not_linked');
  return {
    outcome: r.outcome,
    ...(r.serviceUserId !== undefined ? { serviceUserId: r.serviceUserId } : {}),
    ...(r.reason !== undefined ? { reason: r.reason } : {}),
    ...(r.answer !== undefined ? { answer: r.answer } : {}),
    canRegister: registrationEnabled && notLinked && r.outcome === 'not_linked',
  };
}
