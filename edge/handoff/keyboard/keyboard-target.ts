// Hand-off as a keyboard: the edge types the holder's service ID (the library card number) into the
// business system, as the barcode scanner at the counter does. Two backends:
//   hid     a USB HID gadget (/dev/hidg0; provisioning/hid-gadget/setup.sh): the Pi is plugged into
//           the counter PC as a USB keyboard; 8-byte boot reports.
//   uinput  a virtual keyboard on this machine (/dev/uinput), for a business application that runs
//           on the reader itself; struct input_event writes after the uinput ioctls.
// deliver() queues and returns. One ID is typed at a time, never interleaved; an ID that has waited
// too long is dropped rather than typed late into whatever field then has the focus, and an ID with a
// character the layout cannot type is refused whole (config validation makes that impossible; this
// is the last guard). A write that fails releases every key and the device is reopened next time.
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../../shared/log.ts';
import { silentLogger } from '../../../shared/log.ts';
import type { HandoffTarget, TouchResult } from '../types.ts';
import { keyDownReport, keyUpReport } from './hid-report.ts';
import { encodeEvents, keyDownEvents, keyUpEvents, nativeLongBytes } from './input-event.ts';
import { allLinuxKeys, type Layout, type Stroke } from './layouts.ts';
import { strokesOfKeys, strokesOfText, type KeySpec } from './plan.ts';
import { systemIoctl, UI, uinputCreateCalls, type Ioctl } from './uinput.ts';

export type KeyboardBackend = 'hid' | 'uinput';

/** Where each backend writes unless told otherwise. */
export const DEFAULT_DEVICES: Record<KeyboardBackend, string> = { hid: '/dev/hidg0', uinput: '/dev/uinput' };

/** Name of the uinput device (what `evtest` and the desktop show). */
export const UINPUT_DEVICE_NAME = 'MyKey hand-off keyboard';

export interface KeyboardTargetOptions {
  backend?: KeyboardBackend;
  /** The gadget's or uinput's device file; empty or absent: DEFAULT_DEVICES[backend]. */
  device?: string;
  layout?: Layout;
  prefix?: readonly KeySpec[];
  suffix?: readonly KeySpec[];
  /** Pause after each key-down and each key-up. */
  keyDelayMs?: number;
  /** IDs waiting to be typed; a touch beyond it is dropped. */
  maxQueue?: number;
  /** An ID that waited longer than this (a stuck host) is dropped, not typed late. */
  maxWaitMs?: number;
  /** How long one report may wait for the host to take the previous one (hidg returns EAGAIN). */
  writeTimeoutMs?: number;
  /** uinput: pause after UI_DEV_CREATE so the desktop has opened the new device before keys come. */
  settleMs?: number;
  /** uinput: the ioctl (tests record the calls; libc's through koffi by default). */
  ioctl?: Ioctl;
  /**
   * Write to a device path that is not a character device (tests: a file or FIFO standing in for
   * /dev/hidg0). Off by default, so a mistyped path never has key reports written over a file.
   */
  anyFile?: boolean;
  name?: string;
  log?: Logger;
  now?: () => number;
}

interface Job {
  strokes: Stroke[];
  queuedAt: number;
}

export class KeyboardTarget implements HandoffTarget {
  readonly name: string;
  readonly backend: KeyboardBackend;
  readonly device: string;
  readonly layout: Layout;
  readonly #prefix: Stroke[];
  readonly #suffix: Stroke[];
  readonly #keyDelayMs: number;
  readonly #maxQueue: number;
  readonly #maxWaitMs: number;
  readonly #writeTimeoutMs: number;
  readonly #settleMs: number;
  readonly #ioctl: Ioctl | undefined;
  readonly #anyFile: boolean;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #queue: Job[] = [];
  #handle: FileHandle | undefined;
  #opening: Promise<FileHandle> | undefined;
  #running: Promise<void> = Promise.resolve();
  #draining = false;
  #stopped = false;
  readonly #stats = { typed: 0, keys: 0, skipped: 0, dropped: 0, expired: 0, untypable: 0, failed: 0, opened: 0 };

  constructor(opts: KeyboardTargetOptions = {}) {
    this.backend = opts.backend ?? 'hid';
    this.device = opts.device || DEFAULT_DEVICES[this.backend];
    this.layout = opts.layout ?? 'jis';
    this.name = opts.name ?? `keyboard:${this.backend}`;
    const prefix = strokesOfKeys(this.layout, opts.prefix ?? []);
    const suffix = strokesOfKeys(this.layout, opts.suffix ?? ['enter']);
    // The config check refuses these before a target is built; a direct caller gets the same refusal.
    if (!prefix || !suffix) throw new RangeError(`the ${this.layout} layout cannot type the ${prefix ? 'suffix' : 'prefix'} text`);
    this.#prefix = prefix;
    this.#suffix = suffix;
    this.#keyDelayMs = opts.keyDelayMs ?? 10;
    this.#maxQueue = opts.maxQueue ?? 4;
    this.#maxWaitMs = opts.maxWaitMs ?? 5000;
    this.#writeTimeoutMs = opts.writeTimeoutMs ?? 1000;
    this.#settleMs = opts.settleMs ?? 500;
    this.#ioctl = opts.ioctl;
    this.#anyFile = opts.anyFile ?? false;
    this.#log = opts.log ?? silentLogger;
    this.#now = opts.now ?? Date.now;
  }

  /** Opens the device now; a missing one (gadget not set up yet) is logged and retried per touch. */
  async start(): Promise<void> {
    this.#stopped = false;
    try {
      await this.#open();
    } catch (err) {
      this.#log.warn('keyboard device not available yet; will retry at the next touch', { target: this.name, device: this.device, error: err });
    }
  }

  deliver(result: TouchResult): void {
    if (this.#stopped) return;
    const id = result.serviceUserId;
    if ((result.outcome !== 'linked' && result.outcome !== 'degraded') || id === undefined) {
      this.#stats.skipped++;
      return;
    }
    const strokes = strokesOfText(this.layout, id);
    if (!strokes) {
      this.#stats.untypable++;
      this.#log.warn('a service user ID has a character the keyboard layout cannot type; nothing typed', { target: this.name, layout: this.layout });
      return;
    }
    if (this.#queue.length >= this.#maxQueue) {
      this.#stats.dropped++;
      return;
    }
    this.#queue.push({ strokes: [...this.#prefix, ...strokes, ...this.#suffix], queuedAt: this.#now() });
    if (!this.#draining) {
      this.#draining = true; // set and cleared synchronously, so a touch never waits in a queue nobody drains
      this.#running = this.#drain();
    }
  }

  /** Resolves when everything queued has been typed (or dropped). */
  async idle(): Promise<void> {
    while (this.#draining) await this.#running;
  }

  stats(): Record<string, number> {
    return { ...this.#stats, queued: this.#queue.length };
  }

  /** Finishes the ID being typed (the rest of the queue is dropped), then closes the device. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stats.dropped += this.#queue.length;
    this.#queue.length = 0;
    await this.idle();
    await this.#close();
  }

  async #drain(): Promise<void> {
    try {
      for (let job = this.#queue.shift(); job; job = this.#queue.shift()) {
        if (this.#now() - job.queuedAt > this.#maxWaitMs) {
          this.#stats.expired++;
          continue;
        }
        try {
          const h = await this.#open();
          await this.#type(h, job.strokes);
          this.#stats.typed++;
        } catch (err) {
          this.#stats.failed++;
          this.#log.error('typing on the keyboard device failed', { target: this.name, device: this.device, error: err });
          await this.#close();
        }
      }
    } finally {
      // In the same turn as the shift that found the queue empty: no await between the two.
      this.#draining = false;
    }
  }

  async #type(h: FileHandle, strokes: readonly Stroke[]): Promise<void> {
    let down: Stroke | undefined;
    try {
      for (const s of strokes) {
        down = s;
        await this.#write(h, this.#downBytes(s));
        await sleep(this.#keyDelayMs);
        await this.#write(h, this.#upBytes(s));
        down = undefined;
        this.#stats.keys++;
        await sleep(this.#keyDelayMs);
      }
    } catch (err) {
      // A key left down would repeat on the host: release it (best effort) before giving up.
      if (down) await this.#write(h, this.#upBytes(down)).catch(() => undefined);
      throw err;
    }
  }

  #downBytes(s: Stroke): Buffer {
    return this.backend === 'hid' ? keyDownReport(s) : encodeEvents(keyDownEvents(s), nativeLongBytes());
  }

  #upBytes(s: Stroke): Buffer {
    return this.backend === 'hid' ? keyUpReport() : encodeEvents(keyUpEvents(s), nativeLongBytes());
  }

  /** Writes one report or event group whole; EAGAIN (the host has not taken the last one) is retried. */
  async #write(h: FileHandle, bytes: Buffer): Promise<void> {
    const deadline = this.#now() + this.#writeTimeoutMs;
    for (;;) {
      try {
        const { bytesWritten } = await h.write(bytes, 0, bytes.length);
        if (bytesWritten !== bytes.length) throw new Error(`short write to ${this.device}: ${bytesWritten} of ${bytes.length} bytes`);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if ((code !== 'EAGAIN' && code !== 'EWOULDBLOCK') || this.#now() > deadline) throw err;
        await sleep(2);
      }
    }
  }

  async #open(): Promise<FileHandle> {
    if (this.#handle) return this.#handle;
    this.#opening ??= this.#openDevice().finally(() => (this.#opening = undefined));
    return this.#opening;
  }

  async #openDevice(): Promise<FileHandle> {
    // O_NONBLOCK: a gadget whose host is asleep or unplugged makes write() wait forever otherwise,
    // holding a libuv thread. No O_CREAT: a missing /dev/hidg0 must not become a regular file.
    const h = await open(this.device, constants.O_WRONLY | constants.O_NONBLOCK);
    try {
      if (!this.#anyFile && !(await h.stat()).isCharacterDevice()) throw new Error(`${this.device} is not a character device (a HID gadget or uinput)`);
      if (this.backend === 'uinput') {
        const ioctl = this.#ioctl ?? systemIoctl();
        for (const [request, arg] of uinputCreateCalls(allLinuxKeys(), UINPUT_DEVICE_NAME)) ioctl(h.fd, request, arg);
        if (this.#settleMs > 0) await sleep(this.#settleMs);
      }
    } catch (err) {
      await h.close().catch(() => undefined);
      throw err;
    }
    this.#handle = h;
    this.#stats.opened++;
    return h;
  }

  async #close(): Promise<void> {
    const h = this.#handle;
    this.#handle = undefined;
    if (!h) return;
    if (this.backend === 'uinput') {
      try {
        (this.#ioctl ?? systemIoctl())(h.fd, UI.DEV_DESTROY, 0);
      } catch {
        // closing the file destroys the device as well
      }
    }
    await h.close().catch(() => undefined);
  }
}
