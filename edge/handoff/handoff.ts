// The hand-off fan-out: every touch result goes to each target that wants its outcome. A target that
// throws is logged and counted, never fatal, and never keeps the other targets or the next touch
// waiting (every target's deliver() only queues or writes).
import type { Writable } from 'node:stream';
import type { HandoffTargetConfig } from '../config.ts';
import type { Logger } from '../../shared/log.ts';
import { silentLogger } from '../../shared/log.ts';
import { SocketTarget, StreamTarget } from './json-lines.ts';
import { KeyboardTarget, type KeyboardTargetOptions } from './keyboard/keyboard-target.ts';
import { OUTCOMES, type Outcome } from './outcomes.ts';
import type { HandoffTarget, TouchResult } from './types.ts';
import { WebhookTarget } from './webhook.ts';

/** A target and the outcomes it receives. */
export interface RoutedTarget {
  target: HandoffTarget;
  outcomes: readonly Outcome[];
}

export class Handoff {
  readonly #routes: RoutedTarget[];
  readonly #log: Logger;
  readonly #stats = { dispatched: 0, deliveries: 0, targetErrors: 0 };

  constructor(routes: RoutedTarget[], opts: { log?: Logger } = {}) {
    this.#routes = routes;
    this.#log = opts.log ?? silentLogger;
  }

  /** Adds a target (the kiosk page joins once it listens). */
  add(target: HandoffTarget, outcomes: readonly Outcome[] = OUTCOMES): void {
    this.#routes.push({ target, outcomes });
  }

  get targets(): HandoffTarget[] {
    return this.#routes.map((r) => r.target);
  }

  async start(): Promise<void> {
    for (const r of this.#routes) await r.target.start?.();
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.#routes.map((r) => r.target.stop?.()));
  }

  /** Hands one touch result to every target that wants it; returns at once. */
  dispatch(result: TouchResult): void {
    this.#stats.dispatched++;
    for (const r of this.#routes) {
      if (!r.outcomes.includes(result.outcome)) continue;
      try {
        r.target.deliver(result);
        this.#stats.deliveries++;
      } catch (err) {
        this.#stats.targetErrors++;
        this.#log.error('hand-off target threw', { target: r.target.name, error: err });
      }
    }
  }

  /** Aggregate counters of the fan-out and of each target. */
  stats(): { handoff: Record<string, number>; targets: Record<string, Record<string, number>> } {
    return { handoff: { ...this.#stats }, targets: Object.fromEntries(this.#routes.map((r) => [r.target.name, r.target.stats()])) };
  }
}

/** Builds the configured targets (the kiosk page target is added by the agent when it runs one). */
export function targetsFromConfig(
  configs: readonly HandoffTargetConfig[],
  opts: {
    log?: Logger;
    stdout?: Writable /** keyboard targets: what a config cannot set (tests: a recording ioctl, files for devices) */;
    keyboard?: Pick<KeyboardTargetOptions, 'ioctl' | 'settleMs' | 'anyFile'>;
  } = {},
): RoutedTarget[] {
  // biome-ignore lint/suspicious/useIterableCallbackReturn: the switch covers every target type of the validated config, and tsc checks it does (a missing case would make the callback return undefined)
  return configs.map((c, i) => {
    switch (c.type) {
      case 'webhook':
        return {
          target: new WebhookTarget({ ...c, name: `webhook#${i}`, log: opts.log }),
          outcomes: c.outcomes,
        };
      case 'stdout':
        return { target: new StreamTarget({ includeMyKeyId: c.includeMyKeyId, out: opts.stdout, name: `stdout#${i}` }), outcomes: c.outcomes };
      case 'socket':
        return { target: new SocketTarget({ path: c.path, includeMyKeyId: c.includeMyKeyId, name: `socket#${i}`, log: opts.log }), outcomes: c.outcomes };
      case 'keyboard':
        return { target: new KeyboardTarget({ ...c, ...opts.keyboard, name: `keyboard#${i}`, log: opts.log }), outcomes: c.outcomes };
    }
  });
}
