// Typed events whose listeners cannot crash the emitter (STYLE.md habit 5): a listener that throws
// (or whose promise rejects) is logged and the other listeners still run. `on` returns the function
// that removes the listener, so an owner removes exactly its own on stop().

/** What failed listeners are reported through (shared/log.ts Logger and the reader's log fit). */
export interface ListenerFailureLog {
  error(msg: string, meta?: Record<string, unknown>): void;
}

type Listener<T> = (payload: T) => unknown;

/**
 * The telling side of a TypedEvents: what a part that only says what happened is given (it cannot
 * listen, nor remove another's listener).
 */
export interface Emitter<M extends { [K in keyof M]: unknown }> {
  emit<K extends keyof M>(event: K, payload: M[K]): void;
}

/** A small typed event emitter: event name -> payload type. */
export class TypedEvents<M extends { [K in keyof M]: unknown }> implements Emitter<M> {
  readonly #listeners = new Map<keyof M, Set<Listener<never>>>();
  readonly #log: ListenerFailureLog;
  readonly #name: string;

  constructor(log: ListenerFailureLog, name = 'events') {
    this.#log = log;
    this.#name = name;
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof M>(event: K, listener: Listener<M[K]>): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  /** Adds a listener that runs once. */
  once<K extends keyof M>(event: K, listener: Listener<M[K]>): () => void {
    const off = this.on(event, (p) => {
      off();
      return listener(p);
    });
    return off;
  }

  /** Removes a listener. */
  off<K extends keyof M>(event: K, listener: Listener<M[K]>): void {
    this.#listeners.get(event)?.delete(listener as Listener<never>);
  }

  /** Number of listeners of an event. */
  listenerCount(event: keyof M): number {
    return this.#listeners.get(event)?.size ?? 0;
  }

  /** Calls every listener of `event` with `payload`; failures are logged, never thrown. */
  emit<K extends keyof M>(event: K, payload: M[K]): void {
    const set = this.#listeners.get(event);
    if (!set || set.size === 0) return;
    for (const listener of [...set]) {
      try {
        const r = (listener as Listener<M[K]>)(payload);
        if (r && typeof (r as Promise<unknown>).then === 'function') {
          (r as Promise<unknown>).then(undefined, (err) => this.#failed(event, err));
        }
      } catch (err) {
        this.#failed(event, err);
      }
    }
  }

  /** Removes every listener. */
  clear(): void {
    this.#listeners.clear();
  }

  #failed(event: keyof M, err: unknown): void {
    this.#log.error(`${this.#name}: a '${String(event)}' listener failed`, { error: err instanceof Error ? err.message : String(err) });
  }
}
