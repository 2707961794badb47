// Cuts a device off a RabbitMQ cluster at once: the management HTTP API closes every connection of a
// user (DELETE /api/connections/username/{user}, from the cluster-wide connection tracking, so at
// once and on every node; the plain connection list lags by the statistics interval). The HTTP auth
// backend already refuses every new login, vhost, queue and topic check of a revoked device; this
// ends the sessions that are up. Any node answers for the whole cluster, so the nodes are tried in
// turn.
import type { Logger } from '../../shared/log.ts';

export interface ManagementOptions {
  /** Base URLs of the management API of the nodes (`http://127.0.0.1:15672`). */
  urls: string[];
  username: string;
  password: string;
  log: Logger;
  timeoutMs?: number;
}

export interface BrokerManagement {
  /** Closes every connection of `user` on the cluster. */
  closeUserConnections(user: string): Promise<void>;
}

export function createRabbitManagement(o: ManagementOptions): BrokerManagement {
  const auth = 'Basic ' + Buffer.from(`${o.username}:${o.password}`).toString('base64');
  const timeout = o.timeoutMs ?? 5000;
  return {
    async closeUserConnections(user) {
      let lastError: unknown;
      for (const base of o.urls) {
        try {
          const res = await fetch(`${base.replace(/\/$/, '')}/api/connections/username/${encodeURIComponent(user)}`, {
            method: 'DELETE',
            headers: { authorization: auth, 'x-reason': 'device revoked' },
            signal: AbortSignal.timeout(timeout),
          });
          // 204: closed (or there was none).
          if (res.ok || res.status === 404) return;
          throw new Error(`management API answered ${res.status}`);
        } catch (e) {
          lastError = e;
        }
      }
      o.log.error('could not close the connections of a revoked device on the broker cluster', { edgeId: user, error: lastError });
      throw lastError instanceof Error ? lastError : new Error('management API unreachable');
    },
  };
}
