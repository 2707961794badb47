// The hub as the clustered broker's authority: the HTTP authentication/authorization backend of
// RabbitMQ (rabbitmq_auth_backend_http, `auth_http.http_method = post`, form-encoded parameters) on
// its own listener. Each path answers the body `allow` or `deny` (RabbitMQ's contract); deny by
// default. The rules are the embedded broker's own (hub/broker/acl.ts), applied to the identity of
// the device row of the user name, which the broker takes from the TLS client certificate's CN
// (`mqtt.ssl_cert_login = true`, `ssl_cert_login_from = common_name`) after checking its chain
// against the device CA.
//
//   POST /user      username[, password]                     who may connect
//   POST /vhost     username, vhost, ip, client_id           the one vhost `/`; client id = edge id
//   POST /resource  username, vhost, resource, name, permission
//                   the edge's own session queue, the MQTT exchange
//   POST /topic     username, vhost, resource, name, permission, routing_key
//                   read = subscribe (canSubscribe), write = publish (canPublish)
//
// The hub's own MQTT client signs in with a user name and password (config broker.external) and may
// write the change logs and commands and read statuses and replies, exactly as in mosquittoAcl.
import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono } from 'hono';
import type { ErrorCode } from '../../shared/errors.ts';
import { isEdgeId } from '../../shared/ids.ts';
import type { Logger } from '../../shared/log.ts';
import { TOPIC_ROOT } from '../../shared/topics.ts';
import { canPublish, canSubscribe } from '../broker/acl.ts';
import { edgeIdentity, type EdgeIdentity } from '../broker/identity.ts';
import type { DeviceRepo } from '../store/device-repo.ts';

export interface BrokerAuthDeps {
  devices: Pick<DeviceRepo, 'get'>;
  log: Logger;
  /** The hub's own broker user; an empty password disables it. */
  hubUser: { username: string; password: string };
  /** The exchange the MQTT plugin publishes to (`mqtt.exchange`). */
  exchange?: string;
}

/** The largest form body RabbitMQ sends (user names, routing keys): anything bigger is refused. */
const MAX_BODY_BYTES = 8192;

/**
 * RabbitMQ's MQTT plugin maps topics to AMQP routing keys: `/` to `.`, `+` to `*` (`#` stays).
 * Edge and service ids hold no `.`, so the mapping is reversible for every topic of ours.
 */
export function mqttTopicOf(routingKey: string): string {
  return routingKey.replaceAll('.', '/').replaceAll('*', '+');
}

function sameSecret(a: string, b: string): boolean {
  const d = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(d(a), d(b));
}

/** The routes, mounted on their own listener (see hub/main.ts, config brokerAuth). */
export function createBrokerAuthApp(deps: BrokerAuthDeps): Hono {
  const exchange = deps.exchange ?? 'amq.topic';
  const hubName = deps.hubUser.username;
  const app = new Hono();

  const refuse = (code: ErrorCode, what: string, user: string): 'deny' => {
    // Edge ids are device names, not usage; topics (which name services) are not logged.
    deps.log.warn(`broker refused: ${what}`, { code, edgeId: isEdgeId(user) ? user : undefined });
    return 'deny';
  };

  /** The identity of an active device, or undefined (unknown, revoked: deny). */
  const activeEdge = async (username: string): Promise<EdgeIdentity | undefined> => {
    if (!isEdgeId(username)) return undefined;
    const row = await deps.devices.get(username);
    if (!row || row.status !== 'active') return undefined;
    return edgeIdentity(row.edge_id, row.service_id, row.cert_fingerprint, row.not_after);
  };

  const isHub = (username: string) => hubName !== '' && deps.hubUser.password !== '' && username === hubName;

  async function form(req: Request): Promise<Record<string, string> | undefined> {
    const len = Number(req.headers.get('content-length') ?? '0');
    if (len > MAX_BODY_BYTES) return undefined;
    const text = req.method === 'POST' ? await req.text() : new URL(req.url).search.slice(1);
    if (text.length > MAX_BODY_BYTES) return undefined;
    const out: Record<string, string> = {};
    for (const [k, v] of new URLSearchParams(text)) out[k] = v;
    return out;
  }

  const decide = (fn: (p: Record<string, string>) => Promise<'allow' | 'deny'>) => async (c: { req: { raw: Request }; text: (t: string) => Response }) => {
    const p = await form(c.req.raw);
    if (!p || typeof p.username !== 'string') return c.text('deny');
    return c.text(await fn(p));
  };

  for (const method of ['post', 'get'] as const) {
    app[method](
      '/user',
      decide(async (p) => {
        const u = p.username!;
        if (isHub(u)) {
          // The hub signs in with its password; a certificate login carries none.
          return typeof p.password === 'string' && sameSecret(p.password, deps.hubUser.password) ? 'allow' : refuse('unauthorized', 'hub user with a wrong password', u);
        }
        // An edge logs in with its certificate only: the broker then sends no password field at all. A
        // password login under an edge's name (even an empty one, on any listener) would be a way
        // around the certificate, so it is refused.
        if ('password' in p) return refuse('unauthorized', 'password login under an edge name', u);
        if (!isEdgeId(u)) return refuse('device_unknown', 'not an edge id', u);
        const row = await deps.devices.get(u);
        if (!row) return refuse('device_unknown', 'unknown device', u);
        if (row.status !== 'active') return refuse('device_revoked', 'device revoked', u);
        return 'allow';
      }),
    );

    app[method](
      '/vhost',
      decide(async (p) => {
        const u = p.username!;
        if (p.vhost !== '/') return refuse('unauthorized', 'other vhost', u);
        if (isHub(u)) return 'allow';
        if (!(await activeEdge(u))) return refuse('device_revoked', 'vhost for an inactive device', u);
        // MQTT 3.1.1 3.1.3.1: the Server may restrict client ids; ours is the certificate's edge id, as on
        // the embedded broker. Without this, an edge could take over another's session [MQTT-3.1.4-2]
        // and cut it off. RabbitMQ's MQTT plugin sends the client id with the vhost check (3.8+).
        if (p.client_id !== u) return refuse('device_id_mismatch', 'client id is not the certificate edge id', u);
        return 'allow';
      }),
    );

    app[method](
      '/resource',
      decide(async (p) => {
        const u = p.username!;
        const id = await activeEdge(u);
        if (!id && !isHub(u)) return refuse('device_revoked', 'resource for an inactive device', u);
        if (p.vhost !== '/') return refuse('unauthorized', 'other vhost', u);
        if (p.resource === 'exchange' && p.name === exchange && (p.permission === 'read' || p.permission === 'write')) return 'allow';
        // The MQTT plugin keeps a session in the queue mqtt-subscription-<client id>qos0|qos1. An edge
        // may only have its own (its client id is its edge id, as on the embedded broker).
        if (p.resource === 'queue' && id && (p.name === `mqtt-subscription-${id.edgeId}qos0` || p.name === `mqtt-subscription-${id.edgeId}qos1`)) return 'allow';
        if (p.resource === 'queue' && isHub(u) && p.name?.startsWith(`mqtt-subscription-${hubName}`)) return 'allow';
        return refuse('topic_forbidden', `${p.resource} ${p.permission}`, u);
      }),
    );

    app[method](
      '/topic',
      decide(async (p) => {
        const u = p.username!;
        if (p.vhost !== '/' || p.name !== exchange || typeof p.routing_key !== 'string') return refuse('topic_forbidden', 'other exchange', u);
        const topic = mqttTopicOf(p.routing_key);
        if (isHub(u)) {
          const parts = topic.split('/');
          const [r1, r2, kind, idPart, leaf] = parts;
          if (parts.length !== 5 || `${r1}/${r2}` !== TOPIC_ROOT) return refuse('topic_forbidden', 'hub topic outside the protocol', u);
          if (p.permission === 'write' && ((kind === 'svc' && leaf === 'log') || (kind === 'edge' && leaf === 'cmd')) && !idPart!.includes('#')) return 'allow';
          if (p.permission === 'read' && kind === 'edge' && (leaf === 'status' || leaf === 'reply')) return 'allow';
          return refuse('topic_forbidden', 'hub topic', u);
        }
        const id = await activeEdge(u);
        if (!id) return refuse('device_revoked', 'topic for an inactive device', u);
        if (p.permission === 'read') {
          const r = canSubscribe(id, topic);
          return r.ok ? 'allow' : refuse(r.code, `subscribe: ${r.message}`, u);
        }
        if (p.permission === 'write') {
          const r = canPublish(id, topic);
          return r.ok ? 'allow' : refuse(r.code, `publish: ${r.message}`, u);
        }
        return refuse('topic_forbidden', 'unknown permission', u);
      }),
    );
  }
  return app;
}
