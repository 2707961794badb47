// Raw MQTT bytes for tests that speak to the broker below the client library.

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
