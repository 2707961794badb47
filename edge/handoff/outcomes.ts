// Outcomes of a touch, as the hand-off targets, the kiosk page and the config name them.

/** Every outcome of a touch. */
export const OUTCOMES = ['linked', 'not_linked', 'refused', 'degraded'] as const;

/** One outcome of a touch. */
export type Outcome = (typeof OUTCOMES)[number];
