// Start and stop of a process's parts (STYLE.md habit 6: constructors assign; start() and stop()
// act). A process lists its components once, in the order they depend on each other; the runner
// starts them in that order and stops them in reverse, so a part never outlives what it uses. When a
// start fails half-way, the components already started are stopped (in reverse) before the error is
// passed on: a failed start leaves nothing listening, no timer, no open socket.

/** A part of a process with its own start and stop. */
export interface Component {
  /** Short and stable: it names the part in the log (`broker`, `http-public`). */
  readonly name: string;
  /**
   * Acquires what the part needs (sockets, timers, files). A start that fails must undo its own
   * half; the runner stops only the components whose start completed.
   */
  start(): Promise<void>;
  /** Releases what start acquired. Called at most once, and only after start completed. */
  stop(): Promise<void>;
}

/** A component from its start and, when it holds something, its stop (default: nothing to release). */
export function component(name: string, start: () => Promise<void>, stop: () => Promise<void> = async () => undefined): Component {
  return { name, start, stop };
}

/** What the runner logs through (shared/log.ts Logger fits). */
export interface LifecycleLog {
  info(msg: string, meta?: Record<string, unknown>): void;
  error(msg: string, meta?: Record<string, unknown>): void;
}

/** Starts components in order and stops them in reverse. */
export interface Lifecycle {
  /**
   * Starts every component in order; resolves once all have started. When one fails, the ones
   * already started are stopped in reverse and the promise rejects with the failure (it also rejects
   * when stop() is called before every component started). A second call returns the first call's
   * promise; after stop() it rejects.
   */
  start(): Promise<void>;
  /**
   * Stops every started component in reverse order. A stop that fails is logged and the others still
   * stop; the promise then rejects with the first failure. Waits for a start in progress to settle
   * first. Idempotent: a second call returns the first call's promise; before any start it resolves.
   */
  stop(): Promise<void>;
  /** Names of the components running now, in start order. */
  readonly running: readonly string[];
}

export interface LifecycleOptions {
  log: LifecycleLog;
  /** Milliseconds clock for the timings in the log; default performance.now. */
  now?: () => number;
}

/** A runner over `components` (nothing runs until `start()`). */
export function createLifecycle(components: readonly Component[], { log, now = () => performance.now() }: LifecycleOptions): Lifecycle {
  const names = new Set<string>();
  for (const c of components) {
    if (names.has(c.name)) throw new Error(`two components are named ${c.name}`);
    names.add(c.name);
  }
  const running: Component[] = [];
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;
  const ms = (t: number) => Math.round((now() - t) * 10) / 10;
  const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

  /** Stops what runs, last started first; returns the first failure. */
  async function stopRunning(): Promise<{ error: unknown } | undefined> {
    let failure: { error: unknown } | undefined;
    while (running.length > 0) {
      const c = running.pop()!;
      const t = now();
      try {
        await c.stop();
        log.info(`${c.name} stopped`, { component: c.name, ms: ms(t) });
      } catch (error) {
        log.error(`${c.name} failed to stop`, { component: c.name, ms: ms(t), error: message(error) });
        failure ??= { error };
      }
    }
    return failure;
  }

  async function startAll(): Promise<void> {
    for (const c of components) {
      // stop() was called meanwhile: nothing more starts, and stop() stops what did.
      if (stopping) throw new Error(`stopped while starting (before ${c.name})`);
      const t = now();
      try {
        await c.start();
      } catch (error) {
        log.error(`${c.name} failed to start; stopping what started`, { component: c.name, ms: ms(t), error: message(error) });
        await stopRunning();
        throw error;
      }
      running.push(c);
      log.info(`${c.name} started`, { component: c.name, ms: ms(t) });
    }
  }

  return {
    start() {
      if (stopping) return Promise.reject(new Error('the lifecycle was stopped; it does not start again'));
      starting ??= startAll();
      return starting;
    },
    stop() {
      stopping ??= (async () => {
        await starting?.catch(() => undefined);
        const failure = await stopRunning();
        if (failure) throw failure.error;
      })();
      return stopping;
    },
    get running() {
      return running.map((c) => c.name);
    },
  };
}
