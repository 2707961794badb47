// What the broker's hooks share: the device repo, the identities of authenticated connections, and
// one place where every refusal is logged with its stable code and counted.
import type { AedesPublishPacket, Client } from 'aedes';
import type { ErrorCode } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { DeviceRepo } from '../store/device-repo.ts';
import { createMessageIds } from './encoded-publish.ts';
import type { EdgeIdentity } from './identity.ts';

export interface WillPacket {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
}

export interface BrokerContext {
  devices: DeviceRepo;
  log: Logger;
  now: () => number;
  /** Identity of every connection that passed authenticate. */
  identities: WeakMap<Client, EdgeIdentity>;
  /** The live, registered connection of each edge. */
  connected: Map<string, Client>;
  /** The will of each CONNECT, kept from preConnect until authenticate has checked it. */
  wills: WeakMap<Client, WillPacket | undefined>;
  /** Connections from the development plain listener (no certificate). */
  plainConnections: WeakSet<object>;
  /**
   * TLS connections whose certificate the device CA signed but whose validity period excludes now:
   * let through to CONNECT only to be refused with CONNACK 5, so the edge learns to re-enroll.
   */
  outOfValidity: WeakMap<object, 'cert_expired' | 'cert_not_yet_valid'>;
  /** Logs a refusal (`warn`, with its code) and counts it; the broker carries on serving the others. */
  refuse(code: ErrorCode, what: string, fields?: Record<string, unknown>): void;
  /** Refusals so far, by code. */
  refusals: Map<string, number>;
  /** The forward of a QoS > 0 message with its one packet identifier for every edge (encoded-publish.ts). */
  withMessageId: (packet: AedesPublishPacket, serviceId: string) => AedesPublishPacket;
}

/** Makes the context; `refuse` logs one line per refusal. */
export function createBrokerContext(devices: DeviceRepo, log: Logger, now: () => number): BrokerContext {
  const refusals = new Map<string, number>();
  return {
    devices,
    log,
    now,
    identities: new WeakMap(),
    connected: new Map(),
    wills: new WeakMap(),
    plainConnections: new WeakSet(),
    outOfValidity: new WeakMap(),
    refusals,
    withMessageId: createMessageIds(),
    refuse(code, what, fields) {
      refusals.set(code, (refusals.get(code) ?? 0) + 1);
      log.warn(`refused: ${what}`, { code, ...fields });
    },
  };
}
