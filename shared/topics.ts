// MQTT topics of the edge-hub protocol (MQTT 3.1.1 only, so any standard broker can stand in for the
// hub's aedes). Build and parse topics with these functions; never write topic strings by hand.
//
//   mykey/v1/svc/{serviceId}/log        hub -> edges of a service: change-log entries (QoS 1)
//   mykey/v1/edge/{edgeId}/status       edge -> hub: retained status, also the edge's will (QoS 1)
//   mykey/v1/edge/{edgeId}/cmd          hub -> one edge: commands (QoS 1)
//   mykey/v1/edge/{edgeId}/reply        edge -> hub: command replies, echoing the transaction (QoS 1)
import { isEdgeId, isServiceId } from './ids.ts';

/** Root of every topic, versioned so a future protocol can live beside this one. */
export const TOPIC_ROOT = 'mykey/v1';

/** Topic of a service's change log. */
export function serviceLogTopic(serviceId: string): string {
  if (!isServiceId(serviceId)) throw new Error(`invalid service id: ${serviceId}`);
  return `${TOPIC_ROOT}/svc/${serviceId}/log`;
}

/** Topic of an edge's retained status (and will). */
export function edgeStatusTopic(edgeId: string): string {
  if (!isEdgeId(edgeId)) throw new Error(`invalid edge id: ${edgeId}`);
  return `${TOPIC_ROOT}/edge/${edgeId}/status`;
}

/** Topic of commands to one edge. */
export function edgeCommandTopic(edgeId: string): string {
  if (!isEdgeId(edgeId)) throw new Error(`invalid edge id: ${edgeId}`);
  return `${TOPIC_ROOT}/edge/${edgeId}/cmd`;
}

/** Topic of an edge's replies to commands. */
export function edgeReplyTopic(edgeId: string): string {
  if (!isEdgeId(edgeId)) throw new Error(`invalid edge id: ${edgeId}`);
  return `${TOPIC_ROOT}/edge/${edgeId}/reply`;
}

/** What a topic is, parsed; `undefined` for anything outside the protocol (including wildcards). */
export type ParsedTopic = { kind: 'service-log'; serviceId: string } | { kind: 'edge-status'; edgeId: string } | { kind: 'edge-command'; edgeId: string } | { kind: 'edge-reply'; edgeId: string };

/** Parses a concrete topic name. Wildcards and unknown shapes give undefined. */
export function parseTopic(topic: string): ParsedTopic | undefined {
  const parts = topic.split('/');
  if (parts.length !== 5 || `${parts[0]}/${parts[1]}` !== TOPIC_ROOT) return undefined;
  const [, , scope, id, leaf] = parts;
  if (scope === 'svc' && leaf === 'log' && isServiceId(id)) return { kind: 'service-log', serviceId: id };
  if (scope === 'edge' && isEdgeId(id)) {
    if (leaf === 'status') return { kind: 'edge-status', edgeId: id };
    if (leaf === 'cmd') return { kind: 'edge-command', edgeId: id };
    if (leaf === 'reply') return { kind: 'edge-reply', edgeId: id };
  }
  return undefined;
}
