// PIN-checked touch (#14): the card's JPKI signature over a fresh challenge, checked at the edge.
export { PinTouchFlow, type PinTouchCards, type PinTouchFlowOptions, type PinVerdict } from './flow.ts';
export { attachPinTouchRead, readPinTouchIdentity, pinTouchReadOf, type PinTouchRead } from './card-read.ts';
export { bindCertificate, type BindingInput, type BindingVerdict } from './binding.ts';
export { checkCertificate, makeChallenge, parseAnchors, touchMessage, verifyTouchSignature, PIN_TOUCH_LABEL, PIN_TOUCH_CHALLENGE_BYTES } from './verify.ts';
export type { PinTouchView } from './view.ts';
