// Where an edge keeps its releases, and the two durable switches an update turns: the `current` link
// and the update state file. Each is replaced by rename(2) after an fsync, so a power cut leaves the
// old or the new, never half of either.
//
//   <install>/boot.js, main.js ... the launcher (edge/update/boot.ts) and the factory install, read-only
//                                  to the agent; <root> is the agent's updates folder (by default
//                                  <install>/updates; the enrolled unit uses <state dir>/updates):
//   <root>/releases/<version>/     each installed release, unpacked beside the others
//   <root>/current -> releases/<v> the release that runs; absent: the factory install runs
//   <root>/update-state.json       the update in trial, the last outcome, versions never to retry
//   <root>/downloads/<v>.part      a bundle being downloaded (resumed with Range after a cut)
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { RELEASE_VERSION_PATTERN, UPDATE_STATES } from '../../shared/release.ts';

const Version = Type.String({ pattern: RELEASE_VERSION_PATTERN });

/** The update state file. */
export const UpdateStateFile = Type.Object({
  format: Type.Literal(1),
  /** A release switched to and not yet through its self-test. */
  trial: Type.Optional(
    Type.Object({
      version: Version,
      /** The version to go back to; null: the factory install. */
      previous: Type.Union([Version, Type.Null()]),
      /** Starts of the trial version so far (counted by the launcher before it loads it). */
      boots: Type.Integer({ minimum: 0 }),
      /** How long the trial version has to pass its self-test after it starts. */
      selfTestMs: Type.Integer({ minimum: 1 }),
    }),
  ),
  /** The last outcome, reported to the hub with every check. */
  last: Type.Optional(
    Type.Object({
      state: Type.Union(UPDATE_STATES.map((s) => Type.Literal(s))),
      version: Type.Optional(Version),
      code: Type.Optional(Type.String()),
      reason: Type.Optional(Type.String()),
    }),
  ),
  /** Versions that failed here: never installed again. */
  blocked: Type.Array(Version),
});
export type UpdateStateFile = Static<typeof UpdateStateFile>;

/** How many times a trial version may start without passing its self-test (U-Boot's bootlimit). */
export const MAX_TRIAL_BOOTS = 2;

/** The exit code that asks the supervisor (systemd Restart=always) for a restart into the switched version. */
export const RESTART_EXIT_CODE = 75;

export function createLayout(root: string) {
  const p = {
    root,
    releases: join(root, 'releases'),
    current: join(root, 'current'),
    state: join(root, 'update-state.json'),
    downloads: join(root, 'downloads'),
  };
  const fsyncDir = (dir: string) => {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  };
  return {
    paths: p,
    releaseDir: (version: string) => join(p.releases, version),
    fsyncDir,

    /** The release `current` points at; null for the factory install. */
    currentVersion(): string | null {
      try {
        return basename(readlinkSync(p.current));
      } catch {
        return null;
      }
    },

    /** Points `current` at a release (null: back to the factory install), atomically and durably. */
    switchTo(version: string | null): void {
      if (version === null) {
        rmSync(p.current, { force: true });
      } else {
        const tmp = `${p.current}.next`;
        rmSync(tmp, { force: true });
        symlinkSync(join('releases', version), tmp);
        renameSync(tmp, p.current);
      }
      fsyncDir(root);
    },

    /** The state file; a missing or unreadable one is an empty state (the factory install runs). */
    readState(): UpdateStateFile {
      try {
        const v: unknown = JSON.parse(readFileSync(p.state, 'utf8'));
        if (Value.Check(UpdateStateFile, v)) return v;
      } catch {
        // absent or cut: start from nothing; `current` alone still says what runs
      }
      return { format: 1, blocked: [] };
    },

    writeState(s: UpdateStateFile): void {
      mkdirSync(root, { recursive: true });
      const tmp = `${p.state}.tmp`;
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeFileSync(fd, JSON.stringify(s));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, p.state);
      fsyncDir(root);
    },
  };
}

export type Layout = ReturnType<typeof createLayout>;

/**
 * Goes back from a trial version: `current` first (so what runs next is the previous version even if
 * power is cut here), then the state that records why and blocks the version.
 */
export function rollBack(layout: Layout, s: UpdateStateFile, code: string, reason: string): UpdateStateFile {
  const trial = s.trial;
  if (!trial) return s;
  layout.switchTo(trial.previous);
  const next: UpdateStateFile = {
    format: 1,
    last: { state: 'rolled_back', version: trial.version, code, reason: reason.slice(0, 300) },
    blocked: [...new Set([...s.blocked, trial.version])].slice(-50),
  };
  layout.writeState(next);
  return next;
}

/**
 * Settles the state at start, before any version is loaded (the launcher calls this): a trial whose
 * switch never happened is dropped; one that was being rolled back is finished; a trial version is
 * counted, and rolled back when it has started MAX_TRIAL_BOOTS times without passing its self-test.
 */
export function settleAtBoot(layout: Layout): UpdateStateFile {
  const s = layout.readState();
  const t = s.trial;
  if (!t) return s;
  const running = layout.currentVersion();
  if (running !== t.version) {
    // boots 0: cut between writing the trial and switching; otherwise cut inside a rollback.
    if (t.boots === 0) {
      const next: UpdateStateFile = { ...s, trial: undefined };
      layout.writeState(next);
      return next;
    }
    return rollBack(layout, s, 'update_crashed', 'the power was cut while rolling back');
  }
  if (t.boots >= MAX_TRIAL_BOOTS) return rollBack(layout, s, 'update_crashed', `the new version started ${t.boots} times without passing its self-test`);
  const next: UpdateStateFile = { ...s, trial: { ...t, boots: t.boots + 1 } };
  layout.writeState(next);
  return next;
}
