// Unpacks a release bundle (ustar, as provisioning/release/tar.ts packs it) into a new folder. Only
// regular files and folders are accepted, each inside the folder: an absolute path, a `..` part, a
// link, a device or a truncated archive refuses the whole bundle (release_bundle_invalid) before it
// can be switched to. The bundle was already verified against its signed digest; this is the second
// wall, for a release key that signed something it should not have.
import { mkdirSync, openSync, writeSync, fsyncSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { fail, ok, type Result } from '../../shared/errors.ts';

const BLOCK = 512;

export interface TarEntry {
  path: string;
  type: 'file' | 'dir';
  mode: number;
  data: Buffer;
}

function field(h: Buffer, start: number, len: number): string {
  const raw = h.subarray(start, start + len);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? len : end).toString('utf8');
}

function octal(h: Buffer, start: number, len: number): number {
  const t = field(h, start, len).trim();
  if (!/^[0-7]*$/.test(t)) return NaN;
  return t ? parseInt(t, 8) : 0;
}

/** Parses the archive into entries; refuses anything but plain files and folders with safe paths. */
export function readTar(buf: Buffer): Result<TarEntry[], 'release_bundle_invalid'> {
  const out: TarEntry[] = [];
  let off = 0;
  while (true) {
    if (off + BLOCK > buf.length) return fail('release_bundle_invalid', 'the archive ends without its end-of-archive blocks');
    const h = buf.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) return ok(out);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
    if (octal(h, 148, 8) !== sum) return fail('release_bundle_invalid', `bad header checksum at byte ${off}`);
    if (field(h, 257, 6) !== 'ustar') return fail('release_bundle_invalid', 'not a ustar archive');
    const prefix = field(h, 345, 155);
    const name = field(h, 0, 100);
    const path = (prefix ? `${prefix}/${name}` : name).replace(/\/$/, '');
    const size = octal(h, 124, 12);
    const mode = octal(h, 100, 8);
    const flag = String.fromCharCode(h[156] || 48);
    if (!Number.isSafeInteger(size) || !Number.isSafeInteger(mode)) return fail('release_bundle_invalid', `bad size or mode for ${JSON.stringify(path)}`);
    const parts = path.split('/');
    if (!path || path.startsWith('/') || parts.some((p) => p === '..' || p === '' || p === '.') || /[\\\0]/.test(path)) {
      return fail('release_bundle_invalid', `unsafe path in the bundle: ${JSON.stringify(path)}`);
    }
    if (flag !== '0' && flag !== '5') return fail('release_bundle_invalid', `${JSON.stringify(path)} is not a plain file or folder (type ${JSON.stringify(flag)})`);
    off += BLOCK;
    if (off + size > buf.length) return fail('release_bundle_invalid', `${JSON.stringify(path)} is cut off`);
    out.push({ path, type: flag === '5' ? 'dir' : 'file', mode: mode & 0o755, data: buf.subarray(off, off + size) });
    off += Math.ceil(size / BLOCK) * BLOCK;
  }
}

/** Writes entries into `dir` (created; must not exist) with every file fsynced. */
export function writeEntries(entries: TarEntry[], dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const e of entries) {
    const target = join(dir, e.path);
    if (e.type === 'dir') {
      mkdirSync(target, { recursive: true });
      continue;
    }
    mkdirSync(join(target, '..'), { recursive: true });
    const fd = openSync(target, 'wx', e.mode || 0o644);
    try {
      writeSync(fd, e.data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}
