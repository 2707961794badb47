// Replacing a file so that a crash leaves either the old bytes or the new, never a torn mix: the new
// bytes go to a temporary file beside it, are fsynced, and the temporary file is renamed over the old
// one (POSIX rename(2) is atomic within one file system). The edge's state files and the hub's saved
// CRLs both write this way; what each adds (the edge fsyncs the directory too) stays with it.
import { open, rename } from 'node:fs/promises';

/** Writes `data` to `o.tmp` (created with `o.mode`, else the default 0o666 less the umask), fsyncs it, renames it over `path`. */
export async function replaceFileAtomically(path: string, data: string | Uint8Array, o: { tmp: string; mode?: number }): Promise<void> {
  const fh = await open(o.tmp, 'w', o.mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(o.tmp, path);
}
