// Puts a VirtualCard into a vsmartcard vpcd reader slot of the real pcscd.
//
// vpcd (the pcscd driver) listens on 127.0.0.1:35963 for slot 0 and :35964 for slot 1; the card
// connects as a TCP client. Connecting is inserting the card, closing the socket is taking it away.
// Every message, both ways, is a 2-byte big-endian length and a payload. From vpcd a 1-byte payload
// is a control code (00 power off, 01 power on, 02 reset, 04 get ATR, answered with the ATR); a
// longer one is a command APDU, answered with response data + SW.
import { connect, type Socket } from 'node:net';
import { MyKeyError } from '../../shared/errors.ts';
import type { VirtualCard } from './card.ts';
import { quickAckArmer, quickAckUnavailableReason } from './quick-ack.ts';

/** vpcd's port for a slot: 35963 + slot. */
export const VPCD_BASE_PORT = 35963;

const CTRL = { powerOff: 0x00, powerOn: 0x01, reset: 0x02, getAtr: 0x04 } as const;

export type SlotLog = (level: 'info' | 'warn', message: string) => void;

export interface VpcdSlotOptions {
  host?: string;
  /** 35963 is slot 0, 35964 slot 1 (overrides `slot`) */
  port?: number;
  slot?: 0 | 1;
  log?: SlotLog;
  /** Re-arm TCP_QUICKACK after every read (default true; false only to measure the difference). */
  quickAck?: boolean;
  /** How long insert() waits for vpcd to take the card (default 5000 ms). */
  connectTimeoutMs?: number;
  /** Called when the card leaves the slot for any reason other than remove(). */
  onRemoved?: (reason: 'fault' | 'peer-closed' | 'error') => void;
}

let quickAckWarned = false;

export class VpcdSlot {
  private readonly host: string;
  private readonly port: number;
  private readonly log: SlotLog;
  private readonly quickAck: boolean;
  private readonly connectTimeoutMs: number;
  private readonly onRemoved?: VpcdSlotOptions['onRemoved'];
  private socket: Socket | null = null;
  private card: VirtualCard | null = null;
  private pending: Buffer = Buffer.alloc(0);
  /** Messages are answered strictly in order, even when a fault delays one. */
  private queue: Promise<void> = Promise.resolve();
  private removing = false;
  /** Set while insert() waits for vpcd's first message. */
  private accepted: (() => void) | undefined;
  /** Counts for diagnostics: APDUs answered, control messages seen. */
  readonly stats = { apdus: 0, controls: 0, quickAcks: 0 };

  constructor(opts: VpcdSlotOptions = {}) {
    this.host = opts.host ?? '127.0.0.1';
    this.port = opts.port ?? VPCD_BASE_PORT + (opts.slot ?? 0);
    this.log = opts.log ?? ((level, msg) => (level === 'warn' ? console.warn(`[vpcd-slot] ${msg}`) : undefined));
    this.quickAck = opts.quickAck ?? true;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
    this.onRemoved = opts.onRemoved;
  }

  get inserted(): boolean {
    return this.socket !== null;
  }

  /**
   * Connects to vpcd: the reader sees the card arrive. Resolves once vpcd has accepted the card and
   * spoken to it (asked for the ATR or powered it), not merely when TCP connected: a connection can sit
   * in the listen backlog while vpcd still believes the previous card is there.
   */
  insert(card: VirtualCard): Promise<void> {
    if (this.socket) return Promise.reject(new MyKeyError('conflict', 'a card is already in this slot'));
    return new Promise<void>((resolve, reject) => {
      const socket = connect({ host: this.host, port: this.port, noDelay: true });
      let connected = false;
      const fail = (err: MyKeyError) => {
        clearTimeout(timer);
        this.accepted = undefined;
        this.removing = true;
        socket.destroy();
        if (this.socket === socket) {
          this.socket = null;
          this.card = null;
        }
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(
          connected
            ? new MyKeyError('reader_unavailable', `vpcd on ${this.host}:${this.port} did not take the card within ${this.connectTimeoutMs} ms (is another card in this slot?)`)
            : this.unavailable(new Error(`no connection within ${this.connectTimeoutMs} ms`)),
        );
      }, this.connectTimeoutMs);
      socket.once('error', (err) => {
        if (!connected) fail(this.unavailable(err));
      });
      socket.once('connect', () => {
        connected = true;
        this.accepted = () => {
          clearTimeout(timer);
          this.accepted = undefined;
          resolve();
        };
        this.attach(socket, card);
      });
      socket.once('close', () => {
        if (this.accepted) fail(new MyKeyError('reader_unavailable', `vpcd on ${this.host}:${this.port} closed the connection before taking the card`));
      });
    });
  }

  /** Closes the connection: the reader sees the card gone. Resolves once the socket is closed. */
  remove(): Promise<void> {
    const socket = this.socket;
    if (!socket) return Promise.resolve();
    this.removing = true;
    return new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.destroy();
    });
  }

  private unavailable(cause: unknown): MyKeyError {
    return new MyKeyError('reader_unavailable', `pcscd with vsmartcard-vpcd is not listening on ${this.host}:${this.port} - install pcscd vsmartcard-vpcd and start pcscd`, { cause });
  }

  private attach(socket: Socket, card: VirtualCard): void {
    this.socket = socket;
    this.card = card;
    this.pending = Buffer.alloc(0);
    this.removing = false;
    // A contactless card is powered by the field the moment it arrives. pcscd may also miss a quick
    // remove-and-insert between two polls and keep treating the slot as powered, so do not wait for 01.
    card.powerOn();
    socket.setNoDelay(true);
    let arm: (() => boolean) | null = null;
    if (this.quickAck) {
      arm = quickAckArmer(socket);
      if (!arm && !quickAckWarned) {
        quickAckWarned = true;
        this.log('warn', `TCP_QUICKACK unavailable, each APDU may wait for a delayed ACK: ${quickAckUnavailableReason()}`);
      }
    }
    socket.on('data', (chunk: Buffer) => {
      // vpcd sends the length header and the APDU separately; ACK at once so its Nagle lets the APDU go.
      if (arm && arm()) this.stats.quickAcks++;
      this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
      this.drain();
    });
    socket.on('error', (err) => {
      this.log('warn', `connection to vpcd failed: ${err.message}`);
    });
    socket.on('close', () => {
      const byUs = this.removing;
      if (this.socket !== socket) return;
      this.socket = null;
      this.card = null;
      this.pending = Buffer.alloc(0);
      if (!byUs) this.onRemoved?.('peer-closed');
    });
  }

  /** Splits the buffered bytes into whole messages; partial ones wait for more data. */
  private drain(): void {
    while (this.pending.length >= 2) {
      const len = this.pending.readUInt16BE(0);
      if (this.pending.length < 2 + len) return;
      const payload = this.pending.subarray(2, 2 + len);
      this.pending = this.pending.subarray(2 + len);
      const msg = Uint8Array.from(payload);
      this.queue = this.queue.then(() => this.handle(msg)).catch((err) => this.log('warn', `message failed: ${(err as Error).message}`));
    }
  }

  private async handle(msg: Uint8Array): Promise<void> {
    const card = this.card;
    const socket = this.socket;
    if (!card || !socket || socket.destroyed) return;
    if (msg.length === 0) return;
    this.accepted?.();
    if (msg.length === 1) {
      this.stats.controls++;
      switch (msg[0]) {
        case CTRL.powerOff:
          card.powerOff();
          return;
        case CTRL.powerOn:
          card.powerOn();
          return;
        case CTRL.reset:
          card.reset();
          return;
        case CTRL.getAtr:
          this.send(socket, card.atr);
          return;
        default:
          this.log('warn', `unknown vpcd control code ${msg[0]}`);
          return;
      }
    }
    this.stats.apdus++;
    let response: Uint8Array;
    let fault: string | undefined;
    try {
      ({ response, fault } = card.exchange(msg));
    } catch (err) {
      // An APDU to an unpowered card: vpcd powers on first, so this is a protocol slip. 6F00 = no diagnosis.
      this.log('warn', `card refused the APDU: ${(err as Error).message}`);
      response = Uint8Array.of(0x6f, 0x00);
    }
    const delay = card.faultSettings.delayMs;
    if (delay) await new Promise((r) => setTimeout(r, delay));
    if (fault === 'remove') {
      this.closeForFault(socket);
      return;
    }
    if (fault === 'drop-mid-response') {
      const frame = this.frame(response);
      socket.write(frame.subarray(0, Math.max(1, Math.floor(frame.length / 2))));
      setImmediate(() => this.closeForFault(socket));
      return;
    }
    this.send(socket, response);
  }

  private closeForFault(socket: Socket): void {
    if (socket.destroyed) return;
    this.removing = true;
    socket.destroy();
    this.onRemoved?.('fault');
  }

  private frame(payload: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(2 + payload.length);
    out.writeUInt16BE(payload.length, 0);
    out.set(payload, 2);
    return out;
  }

  private send(socket: Socket, payload: Uint8Array): void {
    // One write for length and payload: our side never makes vpcd wait for a second segment.
    if (!socket.destroyed) socket.write(this.frame(payload));
  }
}
