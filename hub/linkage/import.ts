// Importing certificate linkage files (新旧シリアル番号紐付け): each record re-binds the MyKey ID of an
// old, renewed certificate to its new certificate, without the holder's visit. One record is one
// transaction: the MyKey repository's carry-over (its lifecycle event gives every linked service one
// change-log entry and one webhook notice, hub/links) and the row that marks the old binding as
// superseded by linkage. A MyKey ID suspended as superseded by an earlier CRL run resumes in the same
// transaction; a certificate revoked for a loss is never carried. Re-importing a file changes
// nothing and reports its records as already carried.
import type { Emitter } from '../../shared/typed-events.ts';
import type { FanoutEvents } from '../fanout.ts';
import { MyKeyError, type ErrorCode } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { isLossReason, type CrlReason } from '../../shared/revocation.ts';
import type { CertRef } from '../../shared/cert-identity.ts';
import { certIdentityOf } from '../mykey/service.ts';
import type { TrustAnchor } from '../pki/trust-anchors.ts';
import { checkUserCertificate, type CheckedCertificate } from '../pki/user-cert.ts';
import type { LinkageRepo } from '../store/linkage-repo.ts';
import type { MyKeyRepo } from '../store/mykey-repo.ts';
import { isUniqueViolation, type Sql } from '../store/sql.ts';
import { busyUnavailable, isBusyError } from '../store/write-batcher.ts';
import { parseLinkageFile, type LinkageLine, type LinkageSigner } from './parse.ts';

export interface LinkageImporterDeps {
  /** The store's executor: one record's carry-over and linkage row in one transaction. */
  sql: Sql;
  mykeys: MyKeyRepo;
  repo: LinkageRepo;
  anchors: () => readonly TrustAnchor[];
  signers: () => readonly LinkageSigner[];
  /** jpki.linkageMaxBytes. */
  maxBytes: number;
  /** Whether a CRL the hub holds lists the certificate (the new certificate of a record must not be revoked). */
  revokedNow?: (cert: CheckedCertificate) => { reason: CrlReason } | undefined;
  /** Derives the keyed identities the carry-over needs, off the event loop, before its write (hub/links). */
  prepareKeys?: (mykeyId: string, next: { cert?: CertRef }) => Promise<void>;
  /** The fan-out chain (hub/fanout.ts): a committed carry-over has change-log entries waiting in the outboxes. */
  events?: Emitter<FanoutEvents>;
  now?: () => Date;
  log: Logger;
}

/** What an import did, line by line (line numbers of the file; the header is line 1). */
export interface LinkageReport {
  file: { sha256: string; issuer: string; created: string; records: number; signer: string };
  /** Lines whose MyKey ID was re-bound to the new certificate by this import. */
  carried: number[];
  /** Lines already carried (by an earlier import of the record, or by the holder to the same certificate). */
  alreadyCarried: number[];
  /** Lines refused, each with its code. */
  refused: { line: number; code: ErrorCode; message: string }[];
  /** MyKey IDs that were suspended (superseded, by an earlier CRL run) and resumed with their carry-over. */
  resumed: number;
  /** A dry run: what the file would do; nothing was written. */
  dryRun?: true;
}

type Outcome = { kind: 'carried'; resumed: boolean } | { kind: 'already' } | { kind: 'refused'; code: ErrorCode; message: string };

const refused = (code: ErrorCode, message: string): Outcome => ({ kind: 'refused', code, message });

const UNTRUSTED: readonly string[] = ['cert_unknown_issuer', 'cert_chain_broken'];
/** Synchronous work between two turns of the event loop, in milliseconds. */
const SLICE_MS = 8;
/** Attempts of a record's write while another process holds the store's write lock (after its busy timeout). */
const BUSY_RETRIES = 3;

export function createLinkageImporter(deps: LinkageImporterDeps) {
  const now = deps.now ?? (() => new Date());
  const { mykeys, repo } = deps;

  /** Everything about a record that can be decided before its write: its final outcome, or what to carry. */
  async function check(
    anchor: TrustAnchor,
    l: Extract<LinkageLine, { ok: true }>,
    at: Date,
    known?: CheckedCertificate,
  ): Promise<{ done: Outcome } | { carry: { mykeyId: string; oldBindingId: number; identity: ReturnType<typeof certIdentityOf>; checked: CheckedCertificate } }> {
    const old = await repo.liveBindingOfSerial(anchor.issuerKey, anchor.keyId, l.oldSerial);
    if (!old) return { done: refused('linkage_old_unknown', 'no live MyKey ID is bound to this old serial under the file issuer') };
    // The certificate is checked once per record; the re-check inside the write (`known`) reads the store only.
    let checkedCert = known;
    if (!checkedCert) {
      const checked = checkUserCertificate(l.certDer, deps.anchors(), { now: at });
      if (!checked.ok) {
        return { done: refused(UNTRUSTED.includes(checked.code) ? 'linkage_new_cert_untrusted' : 'linkage_new_cert_invalid', `${checked.code}: ${checked.message}`) };
      }
      checkedCert = checked.value;
    }
    const identity = certIdentityOf(checkedCert);
    if (identity.serialHex !== l.newSerial) return { done: refused('linkage_serial_mismatch', 'the new serial is not the serial of the certificate on the line') };
    const row = await mykeys.get(old.mykey_id);
    if (!row || row.status === 'invalidated') return { done: refused('linkage_mykey_invalidated', 'the MyKey ID was invalidated by its holder') };
    if (old.state === 'carried_over') {
      const mine = await repo.linkageOf(old.id);
      if (mine ? mine.new_fingerprint === identity.fingerprint : (await mykeys.currentBinding(old.mykey_id))?.fingerprint === identity.fingerprint) return { done: { kind: 'already' } };
      return { done: refused('linkage_old_superseded', 'the old certificate was already carried over to another certificate') };
    }
    if (old.revocation_reason && isLossReason(old.revocation_reason as CrlReason)) {
      return { done: refused('linkage_old_lost', `the old certificate was revoked (${old.revocation_reason})`) };
    }
    if (row.status === 'suspended' && row.status_reason && isLossReason(row.status_reason as CrlReason)) {
      return { done: refused('linkage_old_lost', `the MyKey ID is suspended (${row.status_reason})`) };
    }
    const revoked = deps.revokedNow?.(checkedCert);
    if (revoked) return { done: refused('linkage_new_cert_revoked', `the new certificate is revoked (${revoked.reason})`) };
    // The exact (issuer name, issuing key, serial) of cert_bindings_live_serial: one index seek.
    if (await repo.liveBindingOfSerial(identity.issuerKey, identity.issuerKeyId, identity.serialHex))
      return { done: refused('linkage_new_cert_bound', 'the new certificate is already bound to another MyKey ID') };
    return { carry: { mykeyId: old.mykey_id, oldBindingId: old.id, identity, checked: checkedCert } };
  }

  /** One record: checks, keys derived ahead, then the carry-over and its linkage row in one transaction. */
  async function applyLine(anchor: TrustAnchor, l: Extract<LinkageLine, { ok: true }>, fileSha: string, dryRun: boolean): Promise<Outcome> {
    const c = await check(anchor, l, now());
    if ('done' in c) return c.done;
    const { mykeyId, oldBindingId, identity } = c.carry;
    if (dryRun) return { kind: 'carried', resumed: (await mykeys.get(mykeyId))?.status === 'suspended' };
    await deps.prepareKeys?.(mykeyId, { cert: identity });
    const write = async (): Promise<Outcome> => {
      // Checked again inside the write: the holder (or another import) may have moved the MyKey ID
      // while the keys were derived.
      const again = await check(anchor, l, now(), c.carry.checked);
      if ('done' in again) return again.done;
      if (again.carry.oldBindingId !== oldBindingId) return refused('linkage_old_superseded', 'the old binding changed during the import');
      const at = now().getTime();
      const r = await mykeys.carryOver(mykeyId, identity, at, 'linkage');
      await repo.insert({ old_binding_id: oldBindingId, new_binding_id: r.bindingId, new_fingerprint: identity.fingerprint, file_sha256: fileSha, line: l.line, imported_at: at });
      return { kind: 'carried', resumed: r.resumed };
    };
    let out: Outcome;
    for (let attempt = 0; ; attempt++) {
      try {
        // BEGIN IMMEDIATE (SQLite): another process (a CRL import, the hub beside this CLI) may be writing.
        out = await deps.sql.tx(write, { immediate: true });
        break;
      } catch (e) {
        // cert_bindings_live_serial: the new certificate was bound by a registration meanwhile.
        if (isUniqueViolation(e)) return refused('linkage_new_cert_bound', 'the new certificate is already bound to another MyKey ID');
        if (!isBusyError(e)) throw e;
        if (attempt >= BUSY_RETRIES) throw busyUnavailable(e);
        await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
      }
    }
    if (out.kind === 'carried') deps.events?.emit('outboxWritten', { source: 'linkage' });
    return out;
  }

  return {
    /**
     * Imports a linkage file with its detached signature (base64 text). A whole-file refusal throws a
     * MyKeyError with its code (and is recorded); otherwise every line is reported.
     */
    async importFile(bytes: Uint8Array, signatureText: string | undefined, source: string, opts: { dryRun?: boolean } = {}): Promise<LinkageReport> {
      const dryRun = opts.dryRun === true;
      const startedAt = now().getTime();
      const record = (r: Partial<Parameters<LinkageRepo['recordImport']>[0]>): Promise<void> =>
        repo.recordImport({
          source: source.slice(0, 200),
          file_sha256: null,
          issuer: null,
          created: null,
          records: null,
          carried: null,
          already: null,
          refused: null,
          code: null,
          started_at: startedAt,
          finished_at: now().getTime(),
          ...r,
        });
      const parsed = parseLinkageFile(bytes, signatureText, { signers: deps.signers(), maxBytes: deps.maxBytes });
      if (!parsed.ok) {
        await record({ code: parsed.code });
        deps.log.warn('linkage file refused', { source, code: parsed.code, error: parsed.message });
        throw new MyKeyError(parsed.code, parsed.message);
      }
      const { header, sha256, lines, signer } = parsed.value;
      const anchor = deps.anchors().find((a) => a.keyId === header.issuer);
      if (!anchor) {
        await record({ code: 'linkage_issuer_unknown', file_sha256: sha256, issuer: header.issuer, created: header.created, records: header.records });
        deps.log.warn('linkage file refused', { source, code: 'linkage_issuer_unknown' });
        throw new MyKeyError('linkage_issuer_unknown', `no configured JPKI trust anchor has the key id ${header.issuer}`);
      }
      const report: LinkageReport = { file: { sha256, issuer: header.issuer, created: header.created, records: header.records, signer }, carried: [], alreadyCarried: [], refused: [], resumed: 0 };
      let slice = performance.now();
      for (const l of lines) {
        // A large file must not hold the event loop: requests are answered between slices.
        if (performance.now() - slice > SLICE_MS) {
          await new Promise<void>((r) => setImmediate(r));
          slice = performance.now();
        }
        const out = l.ok ? await applyLine(anchor, l, sha256, dryRun) : refused(l.code, l.message);
        if (out.kind === 'carried') {
          report.carried.push(l.line);
          if (out.resumed) report.resumed++;
        } else if (out.kind === 'already') report.alreadyCarried.push(l.line);
        else report.refused.push({ line: l.line, code: out.code, message: out.message });
      }
      if (dryRun) return { ...report, dryRun: true };
      await record({
        file_sha256: sha256,
        issuer: header.issuer,
        created: header.created,
        records: header.records,
        carried: report.carried.length,
        already: report.alreadyCarried.length,
        refused: report.refused.length,
      });
      // Counts only: no serial, no MyKey ID (README: no usage history, nothing personal in logs).
      deps.log.info('linkage file imported', {
        source,
        records: header.records,
        carried: report.carried.length,
        alreadyCarried: report.alreadyCarried.length,
        refused: report.refused.length,
        resumed: report.resumed,
      });
      return report;
    },
    recentImports: (limit?: number) => repo.recentImports(limit),
    /** Records a file refused before it reached importFile (the API's body limit). */
    async recordRefused(source: string, code: ErrorCode): Promise<void> {
      const at = now().getTime();
      await repo.recordImport({ source, file_sha256: null, issuer: null, created: null, records: null, carried: null, already: null, refused: null, code, started_at: at, finished_at: at });
      deps.log.warn('linkage file refused', { source, code });
    },
  };
}

export type LinkageImporter = ReturnType<typeof createLinkageImporter>;
