// Typed events whose listeners cannot crash the agent: a listener that throws (or whose promise
// rejects) is logged and the other listeners still run. `on` returns the function that removes it.
import type { Logger } from '../../shared/log.ts';

type Listener<T> = (payload: T) => unknown;

export class TypedEvents<M extends { [K in keyof M]: unknown }> {
  readonly #listeners = new Map<keyof M, Set<Listener<never>>>();
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
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

  off<K extends keyof M>(event: K, listener: Listener<M[K]>): void {
    this.#listeners.get(event)?.delete(listener as Listener<never>);
  }

  /** Calls every listener of `event`; failures are logged, never thrown. */
  emit<K extends keyof M>(event: K, payload: M[K]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        const r = (listener as Listener<M[K]>)(payload);
        if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).then(undefined, (e) => this.#failed(event, e));
      } catch (e) {
        this.#failed(event, e);
      }
    }
  }

  /** Removes every listener. */
  clear(): void {
    this.#listeners.clear();
  }

  #failed(event: keyof M, e: unknown): void {
    this.#log.error(`a '${String(event)}' listener failed`, { error: e instanceof Error ? e.message : String(e) });
  }
}
