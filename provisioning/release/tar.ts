// A release bundle: a POSIX ustar archive (POSIX.1-1988 / IEEE 1003.1 "ustar Interchange Format") of
// a folder's regular files and folders, sorted by path with fixed owner and times so the same folder
// always gives the same bytes (and the same digest). Links and special files are never packed.
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';

const BLOCK = 512;

/** Every file and folder under `dir`, as POSIX relative paths, sorted. */
function walk(dir: string, skip: (rel: string) => boolean, rel = ''): { path: string; dir: boolean; mode: number }[] {
  const out: { path: string; dir: boolean; mode: number }[] = [];
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const r = rel ? posix.join(rel, name) : name;
    if (skip(r)) continue;
    // lstat: a symbolic link is neither followed nor packed.
    const st = lstatSync(join(dir, r));
    if (st.isDirectory()) {
      out.push({ path: r, dir: true, mode: 0o755 });
      out.push(...walk(dir, skip, r));
    } else if (st.isFile()) out.push({ path: r, dir: false, mode: st.mode & 0o111 ? 0o755 : 0o644 });
  }
  return out;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** One ustar header block. */
export function ustarHeader(path: string, size: number, type: '0' | '5', mode: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  let name = path;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    // ustar: a long path is split at a '/' into prefix (155) and name (100).
    const cut = path.lastIndexOf('/', 155);
    if (cut <= 0 || Buffer.byteLength(path.slice(cut + 1)) > 100) throw new Error(`path too long for ustar: ${path}`);
    prefix = path.slice(0, cut);
    name = path.slice(cut + 1);
  }
  h.write(name, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii'); // uid
  h.write(octal(0, 8), 116, 'ascii'); // gid
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(0, 12), 136, 'ascii'); // mtime: fixed, for reproducible bundles
  h.fill(' ', 148, 156); // checksum field counts as spaces while summing
  h.write(type, 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

/**
 * Packs a folder into a ustar archive (the folder's contents at the archive's top level). `skip`
 * leaves out paths (relative, POSIX); node_modules is always left out: a release carries its bundles,
 * and its native modules are the ones installed on the reader.
 */
export function packFolder(dir: string, skip: (rel: string) => boolean = () => false): Buffer {
  const parts: Buffer[] = [];
  for (const e of walk(dir, (r) => r === 'node_modules' || r.endsWith('/node_modules') || skip(r))) {
    if (e.dir) {
      parts.push(ustarHeader(`${e.path}/`, 0, '5', e.mode));
      continue;
    }
    const data = readFileSync(join(dir, e.path));
    parts.push(ustarHeader(e.path, data.length, '0', e.mode), data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(BLOCK * 2)); // end of archive: two zero blocks
  return Buffer.concat(parts);
}
