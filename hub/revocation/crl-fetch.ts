// The CRL's bytes in and out: a download from a CRL distribution point with a timeout and a size bound
// (a national CRL is hundreds of megabytes at most; more is refused before it is all read), and the
// applied CRL saved for restarts, atomically (write beside, fsync, rename).
import { closeSync, fsyncSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';

/** Downloads a CRL; throws a plain Error saying why (the caller records it as crl_fetch_failed). */
export async function downloadCrl(url: string, o: { timeoutMs: number; maxBytes: number }): Promise<Uint8Array> {
  const res = await fetch(url, { signal: AbortSignal.timeout(o.timeoutMs) });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
  const declared = Number(res.headers.get('content-length') ?? 0);
  if (declared > o.maxBytes) throw new Error(`CRL of ${declared} bytes is larger than the limit ${o.maxBytes}`);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > o.maxBytes) throw new Error(`CRL is larger than the limit ${o.maxBytes}`);
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks, total));
}

/** Writes a file atomically, blocking (tools, tests: the synchronous apply). */
export function atomicWrite(path: string, data: Uint8Array): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, data);
  const fd = openSync(tmp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path);
}

/**
 * The same on the libuv pool: writing and fsyncing a CRL of tens of megabytes takes the disk's time,
 * which a scheduled run must not take from the event loop.
 */
export async function atomicWriteAsync(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}
