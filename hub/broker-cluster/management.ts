// Cuts a device off a RabbitMQ cluster at once: the management HTTP API lists the connections of a
// user (GET /api/connections) and closes each (DELETE /api/connections/{name}). The HTTP auth
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
  /** Closes every connection of `user`; resolves with how many were closed. */
  closeUserConnections(user: string): Promise<number>;
}

export function createRabbitManagement(o: ManagementOptions): BrokerManagement {
  const auth = 'Basic ' + Buffer.from(`${o.username}:${o.password}`).toString('base64');
  const timeout = o.timeoutMs ?? 5000;
  const call = (url: string, init: RequestInit = {}) =>
    fetch(url, { ...init, headers: { authorization: auth, ...(init.headers ?? {}) }, signal: AbortSignal.timeout(timeout) });
  return {
    async closeUserConnections(user) {
      let lastError: unknown;
      for (const base of o.urls) {
        try {
          const res = await call(`${base.replace(/\/$/, '')}/api/connections?columns=name,user`);
          if (!res.ok) throw new Error(`management API answered ${res.status}`);
          const list = (await res.json()) as Array<{ name?: unknown; user?: unknown }>;
          let closed = 0;
          for (const c of Array.isArray(list) ? list : []) {
            if (c.user !== user || typeof c.name !== 'string') continue;
            const del = await call(`${base.replace(/\/$/, '')}/api/connections/${encodeURIComponent(c.name)}`, { method: 'DELETE', headers: { 'x-reason': 'device revoked' } });
            // 404: it closed meanwhile.
            if (del.ok || del.status === 404) closed++;
            else throw new Error(`closing a connection: ${del.status}`);
          }
          return closed;
        } catch (e) {
          lastError = e;
        }
      }
      o.log.error('could not close the connections of a revoked device on the broker cluster', { edgeId: user, error: lastError });
      throw lastError instanceof Error ? lastError : new Error('management API unreachable');
    },
  };
}
