// Hand-off (サービスID引渡し): targets and the fan-out.
export { Handoff, targetsFromConfig, type RoutedTarget } from './handoff.ts';
export { WebhookTarget, type WebhookTargetOptions } from './webhook.ts';
export { StreamTarget, SocketTarget, removeStaleSocket } from './json-lines.ts';
export { OUTCOMES, type Outcome } from './outcomes.ts';
export { payloadOf, type HandoffTarget, type TouchResult } from './types.ts';
export { KeyboardTarget, type KeyboardTargetOptions } from './keyboard/index.ts';
