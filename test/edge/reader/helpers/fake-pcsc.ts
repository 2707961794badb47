// A stand-in for the pcsclite binding: contexts and readers driven by the test.
import { EventEmitter } from 'node:events';
import type { PcscContext, PcscFactory, PcscReader, PcscStatus } from '../../../../edge/reader/pcsc-port.ts';

export class FakeReader extends EventEmitter implements PcscReader {
  connected = false;
  closed = 0;
  transmitted: Buffer[] = [];
  dispositions: number[] = [];
  answer: (apdu: Buffer) => Buffer | Error = () => Buffer.from([0x90, 0x00]);
  constructor(readonly name: string) {
    super();
  }
  status(s: PcscStatus): void {
    this.emit('status', s);
  }
  connect(_o: { share_mode: number; protocol: number }, cb: (err: Error | null | undefined, protocol: number) => void): void {
    setImmediate(() => {
      this.connected = true;
      cb(null, 2);
    });
  }
  disconnect(disposition: number, cb: (err: Error | null | undefined) => void): void {
    this.dispositions.push(disposition);
    setImmediate(() => {
      this.connected = false;
      cb(null);
    });
  }
  transmit(data: Uint8Array, _len: number, _p: number, cb: (err: Error | null | undefined, response: Buffer) => void): void {
    const sent = Buffer.from(data);
    this.transmitted.push(sent);
    setImmediate(() => {
      const r = this.answer(Buffer.from(sent));
      if (r instanceof Error) cb(r, Buffer.alloc(0));
      else cb(null, r);
    });
  }
  close(): void {
    this.closed++;
  }
}

export class FakeContext extends EventEmitter implements PcscContext {
  closed = 0;
  close(): void {
    this.closed++;
  }
  addReader(name: string): FakeReader {
    const r = new FakeReader(name);
    this.emit('reader', r);
    return r;
  }
}

/** A factory that fails `failures` times (as pcsclite does while pcscd is down), then hands out contexts. */
export function fakePcsc(failures = 0): PcscFactory & { contexts: FakeContext[]; attempts: number } {
  const f = Object.assign(
    () => {
      f.attempts++;
      if (f.attempts <= failures) throw new Error('SCardEstablishContext error: Service not available.(0x8010001D)');
      const c = new FakeContext();
      f.contexts.push(c);
      return c;
    },
    { contexts: [] as FakeContext[], attempts: 0 },
  );
  return f;
}
