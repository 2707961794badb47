// Publishes the MQTT outbox: change-log entries are stored before they are published, and a row
// leaves the outbox only once the broker has taken it. After a crash, whatever was left is published
// on start; edges ignore what they already applied (seq), so a second publication is harmless.
import type { Logger } from '../../shared/log.ts';
import type { LinkRepo } from '../store/link-repo.ts';

export type Publish = (topic: string, payload: string) => Promise<void>;

export function createOutboxPublisher(deps: { repo: LinkRepo; log: Logger; publish?: Publish; retryMs?: number; sweepMs?: number }) {
  let publish = deps.publish;
  let running = false;
  let again = false;
  let retry: NodeJS.Timeout | undefined;
  let stopped = false;
  let sweep: NodeJS.Timeout | undefined;

  async function drain(): Promise<void> {
    if (running) {
      again = true;
      return;
    }
    if (!publish || stopped) return;
    running = true;
    try {
      do {
        again = false;
        for (;;) {
          const rows = deps.repo.pendingMqtt(500);
          if (rows.length === 0) break;
          for (const r of rows) {
            await publish(r.topic, r.payload);
            deps.repo.deleteMqtt(r.id);
          }
        }
      } while (again);
    } catch (e) {
      if (stopped) return;
      deps.log.warn('outbox publish failed; will retry', { error: e });
      clearTimeout(retry);
      retry = setTimeout(() => void drain(), deps.retryMs ?? 1000);
      retry.unref();
    } finally {
      running = false;
    }
  }

  return {
    /** Sets the broker publish function (the broker starts after the store). */
    attach(p: Publish): void {
      publish = p;
      void drain();
      // A safety net: rows written by a path that did not kick are published within a few seconds.
      sweep = setInterval(() => void drain(), deps.sweepMs ?? 2000);
      sweep.unref();
    },
    /** Called after a transaction wrote outbox rows. */
    kick(): void {
      void drain();
    },
    drain,
    stop(): void {
      stopped = true;
      clearTimeout(retry);
      clearInterval(sweep);
    },
  };
}

export type OutboxPublisher = ReturnType<typeof createOutboxPublisher>;
