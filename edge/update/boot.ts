// The launcher systemd runs (`node /opt/mykey-edge/boot.js --updates-dir /var/lib/mykey-edge/updates
// --config ...`), the edge's bootloader: it is not replaced by updates, and it sits in the read-only
// install folder while releases go to the agent's writable updates folder. Before any version is loaded it settles the update state (a trial
// version that keeps failing to start is rolled back here, so a release that crashes at load cannot
// lock the reader out), then loads the version `current` points at (or the factory install beside
// it). A trial version must pass its self-test within the time it was given, or the launcher's
// watchdog rolls it back and exits for a restart, however the new version behaves.
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createLayout, RESTART_EXIT_CODE, rollBack, settleAtBoot } from './layout.ts';

/**
 * Loads the agent: the release `current` points at in `updatesDir` (writable by the agent), or the
 * factory install in `installDir` (read-only to it, with this launcher). Resolves once its module has
 * been evaluated.
 */
export async function boot(installDir: string, updatesDir = join(installDir, 'updates'), opts: { entry?: string; exit?: (code: number) => void } = {}): Promise<void> {
  const layout = createLayout(updatesDir);
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const state = settleAtBoot(layout);
  // The agent finds its release folder through the updates.dir config key (env override).
  process.env.MYKEY_EDGE_UPDATES_DIR ??= updatesDir;
  // Releases link the factory install's node_modules (native modules are not in the bundles).
  process.env.MYKEY_EDGE_INSTALL_DIR = installDir;
  const entryName = opts.entry ?? 'main.js';
  const version = layout.currentVersion();
  let target = join(installDir, entryName);
  if (version !== null) {
    const candidate = join(layout.releaseDir(version), entryName);
    if (existsSync(candidate)) target = realpathSync(candidate);
    else {
      // A release folder without its entry cannot start: back to what ran before, now.
      rollBack(layout, state, 'update_crashed', `release ${version} has no ${entryName}`);
      return boot(installDir, updatesDir, opts);
    }
  }
  const trial = state.trial;
  if (trial && trial.version === version) {
    const timer = setTimeout(() => {
      const now = layout.readState();
      if (now.trial?.version !== trial.version) return; // passed (or already rolled back)
      rollBack(layout, now, 'update_self_test_timeout', `no self-test pass within ${Math.round(trial.selfTestMs / 1000)} s`);
      exit(RESTART_EXIT_CODE);
    }, trial.selfTestMs);
    void timer; // kept referenced: the watchdog must fire even if the new version has nothing else running
  }
  // The agent starts itself when it is the script node was given (edge/main.ts checks argv[1]).
  process.argv[1] = target;
  await import(pathToFileURL(target).href);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  // --updates-dir is the launcher's own argument; the agent gets the rest.
  const i = process.argv.indexOf('--updates-dir');
  const updatesDir = i > 1 ? process.argv.splice(i, 2)[1] : undefined;
  await boot(dirname(fileURLToPath(import.meta.url)), updatesDir ? resolve(updatesDir) : undefined);
}
