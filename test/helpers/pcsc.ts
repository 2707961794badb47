// Test helpers for the real PC/SC stack: pcscd with the vsmartcard vpcd driver, the virtual card in
// one of its two slots, and a thin promise wrapper over the npm `pcsclite` binding.
//
//   await requirePcscd();                       // fails fast, with what to install or start
//   await withCard(cardFile, { slot: 0 }, async ({ card, readerName }) => { ... });
//
// Tests that use these belong in `*.serial.test.ts` files: the two slots are shared by the machine.
import { closeSync, existsSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pcsclite from 'pcsclite';
import type { CardFile } from '../../provisioning/virtual-card/card-file.ts';
import { VirtualCard, type VirtualCardOptions } from '../../provisioning/virtual-card/card.ts';
import { VPCD_BASE_PORT, VpcdSlot, type VpcdSlotOptions } from '../../provisioning/virtual-card/vpcd-slot.ts';
import type { TouchDesk } from '../../edge/lookup/index.ts';
import { ReaderManager, TouchPipeline, silentReaderLog } from '../../edge/reader/index.ts';

/** The PC/SC reader name pcscd gives a vpcd slot (FRIENDLYNAME "Virtual PCD" in /etc/reader.conf.d/vpcd). */
export function vpcdReaderName(slot: 0 | 1): string {
  return `Virtual PCD 00 0${slot}`;
}

const INSTALL_HINT = 'install pcscd vsmartcard-vpcd (Debian: apt-get install pcscd vsmartcard-vpcd) and start pcscd';

/** True when a TCP socket listens on `port` (any local address), per /proc/net/tcp{,6}. */
function listening(port: number): boolean | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  let seen = false;
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    seen = true;
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // local_address is ADDR:PORT in hex; st 0A is TCP_LISTEN.
      if (cols[1]?.endsWith(`:${hexPort}`) && cols[3] === '0A') return true;
    }
  }
  return seen ? false : undefined;
}

/** The machine-wide lock file that keeps test processes of different runners off each other's slots. */
export const VPCD_LOCK_PATH = join(tmpdir(), 'mykey-vpcd-slots.lock');
let lockHeld = false;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the vpcd slots for this process until it exits. The `.serial.` rule of test/run.ts only holds
 * inside one runner; several runners (helpers working side by side) meet here. A lock whose owner
 * died is taken over. Waits up to `timeoutMs`, then throws.
 */
export async function lockVpcdSlots(timeoutMs = 180_000): Promise<void> {
  if (lockHeld) return;
  const deadline = Date.now() + timeoutMs;
  let told = false;
  for (;;) {
    try {
      const fd = openSync(VPCD_LOCK_PATH, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      lockHeld = true;
      process.once('exit', () => {
        try {
          if (readFileSync(VPCD_LOCK_PATH, 'utf8') === String(process.pid)) unlinkSync(VPCD_LOCK_PATH);
        } catch {
          /* already gone */
        }
      });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner = NaN;
    try {
      owner = Number(readFileSync(VPCD_LOCK_PATH, 'utf8'));
    } catch {
      continue; // released between our two calls
    }
    if (!Number.isInteger(owner) || owner <= 0 || !pidAlive(owner)) {
      try {
        unlinkSync(VPCD_LOCK_PATH);
      } catch {
        /* someone else cleaned up */
      }
      continue;
    }
    if (Date.now() > deadline) throw new Error(`the vpcd slots are held by process ${owner} (${VPCD_LOCK_PATH})`);
    if (!told) {
      told = true;
      console.log(`[pcsc] waiting for the vpcd slots, held by process ${owner} (${VPCD_LOCK_PATH})`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Checks, quickly and without side effects, that pcscd runs and vpcd listens on both slot ports.
 * Listening is read from /proc rather than probed by connecting, because a connection to vpcd is a
 * card insertion. Throws an Error that says what to install or start. Then takes the machine-wide
 * slot lock (lockVpcdSlots) unless `lock: false`, waiting while another test process holds it.
 */
export async function requirePcscd(opts: { lock?: boolean } = {}): Promise<void> {
  const sock = process.env.PCSCLITE_CSOCK_NAME ?? '/run/pcscd/pcscd.comm';
  if (!existsSync(sock)) {
    throw new Error(`pcscd is not running (no ${sock}): ${INSTALL_HINT}`);
  }
  for (const slot of [0, 1] as const) {
    const port = VPCD_BASE_PORT + slot;
    const state = listening(port);
    if (state === false) {
      throw new Error(`vpcd is not listening on 127.0.0.1:${port} (slot ${slot}): ${INSTALL_HINT}; check /etc/reader.conf.d/vpcd`);
    }
  }
  if (opts.lock ?? true) await lockVpcdSlots();
}

/** A pcsclite reader object (the package declares the type but does not export it). */
export type PcscReader = Parameters<Parameters<ReturnType<typeof pcsclite>['on']>[1]>[0];

/** One pcsclite context that finds readers by name; close() it at the end of the test. */
export class PcscClient {
  private readonly pcsc = pcsclite();
  private readonly readers = new Map<string, PcscReader>();
  private readonly waiters = new Set<() => void>();
  /** Last known state bits per reader (from 'status' events). */
  readonly states = new Map<string, number>();
  private error: unknown;

  constructor() {
    this.pcsc.on('error', (err) => {
      this.error = err;
      this.wake();
    });
    this.pcsc.on('reader', (reader) => {
      const r = reader as PcscReader;
      this.readers.set(r.name, r);
      r.on('error', () => undefined);
      r.on('status', (status) => {
        this.states.set(r.name, status.state);
        this.wake();
      });
      r.on('end', () => {
        this.readers.delete(r.name);
        this.wake();
      });
      this.wake();
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves when `check` returns a value, re-checked on every reader event; rejects after timeoutMs. */
  private until<T>(what: string, timeoutMs: number, check: () => T | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const done = (fn: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(tick);
        fn();
      };
      const tick = () => {
        if (this.error) return done(() => reject(new Error(`pcsclite: ${String(this.error)}`)));
        const v = check();
        if (v !== undefined) done(() => resolve(v));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`))), timeoutMs);
      this.waiters.add(tick);
      tick();
    });
  }

  /** Names of the readers seen so far. */
  names(): string[] {
    return [...this.readers.keys()];
  }

  /** The reader of that name, once pcsclite reports it. */
  reader(name: string, timeoutMs = 3000): Promise<PcscReader> {
    return this.until(`reader ${name}`, timeoutMs, () => this.readers.get(name));
  }

  /** Resolves when the reader reports a card present (true) or the slot empty (false). */
  async waitForCard(name: string, present: boolean, timeoutMs = 3000): Promise<void> {
    const r = await this.reader(name, timeoutMs);
    await this.until(`${name} ${present ? 'present' : 'empty'}`, timeoutMs, () => {
      const s = this.states.get(name);
      if (s === undefined) return undefined;
      const isPresent = (s & r.SCARD_STATE_PRESENT) !== 0;
      const isEmpty = (s & r.SCARD_STATE_EMPTY) !== 0;
      return (present ? isPresent : isEmpty) ? true : undefined;
    });
  }

  /** Connects (shared) to the card in the reader and returns the negotiated protocol. */
  async connect(name: string): Promise<number> {
    const r = await this.reader(name);
    return new Promise((resolve, reject) => r.connect({ share_mode: r.SCARD_SHARE_SHARED }, (err, protocol) => (err ? reject(err) : resolve(protocol))));
  }

  /** Sends one APDU; resolves with the response (data + SW). */
  async transmit(name: string, apdu: Uint8Array, protocol: number): Promise<Buffer> {
    const r = await this.reader(name);
    return new Promise((resolve, reject) => r.transmit(Buffer.from(apdu), 258, protocol, (err, data) => (err ? reject(err) : resolve(data))));
  }

  /** Disconnects, leaving the card as it is. */
  async disconnect(name: string): Promise<void> {
    const r = this.readers.get(name);
    if (!r || !r.connected) return;
    await new Promise<void>((resolve) => r.disconnect(r.SCARD_LEAVE_CARD, () => resolve()));
  }

  /** Releases every reader and the context, so the process can exit. */
  close(): void {
    for (const r of this.readers.values()) {
      try {
        r.close();
      } catch {
        /* already closed */
      }
    }
    this.readers.clear();
    this.waiters.clear();
    this.pcsc.close();
  }
}

/** What withCard hands to its body. */
export interface CardInSlot {
  card: VirtualCard;
  slot: VpcdSlot;
  readerName: string;
}

/**
 * Inserts a virtual card (from a card file, or a ready VirtualCard) into a vpcd slot, waits until
 * pcscd reports it present, runs `fn`, and takes the card out again whatever happens, waiting until
 * pcscd reports the slot empty. pcscd polls vpcd about every 400 ms and misses a remove-and-insert
 * that falls between two polls, so the waiting is what keeps consecutive tests apart.
 */
export async function withCard<T>(
  file: CardFile | VirtualCard,
  opts: { slot?: 0 | 1; card?: VirtualCardOptions; vpcd?: VpcdSlotOptions; pcsc?: PcscClient; timeoutMs?: number },
  fn: (c: CardInSlot) => Promise<T>,
): Promise<T> {
  await lockVpcdSlots();
  const slotNo = opts.slot ?? 0;
  const readerName = vpcdReaderName(slotNo);
  const timeoutMs = opts.timeoutMs ?? 5000;
  const card = file instanceof VirtualCard ? file : new VirtualCard(file, opts.card);
  const slot = new VpcdSlot({ ...opts.vpcd, slot: slotNo });
  const pcsc = opts.pcsc ?? new PcscClient();
  try {
    await pcsc.waitForCard(readerName, false, timeoutMs);
    await slot.insert(card);
    try {
      await pcsc.waitForCard(readerName, true, timeoutMs);
      return await fn({ card, slot, readerName });
    } finally {
      await pcsc.disconnect(readerName).catch(() => undefined);
      await slot.remove();
      await pcsc.waitForCard(readerName, false, timeoutMs);
    }
  } finally {
    if (!opts.pcsc) pcsc.close();
  }
}

/** A touch desk over the real reader stack: PC/SC readers, the touch pipeline, the desk, and vpcd slot 0 for the card. */
export interface TouchDeskParts {
  manager: ReaderManager;
  pipeline: TouchPipeline;
  slot: VpcdSlot;
  desk: TouchDesk;
}

/** The reader side of TouchDeskParts, watching vpcd slot 0 alone (not started; the desk is the test's). */
export function touchReaderParts(): Omit<TouchDeskParts, 'desk'> {
  const reader = vpcdReaderName(0);
  const manager = new ReaderManager({ log: silentReaderLog, readerFilter: (n) => n === reader });
  return { manager, pipeline: new TouchPipeline(manager, { log: silentReaderLog }), slot: new VpcdSlot({ slot: 0, log: () => {} }) };
}

/**
 * Starts a touch desk over the real reader stack (desk, then pipeline, then reader manager) and waits
 * until `reader` is seen, refusing to go on when it already holds a card (another test's).
 */
export async function startTouchDesk(parts: Omit<TouchDeskParts, 'slot'>, reader: string): Promise<void> {
  const added = new Promise<void>((r) => parts.manager.on('reader-added', (e) => e.reader === reader && r()));
  parts.desk.start();
  parts.pipeline.start();
  parts.manager.start();
  await added;
  if (parts.manager.isCardPresent(reader)) throw new Error(`${reader} already holds a card`);
}

/**
 * Takes the card out of `slot` and waits until `manager` has seen it leave `reader`, so that the next
 * insert is a new touch rather than one pcscd folds into the last.
 */
export async function removeCard(manager: ReaderManager, slot: VpcdSlot, reader: string): Promise<void> {
  const gone = new Promise<void>((r) => {
    const off = manager.on('card-removed', (e) => {
      if (e.reader === reader) {
        off();
        r();
      }
    });
  });
  await slot.remove();
  await gone;
}
