// The kernel's NFC stack (drivers/nfc: pn533_usb, port100, and the `nfc` core they sit on) claims
// contactless CCID readers (ACR122U, SCL3711, Sony RC-S380) before pcscd can: PC/SC then never sees
// the reader. Enrollment finds the modules (/proc/modules) and the readers they hold
// (/sys/bus/usb/drivers/<module>/<interface>), and with the technician's consent blacklists them in
// /etc/modprobe.d/mykey-edge-nfc-blacklist.conf and unloads them (modprobe -r). Every path hangs off
// `root` and the command runner is a parameter, so tests use a temp directory and a stand-in exec.
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { knownReader } from '../../edge/reader/usb-readers.ts';
import { execCommand, type Exec } from './systemd.ts';

/** The modules that take readers away from pcscd, in the order they are unloaded (users before `nfc`). */
export const CONFLICTING_NFC_MODULES = ['pn533_usb', 'port100', 'pn533', 'nfc'] as const;
/** Relative to the root. */
export const NFC_BLACKLIST_PATH = 'etc/modprobe.d/mykey-edge-nfc-blacklist.conf';

export interface NfcModuleEnv {
  /** The file system root (`/` by default; a temp directory in tests). */
  root?: string;
  /** Runs modprobe (execCommand by default). */
  exec?: Exec;
}

/** A reader a kernel NFC driver holds. */
export interface HeldReader {
  sysName: string;
  driver: string;
  /** The known model, or vendor:product. */
  model: string;
}

/** The result of the check; `warn` is said even when it passes. */
export type NfcCheck = { ok: true; detail: string; warn?: string } | { ok: false; detail: string; fix: string };

/** The conflicting modules loaded now, per /proc/modules (first column of each line). */
export function loadedNfcModules(root = '/'): string[] {
  let text: string;
  try {
    text = readFileSync(join(root, 'proc/modules'), 'utf8');
  } catch {
    return [];
  }
  const loaded = new Set(text.split('\n').map((l) => l.split(' ')[0]));
  return CONFLICTING_NFC_MODULES.filter((m) => loaded.has(m));
}

/** USB readers bound to a kernel NFC driver (/sys/bus/usb/drivers/<driver>/<bus>-<port>:<cfg>.<if>). */
export function readersHeldByKernel(root = '/'): HeldReader[] {
  const out: HeldReader[] = [];
  for (const driver of CONFLICTING_NFC_MODULES) {
    let entries: string[];
    try {
      entries = readdirSync(join(root, 'sys/bus/usb/drivers', driver));
    } catch {
      continue;
    }
    for (const e of entries) {
      const m = /^(\d+-[\d.]+):\d+\.\d+$/.exec(e);
      if (!m) continue; // bind, unbind, module, new_id...
      const dev = join(root, 'sys/bus/usb/devices', m[1]);
      const read = (f: string) => {
        try {
          return readFileSync(join(dev, f), 'utf8').trim().toLowerCase();
        } catch {
          return '????';
        }
      };
      const vid = read('idVendor');
      const pid = read('idProduct');
      out.push({ sysName: m[1], driver, model: knownReader(vid, pid)?.model ?? `${vid}:${pid}` });
    }
  }
  return out;
}

/** The blacklist file's text. */
export function nfcBlacklistText(): string {
  return [
    '# Written by MyKey edge enrollment (--fix-nfc-modules). The kernel NFC stack claims contactless',
    '# CCID readers (ACR122U, SCL3711: pn533_usb; Sony RC-S380: port100) before pcscd can, and PC/SC',
    '# then never sees them. Delete this file to give them back to the kernel.',
    ...CONFLICTING_NFC_MODULES.map((m) => `blacklist ${m}`),
    '',
  ].join('\n');
}

/** True when the blacklist is in place with every module. */
export function nfcBlacklisted(root = '/'): boolean {
  try {
    const text = readFileSync(join(root, NFC_BLACKLIST_PATH), 'utf8');
    return CONFLICTING_NFC_MODULES.every((m) => new RegExp(`^blacklist ${m}$`, 'm').test(text));
  } catch {
    return false;
  }
}

/** Writes the blacklist atomically (a temp file renamed over it). */
export function writeNfcBlacklist(root = '/'): string {
  const path = join(root, NFC_BLACKLIST_PATH);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, nfcBlacklistText(), { mode: 0o644 });
  renameSync(tmp, path);
  return path;
}

const FIX_HINT = 'run again with --fix-nfc-modules: it blacklists pn533_usb, port100, pn533 and nfc in /etc/modprobe.d/mykey-edge-nfc-blacklist.conf and unloads them';

/**
 * Checks that no kernel NFC module stands between the reader and pcscd; with `fix` (the technician's
 * consent), blacklists and unloads them. A reader already held by one fails the check without `fix`;
 * modules loaded with no reader held yet only warn (they take the reader at the next plug or boot).
 */
export async function checkNfcModules(opts: { fix?: boolean } & NfcModuleEnv = {}): Promise<NfcCheck> {
  const root = opts.root ?? '/';
  const loaded = loadedNfcModules(root);
  const held = readersHeldByKernel(root);
  const blacklisted = nfcBlacklisted(root);
  if (loaded.length === 0 && held.length === 0) {
    return { ok: true, detail: blacklisted ? 'kernel NFC modules: blacklisted, none loaded' : 'kernel NFC modules: none loaded' };
  }
  const heldText = held.map((h) => `${h.model} (${h.driver})`).join(', ');
  if (!opts.fix) {
    if (held.length) return { ok: false, detail: `the kernel NFC driver holds the reader: ${heldText}; pcscd cannot see it`, fix: FIX_HINT };
    if (blacklisted) return { ok: true, detail: `kernel NFC modules loaded but blacklisted (${loaded.join(', ')}): gone after the next reboot` };
    return { ok: true, detail: `kernel NFC modules loaded: ${loaded.join(', ')}`, warn: `they take a contactless reader from pcscd at its next plug or boot; ${FIX_HINT}` };
  }
  const path = blacklisted ? join(root, NFC_BLACKLIST_PATH) : writeNfcBlacklist(root);
  if (loaded.length) {
    // modprobe -r takes several modules and removes each in the order given, then their unused dependencies.
    const r = await (opts.exec ?? execCommand)('modprobe', ['-r', ...loaded]);
    if (r.code !== 0) {
      return {
        ok: false,
        detail: `${path} written, but modprobe -r ${loaded.join(' ')} failed: ${(r.stderr || r.stdout).trim().slice(0, 200)}`,
        fix: 'reboot the machine (the blacklist keeps the modules out from then on) and run again',
      };
    }
    const still = loadedNfcModules(root);
    if (still.length) return { ok: false, detail: `${path} written, but still loaded: ${still.join(', ')}`, fix: 'reboot the machine and run again' };
  }
  const replug = held.length ? `; unplug the reader and plug it back in so pcscd takes it (${heldText})` : '';
  return { ok: true, detail: `kernel NFC modules blacklisted in ${path}${loaded.length ? ` and unloaded (${loaded.join(', ')})` : ''}`, ...(replug ? { warn: replug.slice(2) } : {}) };
}
