// Raw MQTT bytes for tests that speak to the broker below the client library.
import type { TLSSocket } from 'node:tls';

/** MQTT 3.1.1 2.2.3: the Remaining Length, 7 bits a byte, the high bit saying another byte follows. */
export function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/**
 * Writes `header`, then streams filler as fast as the socket takes it until the peer closes or
 * `cap` bytes went out. Resolves with what was sent after the header and how long it took.
 */
export function stream(s: TLSSocket, header: Buffer, cap: number): Promise<{ sent: number; ms: number; closed: boolean }> {
  const t0 = Date.now();
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  let sent = 0;
  let closed = false;
  return new Promise((resolve) => {
    const finish = () => resolve({ sent, ms: Date.now() - t0, closed });
    s.on('error', () => undefined);
    s.once('close', () => {
      closed = true;
      finish();
    });
    s.write(header);
    const pump = () => {
      while (!closed && sent < cap) {
        sent += chunk.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      if (!closed) {
        s.destroy();
        finish();
      }
    };
    pump();
  });
}
