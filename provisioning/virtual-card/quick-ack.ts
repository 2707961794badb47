// TCP_QUICKACK for a Node socket, through libc's setsockopt via koffi (Node has no API for it).
//
// Why: vpcd writes each 2-byte length and its APDU in two TCP writes. With Nagle on vpcd's side and
// delayed ACK on ours, the APDU waits for our ACK of the length header: about 40 ms per APDU.
// Setting TCP_QUICKACK right after a read sends that ACK at once. Linux clears the flag again on its
// own (tcp(7): "not permanent"), so the caller re-arms it after every read.
import type { Socket } from 'node:net';
import { createRequire } from 'node:module';

const IPPROTO_TCP = 6;
const TCP_QUICKACK = 12; // <netinet/tcp.h>, Linux only

type SetSockOpt = (fd: number, level: number, name: number, value: Int32Array, len: number) => number;

let setsockopt: SetSockOpt | null | undefined;
let whyNot = '';

function load(): SetSockOpt | null {
  if (setsockopt !== undefined) return setsockopt;
  setsockopt = null;
  if (process.platform !== 'linux') {
    whyNot = `TCP_QUICKACK exists only on Linux (this is ${process.platform})`;
    return null;
  }
  try {
    const require = createRequire(import.meta.url);
    const koffi = require('koffi') as typeof import('koffi');
    const libc = koffi.load('libc.so.6');
    setsockopt = libc.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)') as SetSockOpt;
  } catch (err) {
    whyNot = `koffi could not load libc setsockopt: ${(err as Error).message}`;
  }
  return setsockopt;
}

const ONE = Int32Array.of(1);

/**
 * A function that re-arms TCP_QUICKACK on `socket`, or null when that is impossible here (reason in
 * `quickAckUnavailableReason()`); the caller then lives with delayed ACKs.
 */
export function quickAckArmer(socket: Socket): (() => boolean) | null {
  const fn = load();
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (!fn) return null;
  if (typeof fd !== 'number' || fd < 0) {
    whyNot = 'the socket has no file descriptor';
    return null;
  }
  return () => fn(fd, IPPROTO_TCP, TCP_QUICKACK, ONE, 4) === 0;
}

/** Why quickAckArmer returned null, for a one-time log line. */
export function quickAckUnavailableReason(): string {
  return whyNot;
}
