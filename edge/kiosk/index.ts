// The counter tablet's local page.
export { KioskServer, type KioskActions, type KioskServerOptions, type ActionReply } from './server.ts';
export { LANGUAGES, MESSAGES, type Language, type MessageKey } from './messages.ts';
export { resultView, type KioskHealth, type KioskReaderView, type KioskView } from './view.ts';
