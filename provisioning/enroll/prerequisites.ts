// What a fresh Raspberry Pi OS or Debian machine needs before an edge can run: Node.js 20 or later,
// pcscd, no kernel NFC module holding the reader (nfc-modules.ts), and at least one reader that the
// edge's reader layer sees. Each check is a result with what to do when it fails.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readerFilter } from '../../edge/config.ts';
import { ReaderManager, silentReaderLog } from '../../edge/reader/index.ts';

export { checkNfcModules, loadedNfcModules, readersHeldByKernel, nfcBlacklistText, NFC_BLACKLIST_PATH, CONFLICTING_NFC_MODULES, type NfcCheck, type NfcModuleEnv } from './nfc-modules.ts';

/** The outcome of one check; `fix` says what the technician should do when it failed. */
export type Check = { ok: true; detail: string } | { ok: false; detail: string; fix: string };

export function checkNode(version = process.versions.node): Check {
  const major = Number(version.split('.')[0]);
  if (major >= 20) return { ok: true, detail: `Node.js ${version}` };
  return { ok: false, detail: `Node.js ${version} is too old`, fix: 'install Node.js 20 LTS (for example from NodeSource: apt-get install nodejs) and run again' };
}

/** The pcscd socket path the PC/SC library uses. */
export function pcscdSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.PCSCLITE_CSOCK_NAME ?? '/run/pcscd/pcscd.comm';
}

function pcscdProcessRunning(): boolean {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return false;
  }
  for (const pid of pids) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'pcscd') return true;
    } catch {
      // The process ended while we looked.
    }
  }
  return false;
}

/** pcscd: its socket exists (socket activation counts) or a pcscd process runs. */
export function checkPcscd(env: NodeJS.ProcessEnv = process.env): Check {
  const sock = pcscdSocketPath(env);
  if (existsSync(sock)) return { ok: true, detail: `pcscd (socket ${sock})` };
  if (pcscdProcessRunning()) return { ok: true, detail: 'pcscd (process running)' };
  return { ok: false, detail: `pcscd is not running (no ${sock})`, fix: 'apt-get install pcscd && systemctl enable --now pcscd.socket' };
}

/**
 * Lists the readers the edge's reader layer sees within `waitMs` (pcsclite reports readers one by
 * one right after the context opens), keeping those that pass the `--readers` patterns.
 */
export async function listReaders(patterns: readonly string[], waitMs = 1500): Promise<string[]> {
  const manager = new ReaderManager({ log: silentReaderLog, readerFilter: readerFilter(patterns), reconnectDelayMs: 10_000 });
  const seen: string[] = [];
  let done: () => void = () => {};
  const settled = new Promise<void>((r) => (done = r));
  let quiet: NodeJS.Timeout | undefined;
  const off = manager.on('reader-added', ({ reader }) => {
    seen.push(reader);
    // Readers arrive in a burst; stop waiting shortly after the last one.
    clearTimeout(quiet);
    quiet = setTimeout(done, 200);
  });
  const offErr = manager.on('error', () => undefined);
  const limit = setTimeout(done, waitMs);
  manager.start();
  try {
    await settled;
  } finally {
    clearTimeout(limit);
    clearTimeout(quiet);
    off();
    offErr();
    await manager.stop();
  }
  return [...new Set([...seen, ...manager.readers()])];
}

/** At least one reader passes the patterns. */
export async function checkReaders(patterns: readonly string[], list: (p: readonly string[]) => Promise<string[]> = listReaders): Promise<Check> {
  const names = await list(patterns);
  if (names.length) return { ok: true, detail: `reader${names.length > 1 ? 's' : ''}: ${names.join(', ')}` };
  const filter = patterns.length ? ` matching ${patterns.join(', ')}` : '';
  return {
    ok: false,
    detail: `no card reader${filter} is visible`,
    fix: `plug the USB contactless reader in (check with pcsc_scan from pcsc-tools)${patterns.length ? ', or correct --readers' : ''}, then run again`,
  };
}
