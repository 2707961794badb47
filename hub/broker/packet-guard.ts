// A packet-size limit enforced at the MQTT fixed header, before anything is buffered. aedes 1.x has
// no such option: its parser (mqtt-packet) collects a whole packet before handing it on, so a PUBLISH
// announcing 200 MB was read into memory in full before the payload check in authorizePublish ran.
// The guard reads each fixed header as the bytes go past and ends the connection on the first one
// that announces more than the limit; the bytes of that packet are never given to aedes.
//
// MQTT 3.1.1 2.2: the fixed header is one byte (packet type, flags) and the remaining length, the
// number of bytes of the variable header and payload that follow. 2.2.3: the remaining length is 1 to
// 4 bytes, 7 bits each, least significant first, bit 8 set on every byte but the last.
import type { Duplex } from 'node:stream';

export type HeaderVerdict = { ok: true } | { ok: false; code: 'mqtt_packet_too_large'; packetType: number; atLeast: number } | { ok: false; code: 'mqtt_packet_malformed'; packetType: number };

/**
 * Follows the packet boundaries of an MQTT 3.1.1 byte stream, chunk by chunk, and judges every fixed
 * header: a remaining length over `maxRemainingLength` is refused as soon as the bytes read so far
 * prove it (a partial length is a lower bound), a fifth length byte is malformed. Pure: no I/O.
 */
export function createFixedHeaderScanner(maxRemainingLength: number) {
  // 0: at a packet's first byte; 1: in the remaining length; 2: in the packet's body.
  let state: 0 | 1 | 2 = 0;
  let packetType = 0;
  let length = 0;
  let multiplier = 1;
  let lengthBytes = 0;
  let left = 0;
  let verdict: HeaderVerdict = { ok: true };
  return {
    /** Takes the next bytes of the stream; once refused, every later call answers the same refusal. */
    push(chunk: Uint8Array): HeaderVerdict {
      if (!verdict.ok) return verdict;
      let i = 0;
      while (i < chunk.length) {
        if (state === 0) {
          packetType = chunk[i++] >> 4;
          length = 0;
          multiplier = 1;
          lengthBytes = 0;
          state = 1;
        } else if (state === 1) {
          const b = chunk[i++];
          lengthBytes++;
          length += (b & 0x7f) * multiplier;
          multiplier *= 128;
          if (length > maxRemainingLength) {
            verdict = { ok: false, code: 'mqtt_packet_too_large', packetType, atLeast: length };
            return verdict;
          }
          if (b & 0x80) {
            if (lengthBytes === 4) {
              verdict = { ok: false, code: 'mqtt_packet_malformed', packetType };
              return verdict;
            }
          } else if (length === 0) state = 0;
          else {
            left = length;
            state = 2;
          }
        } else {
          const take = Math.min(left, chunk.length - i);
          i += take;
          left -= take;
          if (left === 0) state = 0;
        }
      }
      return verdict;
    },
  };
}

/**
 * Puts the scanner on a connection's read path. aedes takes the socket itself (its hooks read the TLS
 * peer certificate off `client.conn`) and pulls bytes with `read()` in paused mode, so the guard wraps
 * that instance's `read`: every byte aedes gets has been scanned, and on a refusal the chunk holding
 * the header is dropped, `onRefuse` runs and the socket is destroyed (MQTT 3.1.1 has no way to answer
 * a packet it will not read [MQTT-4.8.0-1]: the server closes the network connection).
 */
export function guardPacketSize(socket: Duplex, maxRemainingLength: number, onRefuse: (v: Exclude<HeaderVerdict, { ok: true }>) => void): void {
  const scanner = createFixedHeaderScanner(maxRemainingLength);
  const read = socket.read.bind(socket);
  let refused = false;
  socket.read = (size?: number) => {
    if (refused) return null;
    const chunk: unknown = read(size);
    if (chunk === null || chunk === undefined) return chunk;
    const v = scanner.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array));
    if (v.ok) return chunk;
    refused = true;
    try {
      onRefuse(v);
    } finally {
      socket.destroy();
    }
    return null;
  };
}
