// Where the hub may send webhooks. A webhook URL is set by an operator for a service, but the hub is
// the one that connects: a URL aimed at the hub's own machine, the cloud metadata service
// (169.254.169.254) or an internal network would turn the hub into a way in (server-side request
// forgery). So: https only, and no loopback, link-local, private, unspecified or multicast target,
// unless the operator allows it in the config. Checked when the URL is set (literal addresses and
// localhost names) and again at every delivery on the addresses the name resolves to, and the
// connection goes to the very address that was checked (no second lookup a rebinding DNS could answer
// differently).
import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { MyKeyError } from '../../shared/errors.ts';

/** The operator's choices (hub config `webhooks`). */
export interface WebhookUrlPolicy {
  /** Allow loopback, link-local, private, unspecified and multicast targets (and plain http with them). */
  allowPrivateTargets: boolean;
  /** Allow plain http to any target (development only). */
  allowHttp: boolean;
}

/** The strict default: https to public addresses only. */
export const STRICT_WEBHOOK_POLICY: WebhookUrlPolicy = { allowPrivateTargets: false, allowHttp: false };

/** One resolved address. */
export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to all its addresses (a seam: tests give their own DNS). */
export type WebhookLookup = (hostname: string) => Promise<ResolvedAddress[]>;

/** The system resolver, every address. */
export const systemLookup: WebhookLookup = async (hostname) => (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));

// IANA special-purpose registries (RFC 6890): what no public service lives at.
const NON_PUBLIC = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], // "this network", 0.0.0.0 unspecified (RFC 1122 3.2.1.3)
  ['10.0.0.0', 8], // private (RFC 1918)
  ['100.64.0.0', 10], // shared address space, carrier NAT (RFC 6598)
  ['127.0.0.0', 8], // loopback (RFC 1122)
  ['169.254.0.0', 16], // link-local, cloud metadata (RFC 3927)
  ['172.16.0.0', 12], // private (RFC 1918)
  ['192.0.0.0', 24], // IETF protocol assignments (RFC 6890)
  ['192.168.0.0', 16], // private (RFC 1918)
  ['198.18.0.0', 15], // benchmarking (RFC 2544)
  ['224.0.0.0', 4], // multicast (RFC 5771)
  ['240.0.0.0', 4], // reserved, and 255.255.255.255 broadcast (RFC 1112)
] as const)
  NON_PUBLIC.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128], // unspecified (RFC 4291 2.5.2)
  ['::1', 128], // loopback (RFC 4291 2.5.3)
  ['fc00::', 7], // unique local (RFC 4193)
  ['fe80::', 10], // link-local (RFC 4291 2.5.6)
  ['ff00::', 8], // multicast (RFC 4291 2.7)
  ['64:ff9b:1::', 48], // local-use NAT64 (RFC 8215)
] as const)
  NON_PUBLIC.addSubnet(net, bits, 'ipv6');

/** True for an address a webhook must not reach by default (IPv4-mapped IPv6 judged as its IPv4). */
export function isNonPublicAddress(address: string): boolean {
  const a = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const kind = isIP(a);
  if (kind === 4) return NON_PUBLIC.check(a, 'ipv4');
  if (kind !== 6) return true; // not an address at all: refuse
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (mapped) return NON_PUBLIC.check(mapped[1]!, 'ipv4');
  // ::ffff:7f00:1 and the like: the IPv4-mapped range as a whole is judged by its IPv4 form.
  const hexMapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(a);
  if (hexMapped) {
    const hi = parseInt(hexMapped[1]!, 16);
    const lo = parseInt(hexMapped[2]!, 16);
    return NON_PUBLIC.check(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, 'ipv4');
  }
  return NON_PUBLIC.check(a, 'ipv6');
}

/**
 * Checks a webhook URL as an operator sets it: absolute http(s) without credentials, https unless
 * allowed, and no non-public literal address or localhost name unless allowed. Throws MyKeyError
 * webhook_url_invalid, webhook_url_insecure or webhook_url_private. Names are checked at delivery.
 */
export function checkWebhookUrl(raw: string, policy: WebhookUrlPolicy = STRICT_WEBHOOK_POLICY): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new MyKeyError('webhook_url_invalid', 'the webhook URL is not an absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new MyKeyError('webhook_url_invalid', 'the webhook URL must be http(s)');
  if (url.username || url.password) throw new MyKeyError('webhook_url_invalid', 'the webhook URL must not carry credentials');
  if (raw.length > 2000) throw new MyKeyError('webhook_url_invalid', 'the webhook URL is longer than 2000 characters');
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const localName = host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.local') || (!host.includes('.') && isIP(host) === 0);
  const nonPublic = isIP(host) !== 0 ? isNonPublicAddress(host) : localName;
  if (nonPublic && !policy.allowPrivateTargets) {
    throw new MyKeyError('webhook_url_private', 'the webhook URL points at a loopback, link-local, private, unspecified or multicast address');
  }
  if (url.protocol === 'http:' && !policy.allowHttp && !policy.allowPrivateTargets) {
    throw new MyKeyError('webhook_url_insecure', 'the webhook URL must use https');
  }
  return url;
}

/**
 * Resolves a webhook URL's host for one delivery and checks every address it resolves to; returns
 * the address to connect to. A name that resolves to any non-public address is refused (a rebinding
 * DNS could hand out the other one next time). Throws MyKeyError webhook_url_private.
 */
export async function resolveWebhookTarget(url: URL, policy: WebhookUrlPolicy, lookup: WebhookLookup = systemLookup): Promise<ResolvedAddress> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const literal = isIP(host);
  const addresses: ResolvedAddress[] = literal ? [{ address: host, family: literal === 6 ? 6 : 4 }] : await lookup(host);
  if (addresses.length === 0) throw new MyKeyError('webhook_url_invalid', `${host} resolves to no address`);
  if (!policy.allowPrivateTargets && addresses.some((a) => isNonPublicAddress(a.address))) {
    throw new MyKeyError('webhook_url_private', `${host} resolves to a loopback, link-local, private, unspecified or multicast address`);
  }
  return addresses[0]!;
}
