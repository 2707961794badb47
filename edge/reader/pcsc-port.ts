// The part of pcsclite the reader layer uses, as interfaces, so the manager can be driven by a test
// double, and the native addon is loaded only when a real PC/SC stack is wanted.
import { createRequire } from 'node:module';

/** A reader status report from pcsclite. */
export interface PcscStatus {
  state: number;
  atr?: Uint8Array;
}

/** A pcsclite CardReader, as far as the reader layer uses it. */
export interface PcscReader {
  readonly name: string;
  readonly connected: boolean;
  on(event: 'status', listener: (status: PcscStatus) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  removeAllListeners(event?: string): unknown;
  connect(options: { share_mode: number; protocol: number }, cb: (err: Error | null | undefined, protocol: number) => void): void;
  disconnect(disposition: number, cb: (err: Error | null | undefined) => void): void;
  transmit(data: Uint8Array, resLen: number, protocol: number, cb: (err: Error | null | undefined, response: Buffer) => void): void;
  close(): void;
}

/** A pcsclite context (the object `pcsclite()` returns), as far as the reader layer uses it. */
export interface PcscContext {
  on(event: 'reader', listener: (reader: PcscReader) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  removeAllListeners(event?: string): unknown;
  close(): void;
}

/** Creates a PC/SC context; throws when the PC/SC service cannot be reached. */
export type PcscFactory = () => PcscContext;

/** The real pcsclite (native addon), loaded on first use. */
export const nativePcsc: PcscFactory = () => {
  const require = createRequire(import.meta.url);
  const pcsclite = require('pcsclite') as () => PcscContext;
  return pcsclite();
};
