// One PUBLISH, encoded once, written to every edge as the same buffer.
//
// A change-log message goes to every edge of its service (1,000 and more at a time). aedes writes each
// copy with mqtt-packet's writeToStream, which writes a PUBLISH as six small chunks (fixed header,
// remaining length, topic length, topic, packet id, payload) under cork/uncork; Node's TLS socket then
// copies the chunks into one new buffer before encrypting (TLSWrap::DoWrite with more than one
// buffer). For a 64 KiB batch to 1,000 edges that is 64 MB copied, 6,000 stream writes and 1,000
// cork/uncork rounds per message, on the hub's one thread. Two things remove it:
//
// 1. Packet identifiers by message, not by connection (`createMessageIds`, used by authorizeForward).
//    MQTT 3.1.1 2.3.1: an identifier is scoped to one session, and a sender must not reuse one that is
//    still unacknowledged in that session [MQTT-2.3.1-2]; nothing asks for different numbers in
//    different sessions. So every edge gets a message's PUBLISH under the same identifier, taken from
//    its service's counter, which advances once per message of that service: in each session
//    identifiers still come in order and return only after 65,535 later messages of the service
//    (aedes' own counter returns after 65,535 messages to that one edge). aedes takes the identifier of the packet authorizeForward returns (lib/qos-packet.js).
//    Should an edge ever sit on an unacknowledged identifier that long, the worst case is one extra
//    redelivery of a change-log entry (QoS 1 is at least once; edges apply by seq, idempotently).
// 2. The bytes of such a PUBLISH are then the same for every edge: `installEncodedPublishWrites`
//    wraps mqtt-packet's writeToStream (the one aedes calls, lib/write.js) so that a PUBLISH whose
//    header fields equal those of the last PUBLISH written with the same payload Buffer is written
//    from the bytes encoded then, in one write: no copy in JavaScript, none in TLSWrap (one buffer).
//    The bytes are mqtt-packet's own encoding of exactly those fields, so the wire is unchanged;
//    anything else (another packet type, MQTT 5, a different header, a string payload) goes through
//    mqtt-packet as before.
import type { AedesPublishPacket } from 'aedes';
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet';
import type { Writable } from 'node:stream';

interface Encoded {
  topic: string;
  qos: number;
  dup: boolean;
  retain: boolean;
  messageId: number | undefined;
  bytes: Buffer;
}

/** The last PUBLISH encoded for each payload Buffer (held only as long as aedes holds the payload). */
const byPayload = new WeakMap<Buffer, Encoded>();
const counts = { encoded: 0, reused: 0 };
const INSTALLED = Symbol.for('mykey.broker.encodedPublishWrites');

type WriteToStream = (packet: Packet, stream: Writable, opts?: { protocolVersion?: number }) => boolean;

function sameHeader(e: Encoded, p: IPublishPacket): boolean {
  return e.topic === p.topic && e.qos === (p.qos ?? 0) && e.dup === Boolean(p.dup) && e.retain === Boolean(p.retain) && e.messageId === (p.qos ? p.messageId : undefined);
}

/**
 * Makes mqtt-packet's writeToStream write a repeated PUBLISH from the bytes encoded the first time
 * (see the top of this file). Idempotent: the wrapper is installed once per process.
 */
export function installEncodedPublishWrites(): void {
  const mod = mqttPacket as unknown as { writeToStream: WriteToStream; [INSTALLED]?: true };
  if (mod[INSTALLED]) return;
  const original = mod.writeToStream;
  const wrapped: WriteToStream = (packet, stream, opts) => {
    if (packet.cmd !== 'publish' || (opts?.protocolVersion ?? 4) === 5 || packet.properties || !Buffer.isBuffer(packet.payload) || typeof packet.topic !== 'string') {
      return original(packet, stream, opts);
    }
    let e = byPayload.get(packet.payload);
    if (e && sameHeader(e, packet)) counts.reused++;
    else {
      const qos = packet.qos ?? 0;
      let bytes: Buffer;
      try {
        bytes = mqttPacket.generate(packet);
      } catch {
        // An invalid packet (no packet id at QoS 1...): mqtt-packet's own writeToStream ends the
        // stream with its error, as before.
        return original(packet, stream, opts);
      }
      e = {
        topic: packet.topic,
        qos,
        dup: Boolean(packet.dup),
        retain: Boolean(packet.retain),
        messageId: qos ? packet.messageId : undefined,
        bytes,
      };
      byPayload.set(packet.payload, e);
      counts.encoded++;
    }
    return stream.write(e.bytes);
  };
  // writeToStream's own switch (cacheNumbers) stays the original's.
  Object.defineProperty(wrapped, 'cacheNumbers', {
    get: () => (original as unknown as { cacheNumbers: boolean }).cacheNumbers,
    set: (v: boolean) => {
      (original as unknown as { cacheNumbers: boolean }).cacheNumbers = v;
    },
  });
  // aedes calls `mqtt.writeToStream(...)` on the module object at each write, so replacing the
  // property reaches it.
  mod.writeToStream = wrapped;
  mod[INSTALLED] = true;
}

/** PUBLISH packets encoded, and written again from those bytes, in this process (tests, benches). */
export function encodedPublishCounts(): { encoded: number; reused: number } {
  return { ...counts };
}

/**
 * One packet identifier per message for QoS > 0 forwards (see the top of this file): the first edge a
 * message goes to draws the next identifier of its service's counter (1 to 65,535, never 0: aedes
 * would draw its own), every other edge gets the same. A counter per service, not one for the hub:
 * an edge receives only its service's log and its own commands, so one counter still covers every
 * identifier of its session, and the identifiers it sees tell nothing of other services' traffic.
 * aedes hands each subscription its own copy of the packet (lib/handlers/subscribe.js), so a message
 * is known by its payload Buffer, which the copies share, and its broker counter. A packet that
 * already has an identifier (a redelivery from an edge's session) keeps it, as [MQTT-4.4.0-1] requires.
 */
export function createMessageIds() {
  const next = new Map<string, number>();
  const byPayload = new WeakMap<Buffer, { brokerId: string; brokerCounter: number; serviceId: string; messageId: number }>();
  return (packet: AedesPublishPacket, serviceId: string): AedesPublishPacket => {
    if (!packet.qos || packet.messageId || !Buffer.isBuffer(packet.payload)) return packet;
    let m = byPayload.get(packet.payload);
    if (!m || m.brokerCounter !== packet.brokerCounter || m.brokerId !== packet.brokerId || m.serviceId !== serviceId) {
      const id = next.get(serviceId) ?? 1;
      next.set(serviceId, id === 65535 ? 1 : id + 1);
      m = { brokerId: packet.brokerId, brokerCounter: packet.brokerCounter, serviceId, messageId: id };
      byPayload.set(packet.payload, m);
    }
    return { ...packet, messageId: m.messageId };
  };
}
