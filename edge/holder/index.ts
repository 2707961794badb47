// The holder's home companion: a loopback page that lets the holder create and manage their MyKey ID
// with their My Number Card on a PC card reader.
export { HolderCompanion, parseHubUrl, type HolderCompanionOptions } from './companion.ts';
export { HolderFlows, type FlowRequest, type FlowResult } from './flows.ts';
export { HolderHubClient } from './hub-client.ts';
export { HolderServer, type HolderServerOptions } from './server.ts';
export { guardHolderRequest, HOLDER_TOKEN_HEADER } from './guard.ts';
export { HOLDER_MESSAGES, type Language } from './messages.ts';
