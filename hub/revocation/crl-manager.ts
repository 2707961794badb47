// Periodic revocation checks (定期的な失効確認): CRLs are fetched from the configured sources (or
// imported by hand), verified against the trust anchors, kept in memory for registration checks,
// saved for restarts, and matched against every bound certificate; a newly revoked current
// certificate suspends its MyKey ID with its RFC 5280 reason. Everything is keyed by the issuer's KEY
// (TrustAnchor.keyId), not its name: during a CA key rollover two anchors share a name, and each
// CRL applies only to the certificates its own key signed. Only a full CRL is applied (load.ts).
// This file holds the state and the runs' order; its parts are crl-match.ts (matching a CRL against
// the bindings and writing the revocations, in slices) and crl-fetch.ts (download, atomic save).
import { existsSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MyKeyError, isErrorCode } from '../../shared/errors.ts';
import { loadCrlPaced, type CrlIssuer, type LoadedCrl as VerifiedCrl } from '../pki/crl/index.ts';
import { issuerKeyOf } from '../pki/trust-anchors.ts';
import type { LoadedCrl } from './checker.ts';
import { atomicWrite, atomicWriteAsync, downloadCrl } from './crl-fetch.ts';
import { acrossTurns, createSlicer, matchCrl, writeRevocations } from './crl-match.ts';
import { startRunMeter } from './run-meter.ts';
import type { CrlManagerDeps, RevocationRunSummary } from './types.ts';

export type { CrlManagerDeps, RevocationRunSummary } from './types.ts';

/**
 * Synchronous work between two turns of the event loop, in milliseconds: a request needs several
 * turns (body, proof, store, answer), each of which may wait for one slice.
 */
export const SLICE_MS = 5;
/** Rows between two progress reports of the match and apply phases. */
const PROGRESS_EVERY = 100_000;

export function createCrlManager(deps: CrlManagerDeps) {
  const now = deps.now ?? (() => new Date());
  const grace = deps.crlGraceMs ?? 24 * 3600_000;
  const crlDir = join(deps.dataDir, 'crl');
  /** The current CRL of each issuer, for registration checks. */
  const crls = new Map<string, LoadedCrl>();
  /** The index of each issuer key's applied CRL, what the next CRL of that key is compared with. */
  const indexes = new Map<string, { index: VerifiedCrl['index']; thisUpdate: number; crlNumber?: string }>();
  const timers: NodeJS.Timeout[] = [];

  /** The stable code of a failure: the MyKeyError's, else internal. */
  const codeOf = (e: unknown): string => (e instanceof MyKeyError && isErrorCode(e.code) ? e.code : 'internal');

  async function recordFailure(source: string, startedAt: number, durationMs: number, code: string, message: string): Promise<void> {
    await deps.revocations.recordRun({
      source,
      started_at: startedAt,
      finished_at: now().getTime(),
      ok: 0,
      crl_number: null,
      entries: null,
      matched: null,
      newly_suspended: null,
      duration_ms: Math.round(durationMs),
      // The code leads the message, so every place that shows the error shows why (console, CLI).
      error: `${code}: ${message}`,
      code,
    });
  }

  const issuers = (): CrlIssuer[] => deps.anchors().map((a) => ({ nameDer: a.cert.subjectDer, publicKey: a.publicKey, keyId: a.keyId, label: a.label }));

  /** How many anchors share each issuer name (hash): more than one means a key rollover under one name. */
  function anchorsPerName(): Map<string, number> {
    const m = new Map<string, number>();
    for (const a of deps.anchors()) m.set(a.issuerKey, (m.get(a.issuerKey) ?? 0) + 1);
    return m;
  }

  /** Records the issuer key id of bindings made before it was recorded (see fillIssuerKeyIds). */
  async function fillKeyIds(): Promise<void> {
    const r = await deps.mykeys.fillIssuerKeyIds(deps.anchors());
    legacyRows = r.unknown > 0;
    if (r.filled > 0) deps.log.info('issuer key ids recorded for earlier bindings', { filled: r.filled });
    if (r.unknown > 0) {
      deps.log.warn('bindings whose issuing CA key is unknown: they are matched against the CRLs of every key of their issuer name', { count: r.unknown });
    }
  }
  let filled = false;
  /** Whether bindings without a key id (bound before key ids were recorded) remain: if none, matching skips them. */
  let legacyRows = true;
  /** Saved CRL files (path@thisUpdate) that could not be loaded: warned about once. */
  const unusableSaved = new Set<string>();

  /**
   * Parses, verifies and checks a saved CRL (load.ts) in slices, the event loop turning between them:
   * the poll below reloads a national CRL an import command saved while the hub serves requests. A
   * refusal is a MyKeyError with its own code.
   */
  async function parse(der: Uint8Array) {
    const r = await acrossTurns(loadCrlPaced(der, issuers(), createSlicer(SLICE_MS), { now: now(), clockSkewMs: deps.clockSkewMs }));
    if (!r.ok) throw new MyKeyError(r.code, r.message);
    return r.value;
  }

  function loaded(keyId: string, crl: VerifiedCrl['crl'], index: VerifiedCrl['index']): LoadedCrl {
    return {
      issuerKey: keyId,
      thisUpdate: crl.thisUpdate,
      nextUpdate: crl.nextUpdate,
      crlNumber: crl.crlNumber,
      size: index.size,
      lookup: (serialHex) => index.lookup(serialHex),
    };
  }

  /**
   * Verifies, indexes, matches (crl-match.ts) and persists a CRL, as steps: the async generator
   * yields between slices of work (a few milliseconds each, every write its own short BEGIN IMMEDIATE
   * transaction) and awaits I/O (`io` 'async': the CRL file is written and fsynced on the libuv pool),
   * so a caller can let the event loop run between them (applyAsync) or run it through (apply, `io`
   * 'sync').
   */
  async function* steps(der: Uint8Array, source: string, io: 'sync' | 'async', onProgress?: (phase: string, done: number, total: number) => void): AsyncGenerator<void, RevocationRunSummary> {
    const started = now();
    const t0 = performance.now();
    // Where the run's time and CPU went, phase by phase, and how long the event loop waited meanwhile.
    const meter = startRunMeter();
    try {
      if (!filled) {
        await fillKeyIds();
        filled = true;
      }
      const slicer = createSlicer(SLICE_MS);
      // Parsed and indexed in slices, the signature checked on the libuv pool (load.ts loadCrlPaced).
      const loading = yield* loadCrlPaced(der, issuers(), slicer, { onProgress: (d, t) => onProgress?.('parse', d, t), now: now(), clockSkewMs: deps.clockSkewMs });
      if (!loading.ok) throw new MyKeyError(loading.code, loading.message);
      const { crl, index, issuer } = loading.value;
      const keyId = issuer.keyId;
      const nameKey = issuerKeyOf(issuer.nameDer);
      const soleKeyOfName = (anchorsPerName().get(nameKey) ?? 0) <= 1;
      // crl_state rows written before key ids were recorded are filed under the name hash; such a row
      // stands for this key only when no other anchor has the name.
      const legacy = soleKeyOfName ? await deps.revocations.state(nameKey) : undefined;
      const prev = (await deps.revocations.state(keyId)) ?? legacy;
      // RFC 5280 5.2.3: CRL numbers increase; an older CRL must not undo a newer one.
      if (prev?.crl_number && crl.crlNumber !== undefined && crl.crlNumber < BigInt(prev.crl_number)) {
        throw new MyKeyError('crl_stale', `CRL number ${crl.crlNumber} is older than the applied ${prev.crl_number}`);
      }
      if (!prev?.crl_number && prev && crl.thisUpdate.getTime() < prev.this_update) {
        throw new MyKeyError('crl_stale', `CRL of ${crl.thisUpdate.toISOString()} is older than the applied one`);
      }

      let warning: string | undefined;
      if (crl.nextUpdate && crl.nextUpdate.getTime() + grace < now().getTime()) {
        // Still applied (what it lists is revoked), but registration checks read it as unknown.
        warning = `the CRL was already past its nextUpdate (${crl.nextUpdate.toISOString()}) plus ${Math.round(grace / 3600_000)} h of grace when applied`;
        deps.log.warn('CRL already past its nextUpdate', { source, issuer: issuer.label ?? keyId, nextUpdate: crl.nextUpdate.toISOString() });
      }
      yield;

      // What this run will have matched: every binding up to here. Read before matching, so a
      // binding committed while the run goes on is after the mark and matched by the next run.
      const mark = await deps.mykeys.maxBindingId();
      // Progress of the unbounded phases, about every PROGRESS_EVERY rows (an import prints each).
      const reported = new Map<string, number>();
      const report = (phase: string, done: number) => {
        const step = Math.floor(done / PROGRESS_EVERY);
        if (step === reported.get(phase) || step === 0) return;
        reported.set(phase, step);
        onProgress?.(phase, done, 0);
      };
      meter.end('load'); // parse, verify and index
      const { hits, incremental } = yield* matchCrl({
        mykeys: deps.mykeys,
        keyId,
        nameKey,
        index,
        held: indexes.get(keyId),
        prevMark: await deps.revocations.mark(keyId),
        legacyRows,
        slicer,
        report,
      });
      const matched = hits.length;
      meter.end('match');
      const newlySuspended = yield* writeRevocations(deps.mykeys, hits, { now: () => now().getTime(), slicer, report, events: deps.events });
      meter.end('apply'); // the revocation writes

      // Persisted last: until the state and mark commit, the previous CRL stays the one on record
      // (a run cut short is redone from it; marking a binding revoked twice changes nothing).
      mkdirSync(crlDir, { recursive: true });
      const file = join(crlDir, `${keyId}.crl`);
      if (io === 'async') await atomicWriteAsync(file, der);
      else atomicWrite(file, der);
      await deps.revocations.saveApplied(
        {
          issuer_key: keyId,
          crl_number: crl.crlNumber?.toString() ?? null,
          this_update: crl.thisUpdate.getTime(),
          next_update: crl.nextUpdate?.getTime() ?? null,
          entries: index.size,
          source,
          file,
          applied_at: now().getTime(),
        },
        { issuer_key: keyId, this_update: crl.thisUpdate.getTime(), crl_number: crl.crlNumber?.toString() ?? null, binding_mark: mark },
        legacy !== undefined ? nameKey : undefined,
      );
      crls.set(keyId, loaded(keyId, crl, index));
      indexes.set(keyId, { index, thisUpdate: crl.thisUpdate.getTime(), crlNumber: crl.crlNumber?.toString() });
      const summary: RevocationRunSummary = {
        source,
        issuer: issuer.label ?? keyId,
        issuerKeyId: keyId,
        crlNumber: crl.crlNumber?.toString(),
        thisUpdate: crl.thisUpdate.toISOString(),
        nextUpdate: crl.nextUpdate?.toISOString(),
        entries: index.size,
        matched,
        newlySuspended,
        durationMs: Math.round(performance.now() - t0),
      };
      if (warning !== undefined) summary.warning = warning;
      await deps.revocations.recordRun({
        source,
        started_at: started.getTime(),
        finished_at: now().getTime(),
        ok: 1,
        crl_number: summary.crlNumber ?? null,
        entries: summary.entries,
        matched: summary.matched,
        newly_suspended: newlySuspended,
        duration_ms: summary.durationMs,
        error: null,
        warning: warning ?? null,
      });
      deps.log.info('CRL applied', {
        ...summary,
        incremental,
        ...meter.report('save'), // saving the CRL and its state
      });
      return summary;
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      const code = codeOf(e);
      try {
        await recordFailure(source, started.getTime(), performance.now() - t0, code, message);
      } catch (re) {
        deps.log.warn('revocation run could not be recorded', { error: (re as Error).message });
      }
      deps.log.warn('CRL not applied', { source, code, error: message });
      throw e;
    } finally {
      meter.stop();
    }
  }

  /** Verifies, indexes, matches and persists a CRL in one go (the event loop waits: tests, tools). */
  async function apply(der: Uint8Array, source: string, onProgress?: (phase: string, done: number, total: number) => void): Promise<RevocationRunSummary> {
    const it = steps(der, source, 'sync', onProgress);
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
    }
  }

  /** Runs one at a time: two runs of one issuer must not interleave their marks. */
  let queue: Promise<unknown> = Promise.resolve();
  /** Runs queued or going on: the poll for saved CRLs waits for them (a run sets what it applies itself). */
  let runs = 0;

  /** As apply, but the event loop gets a turn between chunks (scheduled runs, fetches, the import command). */
  function applyAsync(der: Uint8Array, source: string, onProgress?: (phase: string, done: number, total: number) => void): Promise<RevocationRunSummary> {
    runs++;
    const run = queue.then(() => acrossTurns(steps(der, source, 'async', onProgress)));
    queue = run.catch(() => undefined).finally(() => runs--);
    return run;
  }

  /** Fetches a CRL over HTTP with a timeout and a size bound, then applies it. */
  async function fetchAndApply(url: string): Promise<RevocationRunSummary> {
    const startedAt = now().getTime();
    const t0 = performance.now();
    let der: Uint8Array;
    try {
      der = await downloadCrl(url, { timeoutMs: deps.fetchTimeoutMs ?? 60_000, maxBytes: deps.maxBytes ?? 512 * 1024 * 1024 });
    } catch (e) {
      const err = new MyKeyError('crl_fetch_failed', `fetching ${url} failed: ${(e as Error).message}`, { cause: e });
      await recordFailure(url, startedAt, performance.now() - t0, err.code, err.message);
      deps.log.warn('CRL fetch failed', { url, code: err.code, error: err.message });
      throw err;
    }
    return applyAsync(der, url);
  }

  return {
    crls,
    apply,
    applyAsync,
    fetchAndApply,

    /** Loads the CRLs saved by earlier runs, so registration checks work right after a restart. */
    async loadSaved(): Promise<void> {
      if (!filled) {
        await fillKeyIds();
        filled = true;
      }
      for (const s of await deps.revocations.states()) {
        // Rows are keyed by issuer key id (older rows by name hash; the re-parse below finds the key).
        if (crls.has(s.issuer_key) && crls.get(s.issuer_key)!.thisUpdate.getTime() >= s.this_update) continue;
        // A saved CRL refused once (say a partial CRL applied by an earlier version) is not re-read
        // every poll; a new CRL of its issuer replaces the row and is read again.
        const mark = `${s.file}@${s.this_update}`;
        if (unusableSaved.has(mark)) continue;
        if (!existsSync(s.file)) {
          deps.log.warn('saved CRL file is missing', { file: s.file });
          unusableSaved.add(mark);
          continue;
        }
        try {
          const { crl, index, issuer } = await parse(new Uint8Array(await readFile(s.file)));
          if (s.issuer_key !== issuer.keyId) {
            // Filed under the issuer name hash by an earlier version: file it under the key it verified with.
            const cur = await deps.revocations.state(issuer.keyId);
            if (!cur || cur.this_update < s.this_update) await deps.revocations.saveState({ ...s, issuer_key: issuer.keyId });
            await deps.revocations.dropState(s.issuer_key);
          }
          const have = crls.get(issuer.keyId);
          if (have && have.thisUpdate.getTime() >= crl.thisUpdate.getTime()) continue;
          crls.set(issuer.keyId, loaded(issuer.keyId, crl, index));
          indexes.set(issuer.keyId, { index, thisUpdate: crl.thisUpdate.getTime(), crlNumber: crl.crlNumber?.toString() });
        } catch (e) {
          unusableSaved.add(mark);
          deps.log.warn('saved CRL could not be loaded', { file: s.file, code: codeOf(e), error: (e as Error).message });
        }
      }
    },

    /** Fetches every source now and then every `intervalMs` (with jitter so hubs do not align). */
    start(sources: string[], intervalMs: number): void {
      for (const url of sources) {
        // A run still going when the next is due (a large CRL on a busy hub) is not joined by another
        // download queued behind it: the next fetch waits for the following tick.
        let running = false;
        const run = () => {
          if (running) return;
          running = true;
          // Hub replicas: the replica that claims the period fetches; the others skip this tick.
          void (deps.claimPeriod ? deps.claimPeriod(`crl:${url}`, intervalMs) : Promise.resolve(true))
            .then((mine) => (mine ? fetchAndApply(url) : undefined))
            .catch(() => undefined)
            .finally(() => (running = false));
        };
        void run();
        const t = setInterval(run, intervalMs + Math.floor(Math.random() * Math.min(intervalMs / 10, 60_000)));
        t.unref();
        timers.push(t);
      }
      // A CRL imported by the operator command lands in the database; pick it up here.
      // Not while a run goes on: between its saved state and its in-memory CRL, the poll would read
      // the state as newer than what is held and load the same national CRL a second time.
      const poll = setInterval(() => void (runs > 0 ? Promise.resolve() : this.loadSaved()).catch((e) => deps.log.warn('saved CRLs could not be read', { error: (e as Error).message })), 10_000);
      poll.unref();
      timers.push(poll);
    },

    stop(): void {
      for (const t of timers.splice(0)) clearInterval(t);
    },
  };
}

export type CrlManager = ReturnType<typeof createCrlManager>;
