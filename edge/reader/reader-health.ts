// A reader that heals itself. Cheap contactless readers on Raspberry Pis hang: they stay on the USB
// bus but drop out of PC/SC (the ACR122U family after a reboot or an error), or stay in PC/SC and stop
// answering (transmit timeouts, SCARD_W_UNRESPONSIVE_CARD, a mute card state). The healer watches the
// ReaderManager and the touch pipeline, scans the USB bus for known models (usb-readers.ts), and resets
// a hung one (usb-reset.ts) with back-off and a limit; when resets do not help it asks for a hand
// (`needs_replug`), and after `technicianAfter` failed resets for the technician. Its report goes into
// the edge's status (shared/sync.ts ReaderHealth) and its advice onto the kiosk page.
// The constructor only assigns; start() and stop() act.
import type { ReaderHealth } from '../../shared/sync.ts';
import { TypedEvents } from '../../shared/typed-events.ts';
import { withDefaults } from '../../shared/options.ts';
import { consoleReaderLog, type ReaderLog } from './log.ts';
import type { ReaderEvents } from './reader-manager.ts';
import type { TouchEvents } from './touch.ts';
import { KNOWN_READERS, pcscNameMatches, scanUsbReaders, type KnownReader, type UsbReader, type UsbRoots } from './usb-readers.ts';
import { hasPortSwitch, resetMethod, sysfsResetter, type ResetMethod, type UsbResetter } from './usb-reset.ts';

/** What the shop is asked to do; undefined when the reader works. */
export type ReaderAdvice = 'wait' | 'connect' | 'replug' | 'technician';

/** Events of the healer. */
export interface ReaderHealerEvents {
  /** The report changed (state, counts or model). */
  state: { report: ReaderHealth; advice: ReaderAdvice | undefined };
  /** A reset was made (or tried: `error` says why it could not). */
  reset: { sysName: string; method: ResetMethod; attempt: number; error?: string };
}

/** The parts of ReaderManager and TouchPipeline the healer listens to. */
export interface HealerSources {
  manager: { readers(): string[]; on<K extends keyof ReaderEvents>(event: K, listener: (p: ReaderEvents[K]) => unknown): () => void };
  touches?: { on<K extends keyof TouchEvents>(event: K, listener: (p: TouchEvents[K]) => unknown): () => void };
}

export interface ReaderHealerOptions {
  /** Where sysfs and /dev are (tests: temp directories). */
  roots?: UsbRoots;
  table?: readonly KnownReader[];
  /** Known readers on the bus now (scanUsbReaders over `roots` by default). */
  scan?: () => UsbReader[];
  /** How a reader is reset (sysfsResetter over `roots` by default). */
  reset?: UsbResetter;
  /** Whether the reader's hub port can be switched (its sysfs `disable` exists, by default). */
  portSwitch?: (r: UsbReader) => boolean;
  /** USB scan interval, ms (default 5000). */
  pollMs?: number;
  /** How long a known USB reader may be absent from PC/SC before it is reset, ms (default 10000). */
  missingMs?: number;
  /** Reader failures in a row (within failureWindowMs) that make it unresponsive (default 3). */
  failuresBeforeReset?: number;
  failureWindowMs?: number;
  /** Resets in a row before the shop is asked to replug the reader (default 3). */
  maxResets?: number;
  /** Wait after a reset before the next one, ms; doubles each time up to maxBackoffMs (default 5000). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Failed resets since the reader last worked before the page says "call the technician" (default 6). */
  technicianAfter?: number;
  /** Time in `ok` after which the reader counts as working again (default 120000). */
  stableMs?: number;
  log?: ReaderLog;
  now?: () => number;
}

/** The timing options when not given (described on ReaderHealerOptions). */
const HEALER_DEFAULTS = {
  pollMs: 5000,
  missingMs: 10_000,
  failuresBeforeReset: 3,
  failureWindowMs: 120_000,
  maxResets: 3,
  backoffMs: 5000,
  maxBackoffMs: 300_000,
  technicianAfter: 6,
  stableMs: 120_000,
} satisfies ReaderHealerOptions;

// PC/SC codes (pcsclite.h) that mean the reader, not the card, is in trouble when they repeat.
const READER_TROUBLE_PCSC = new Set([
  0x80100066, // SCARD_W_UNRESPONSIVE_CARD (a hung ACR122U reports every card so)
  0x80100017, // SCARD_E_READER_UNAVAILABLE
  0x8010002e, // SCARD_E_NO_READERS_AVAILABLE
  0x80100013, // SCARD_F_COMM_ERROR
  0x8010000a, // SCARD_E_TIMEOUT
]);
const READER_TROUBLE_CODES = new Set(['timeout', 'card_error', 'reader_unavailable']);
const REPORT_KEYS = ['state', 'resets', 'failedResets', 'model', 'usbId', 'kernelDriver'] as const satisfies ReadonlyArray<keyof ReaderHealth>;
/** Kernel modules that take contactless readers away from pcscd (drivers/nfc). */
export const KERNEL_NFC_DRIVERS = new Set(['pn533_usb', 'pn533', 'port100', 'nfc']);

/** True when a failed touch says the reader, rather than the card, is in trouble. */
export function isReaderTrouble(e: { code: string; pcsc?: number }): boolean {
  return READER_TROUBLE_CODES.has(e.code) || (e.pcsc !== undefined && READER_TROUBLE_PCSC.has(e.pcsc));
}

/** What the page asks of the shop for a report. */
export function adviceFor(report: ReaderHealth, technicianAfter: number): ReaderAdvice | undefined {
  switch (report.state) {
    case 'ok':
      return undefined;
    case 'missing':
      return report.model ? 'wait' : 'connect';
    case 'unresponsive':
    case 'resetting':
      return 'wait';
    case 'needs_replug':
      return report.kernelDriver || (report.failedResets ?? 0) >= technicianAfter ? 'technician' : 'replug';
  }
}

/** Watches the reader and revives it when it hangs. */
export class ReaderHealer {
  readonly events: TypedEvents<ReaderHealerEvents>;
  readonly #src: HealerSources;
  readonly #scan: () => UsbReader[];
  readonly #reset: UsbResetter;
  readonly #portSwitch: (r: UsbReader) => boolean;
  readonly #o: typeof HEALER_DEFAULTS;
  readonly #log: ReaderLog;
  readonly #now: () => number;
  #offs: Array<() => void> = [];
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #busy: Promise<void> | undefined;
  #again = false;

  // ---- what is known about the reader
  #report: ReaderHealth = { state: 'ok', resets: 0 };
  #failures: number[] = [];
  /** The PC/SC name of the reader that failed last (to pick its USB device among several). */
  #failingName: string | undefined;
  #missingSince: number | undefined;
  /** Resets since the last replug or proof of health (bounded by maxResets). */
  #attempts = 0;
  /** Resets since the reader last worked (for "call the technician"). */
  #failedResets = 0;
  #delay: number;
  #nextResetAt = 0;
  #settleUntil = 0;
  #okSince: number | undefined;
  #seenUsb = new Set<string>();
  #startedAt = 0;

  constructor(sources: HealerSources, options: ReaderHealerOptions = {}) {
    this.#src = sources;
    const roots = options.roots ?? {};
    const table = options.table ?? KNOWN_READERS;
    this.#scan = options.scan ?? (() => scanUsbReaders(roots, table));
    this.#reset = options.reset ?? sysfsResetter({ roots });
    this.#portSwitch = options.portSwitch ?? ((r) => hasPortSwitch(r, roots));
    this.#o = withDefaults(options, HEALER_DEFAULTS);
    this.#delay = this.#o.backoffMs;
    this.#log = options.log ?? consoleReaderLog;
    this.#now = options.now ?? Date.now;
    this.events = new TypedEvents<ReaderHealerEvents>(this.#log, 'reader healer');
  }

  /** Shorthand for events.on. */
  on<K extends keyof ReaderHealerEvents>(event: K, listener: (payload: ReaderHealerEvents[K]) => unknown): () => void {
    return this.events.on(event, listener);
  }

  /** The report as the status carries it. */
  report(): ReaderHealth {
    return { ...this.#report };
  }

  /** What the page asks of the shop now. */
  advice(): ReaderAdvice | undefined {
    return adviceFor(this.#report, this.#o.technicianAfter);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#startedAt = this.#now();
    const m = this.#src.manager;
    this.#offs.push(
      m.on('reader-added', () => this.#readerBack()),
      m.on('reader-removed', () => this.check()),
      m.on('error', (e) => {
        // A mute card state or a reader-level failure; errors of the PC/SC service itself are not the reader's.
        if (e.reader && isReaderTrouble({ code: (e.error as { code?: string }).code ?? '' })) this.#trouble(e.reader);
      }),
    );
    const t = this.#src.touches;
    if (t) {
      this.#offs.push(
        t.on('identity', () => this.#worked()),
        t.on('touch-failed', (e) => {
          // A card that answered a status word (a foreign card, say) was heard: the reader works.
          if (e.answered) this.#worked();
          else if (isReaderTrouble(e)) this.#trouble(e.reader);
        }),
      );
    }
    this.#timer = setInterval(() => this.check(), this.#o.pollMs);
    this.#timer.unref();
    this.check();
  }

  /** Stops watching; waits for a reset under way. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    clearInterval(this.#timer);
    for (const off of this.#offs) off();
    this.#offs = [];
    await this.#busy;
  }

  /** Looks at the reader now (also every pollMs); resolves when the look (and any reset) is done. */
  check(): Promise<void> {
    if (!this.#running) return Promise.resolve();
    if (this.#busy) {
      this.#again = true;
      return this.#busy;
    }
    const run = (async () => {
      do {
        this.#again = false;
        try {
          await this.#evaluate();
        } catch (e) {
          this.#log.error('reader health check failed', { error: String(e) });
        }
      } while (this.#again && this.#running);
    })();
    this.#busy = run.finally(() => (this.#busy = undefined));
    return this.#busy;
  }

  #trouble(reader: string): void {
    const now = this.#now();
    this.#failingName = reader;
    this.#failures = [...this.#failures.filter((t) => now - t < this.#o.failureWindowMs), now];
    void this.check();
  }

  /** A card was read: whatever was wrong is over. */
  #worked(): void {
    this.#failures = [];
    this.#attempts = 0;
    this.#failedResets = 0;
    this.#delay = this.#o.backoffMs;
    this.#settleUntil = 0;
    this.#nextResetAt = 0;
    void this.check();
  }

  /** A reader (re)appeared in PC/SC: a fresh device, its earlier failures are not its own. */
  #readerBack(): void {
    this.#failures = [];
    this.#settleUntil = 0;
    this.#missingSince = undefined;
    void this.check();
  }

  async #evaluate(): Promise<void> {
    const now = this.#now();
    const usb = this.#scan();
    const pcsc = this.#src.manager.readers();
    // A reader that left the bus and came back was replugged by hand: it gets its resets again.
    const keys = new Set(usb.map((u) => u.sysName));
    if ([...this.#seenUsb].some((k) => !keys.has(k))) this.#attempts = 0;
    this.#seenUsb = keys;
    const target = this.#target(usb);
    const base = {
      resets: this.#report.resets,
      ...(this.#failedResets ? { failedResets: this.#failedResets } : {}),
      ...(target ? { model: target.known.model, usbId: `${target.known.vendorId}:${target.known.productId}` } : {}),
    };
    this.#failures = this.#failures.filter((t) => now - t < this.#o.failureWindowMs);
    const unresponsive = this.#failures.length >= this.#o.failuresBeforeReset;

    if (pcsc.length > 0 && !unresponsive) {
      this.#missingSince = undefined;
      if (now < this.#settleUntil) return this.#set({ state: 'resetting', ...base });
      this.#okSince ??= now;
      if (now - this.#okSince >= this.#o.stableMs && (this.#attempts || this.#failedResets)) {
        this.#attempts = 0;
        this.#failedResets = 0;
        this.#delay = this.#o.backoffMs;
        delete (base as { failedResets?: number }).failedResets;
      }
      return this.#set({ state: 'ok', ...base });
    }
    // Right after start PC/SC reports its readers one by one: no reader yet is not yet a missing one.
    if (pcsc.length === 0 && now - this.#startedAt < this.#o.missingMs) return;
    this.#okSince = undefined;
    if (pcsc.length === 0) {
      if (!target) return this.#set({ state: 'missing', resets: base.resets, ...(base.failedResets ? { failedResets: base.failedResets } : {}) });
      this.#missingSince ??= now;
      if (now - this.#missingSince < this.#o.missingMs || now < this.#settleUntil) {
        return this.#set({ state: now < this.#settleUntil ? 'resetting' : 'missing', ...base });
      }
      return this.#heal(target, 'missing', base, now);
    }
    if (!target) return this.#set({ state: 'needs_replug', ...base });
    return this.#heal(target, 'unresponsive', base, now);
  }

  /** The USB reader to act on: the one whose model names the failing PC/SC reader, else the first. */
  #target(usb: UsbReader[]): UsbReader | undefined {
    const name = this.#failingName;
    return (name ? usb.find((u) => pcscNameMatches(name, u.known)) : undefined) ?? usb[0];
  }

  async #heal(target: UsbReader, state: 'missing' | 'unresponsive', base: Omit<ReaderHealth, 'state'>, now: number): Promise<void> {
    const kernel = target.drivers.find((d) => KERNEL_NFC_DRIVERS.has(d));
    if (kernel) {
      // A kernel NFC module holds it: a reset hands it straight back to that module. Blacklist it.
      return this.#set({ state: 'needs_replug', ...base, kernelDriver: kernel });
    }
    // At the limit, or past the point where only the technician helps: no more resets until a replug or a read.
    if (this.#attempts >= this.#o.maxResets || this.#failedResets >= this.#o.technicianAfter) return this.#set({ state: 'needs_replug', ...base });
    const method = resetMethod(target, this.#attempts, this.#o.maxResets, this.#portSwitch(target));
    if (!method) return this.#set({ state: 'needs_replug', ...base });
    if (now < this.#nextResetAt) return this.#set({ state, ...base });
    this.#attempts++;
    this.#failedResets++;
    const resets = base.resets + 1;
    this.#set({ state: 'resetting', ...base, resets, failedResets: this.#failedResets });
    let error: string | undefined;
    try {
      await this.#reset(target, method);
      this.#log.warn('reader reset', { model: target.known.model, method, attempt: this.#attempts });
    } catch (e) {
      error = (e as Error).message;
      this.#log.warn('reader reset failed', { model: target.known.model, method, error });
    }
    this.events.emit('reset', { sysName: target.sysName, method, attempt: this.#attempts, ...(error ? { error } : {}) });
    const after = this.#now();
    this.#failures = [];
    this.#missingSince = undefined;
    this.#settleUntil = after + this.#delay;
    this.#nextResetAt = after + this.#delay;
    this.#delay = Math.min(this.#o.maxBackoffMs, this.#delay * 2);
    this.#again = true; // look again at once: the reader may be back already
  }

  #set(report: ReaderHealth): void {
    const prev = this.#report;
    this.#report = report;
    if (REPORT_KEYS.every((k) => prev[k] === report[k])) return;
    if (prev.state !== report.state) this.#log.warn('reader health changed', { state: report.state, previous: prev.state, resets: report.resets });
    this.events.emit('state', { report: { ...report }, advice: this.advice() });
  }
}
