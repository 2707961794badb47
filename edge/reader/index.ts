// The edge's reader layer: the one door to PC/SC. Everything else in the edge (lookup, register) and
// provisioning's card writer use these exports, never pcsclite directly.
export { ReaderManager, type ReaderEvents, type ReaderManagerOptions, type ConnectOptions } from './reader-manager.ts';
export { TouchPipeline, type TouchEvents, type TouchPipelineOptions } from './touch.ts';
export { CardSession, type CardSessionOptions, type RawCard, type ResponseApdu, type ApduTraceHook } from './transport.ts';
export { readIdentity, readIdentityNow, type CardIdentity } from './identity.ts';
export { readMyKeyArea, type MyKeyArea } from './mykey-app.ts';
export { readAuthCert, readAuthCaCert, verifyPin, pinTriesLeft, signChallenge, type PinResult, type PinStatus } from './jpki.ts';
export { ApduGuard, checkApdu, nextGuardState, INITIAL_GUARD_STATE, type GuardOptions, type GuardState, type GuardRule, type GuardVerdict } from './guard.ts';
export { sw, isOk, swMeaning, triesLeft, SW } from './status-words.ts';
export { consoleReaderLog, silentReaderLog, type ReaderLog } from './log.ts';
export type { PcscFactory } from './pcsc-port.ts';
export { ReaderHealer, adviceFor, isReaderTrouble, type ReaderAdvice, type ReaderHealerEvents, type ReaderHealerOptions, type HealerSources } from './reader-health.ts';
export { KNOWN_READERS, scanUsbReaders, knownReader, usbDevicePath, portDisablePath, type KnownReader, type UsbReader, type UsbRoots } from './usb-readers.ts';
export { sysfsResetter, resetMethod, USBDEVFS_RESET, type ResetMethod, type UsbResetter } from './usb-reset.ts';
