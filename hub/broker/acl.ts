// What an edge may do on the broker: deny by default, allow exactly these (pure; used by the aedes
// hooks and by the Mosquitto ACL file of the interop test and the benchmark).
//   subscribe  its service's change log, its own command topic (exact names: no wildcards)
//   publish    its own status (retained, also its will) and its own command replies
// The hub publishes on the service logs and command topics itself, inside the process.
import { fail, ok, type Result } from '../../shared/errors.ts';
import type { EdgeIdentity } from './identity.ts';

/** MQTT 3.1.1 4.7.1: `#` and `+` are wildcards; an edge names topics exactly. */
export function hasWildcard(topic: string): boolean {
  return topic.includes('#') || topic.includes('+');
}

/** May this edge subscribe to this topic filter? */
export function canSubscribe(id: EdgeIdentity, filter: string): Result<'log' | 'cmd', 'topic_forbidden'> {
  if (filter === id.topics.log) return ok('log');
  if (filter === id.topics.cmd) return ok('cmd');
  return fail('topic_forbidden', hasWildcard(filter) ? 'wildcard subscriptions are refused' : 'not this edge’s topic');
}

/** May this edge publish on this topic? (The payload is checked separately.) */
export function canPublish(id: EdgeIdentity, topic: string): Result<'status' | 'reply', 'topic_forbidden'> {
  if (topic === id.topics.status) return ok('status');
  if (topic === id.topics.reply) return ok('reply');
  return fail('topic_forbidden', 'edges publish only their own status and replies');
}

/** May a message on `topic` be delivered to this edge? (Defence in depth behind canSubscribe.) */
export function canReceive(id: EdgeIdentity, topic: string): boolean {
  return topic === id.topics.log || topic === id.topics.cmd;
}

/**
 * The same rules as a Mosquitto `acl_file` for the given edges (with `use_identity_as_username true`
 * the username is the certificate CN, the edge id). `hubUser` may write every log and command topic.
 */
export function mosquittoAcl(edges: Iterable<EdgeIdentity>, hubUser: string): string {
  const lines = [`user ${hubUser}`, 'topic write mykey/v1/svc/+/log', 'topic write mykey/v1/edge/+/cmd', 'topic read mykey/v1/edge/+/status', 'topic read mykey/v1/edge/+/reply', ''];
  for (const e of edges) {
    lines.push(`user ${e.edgeId}`, `topic read ${e.topics.log}`, `topic read ${e.topics.cmd}`, `topic write ${e.topics.status}`, `topic write ${e.topics.reply}`, '');
  }
  return lines.join('\n');
}
