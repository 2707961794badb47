// The key a client address is counted under for sign-in limits: an IPv4 address as it is, an IPv6
// address by its /64 prefix (RFC 4291 2.5.4, RFC 6177: one subnet, usually one site or host, holds a
// whole /64, so counting single IPv6 addresses would let one attacker rotate through 2^64 of them).
import { isIPv4, isIPv6 } from 'node:net';

/** Eight 16-bit groups of an IPv6 address (already checked with isIPv6, zone id removed). */
function groups(a: string): number[] {
  let text = a;
  // A trailing dotted quad (RFC 4291 2.2 form 3) becomes two hex groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const p = tail.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((p[0] << 8) | p[1]).toString(16)}:${((p[2] << 8) | p[3]).toString(16)}`;
  }
  const [head, rest] = text.split('::');
  const parse = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = parse(head);
  if (rest === undefined) return h;
  const t = parse(rest);
  return [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
}

/**
 * `203.0.113.7` -> `203.0.113.7`; `2001:db8:1:2:aaaa::1` -> `2001:db8:1:2::/64`; an IPv4-mapped
 * IPv6 address (a dual-stack socket's IPv4 peer, RFC 4291 2.5.5.2) -> its IPv4 address; anything
 * else (an in-process request, 'unknown') as it is, cut to 64 characters.
 */
export function addressKey(raw: string): string {
  let a = raw.trim();
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  if (isIPv4(a)) return a;
  if (!isIPv6(a)) return raw.trim().slice(0, 64);
  const g = groups(a.toLowerCase());
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `${g[6] >> 8}.${g[6] & 255}.${g[7] >> 8}.${g[7] & 255}`;
  return `${g
    .slice(0, 4)
    .map((x) => x.toString(16))
    .join(':')}::/64`;
}
