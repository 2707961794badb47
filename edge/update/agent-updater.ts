// The updater as the real agent runs it: on when the edge has a release key (from enrollment) and runs
// from the launcher (updates.dir), with the agent's own self-test: online at the hub and synced, the
// reader layer up, one lookup answered through the cache.
import type { Logger } from '../../shared/log.ts';
import { parseReleasePublicKey } from '../../shared/release.ts';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { MyKeyError } from '../../shared/errors.ts';
import type { EdgeConfig } from '../config.ts';
import { createLayout } from './layout.ts';
import { runSelfTest } from './self-test.ts';
import { Updater } from './updater.ts';

export interface AgentParts {
  tls: { ca: Buffer; cert: Buffer; key: Buffer };
  version: string;
  online: () => boolean;
  readerUp: () => boolean;
  /** One lookup through the cache; throws when the cache cannot answer. */
  lookup: () => void;
  /** Stops the agent; the process then exits with the code for the supervisor to restart it. */
  stop: () => Promise<void>;
  log: Logger;
}

/** The release the agent runs from the updates folder (what it reports as its version), if any. */
export function runningRelease(config: EdgeConfig): string | undefined {
  return config.updates.dir ? (createLayout(config.updates.dir).currentVersion() ?? undefined) : undefined;
}

/** The agent's updater, or undefined when updates are off (no release key, or not run from the launcher). */
export function createAgentUpdater(config: EdgeConfig, parts: AgentParts): Updater | undefined {
  const u = config.updates;
  if (!u.releaseKey || !u.dir) return undefined;
  let key: KeyObject;
  try {
    key = parseReleasePublicKey(u.releaseKey);
  } catch (e) {
    throw new MyKeyError('config_invalid', 'invalid configuration:\n  - /updates/releaseKey: not an Ed25519 public key', { cause: e });
  }
  return new Updater({
    layout: createLayout(u.dir),
    keys: [key],
    client: { hubUrl: config.hub.url, tls: parts.tls },
    serviceId: config.serviceId,
    factoryVersion: parts.version,
    checkMs: u.checkSeconds * 1000,
    selfTestMs: u.selfTestSeconds * 1000,
    selfTest: (ms) =>
      runSelfTest(
        [
          { name: 'online', run: parts.online },
          { name: 'reader', run: parts.readerUp },
          {
            name: 'lookup',
            run: () => {
              parts.lookup();
              return true;
            },
          },
        ],
        ms,
      ),
    restart: (code) => void parts.stop().finally(() => process.exit(code)),
    log: parts.log,
    nodeModules: process.env.MYKEY_EDGE_INSTALL_DIR ? join(process.env.MYKEY_EDGE_INSTALL_DIR, 'node_modules') : undefined,
  });
}
