// The MyKey ID lifecycle: registration by JPKI challenge and response, and what the holder can do with
// their MyKey ID by proving possession of the card again (status, change of id, invalidation,
// carry-over to a renewed certificate or new card).
import { MyKeyError, fail, ok, type ErrorCode, type Result } from '../../shared/errors.ts';
import { normalizeMyKeyId, randomMyKeyId, type MyKeyId } from '../../shared/ids.ts';
import { isLossReason, type CrlReason } from '../../shared/revocation.ts';
import type { CertRef } from '../../shared/cert-identity.ts';
import type { TrustAnchor } from '../pki/trust-anchors.ts';
import { checkUserCertificate, verifyChallengeSignature, type CheckedCertificate } from '../pki/user-cert.ts';
import type { RevocationChecker, RevocationVerdict } from '../revocation/checker.ts';
import { IdTakenError, type BindingRow, type CertIdentity, type MyKeyRepo, type MyKeyRow } from '../store/mykey-repo.ts';
import type { ChallengeBinding, ChallengeStore } from './challenges.ts';

/** A JPKI proof of possession: a hub challenge, the user-authentication certificate, the card's signature. */
export interface Proof {
  /** The challenge as the hub issued it (base64url). */
  challenge: string;
  /** The user-authentication certificate, DER in base64. */
  certificate: string;
  /** The card's signature over the challenge bytes (RSASSA-PKCS1-v1_5, SHA-256), base64. */
  signature: string;
}

export interface MyKeyServiceDeps {
  repo: MyKeyRepo;
  challenges: ChallengeStore;
  anchors: () => readonly TrustAnchor[];
  revocation: RevocationChecker;
  now: () => Date;
  random: (n: number) => Uint8Array;
  /** Runs a store write in the next group commit (hub/store/write-batcher.ts); resolves once durable. */
  write: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Refuse when revocation status cannot be determined (no fresh CRL, no OCSP answer). Default true. */
  requireRevocationStatus?: boolean;
  /** Derives the keyed identities a change will need, off the event loop, before its write (hub/links). */
  prepareKeys?: (mykeyId: string, next: { mykeyId?: string; cert?: CertRef }) => Promise<void>;
}

interface Proven {
  checked: CheckedCertificate;
  identity: CertIdentity;
  revocation: RevocationVerdict;
}

export interface HolderView {
  mykeyId: MyKeyId;
  status: MyKeyRow['status'];
  statusReason: string | null;
  createdAt: string;
  certificates: { serial: string; state: BindingRow['state']; boundAt: string; unboundAt: string | null; notAfter: string; revoked: { at: string; reason: string } | null }[];
}

const B64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

function decodeB64(s: string, code: 'cert_malformed' | 'signature_malformed', what: string): Result<Uint8Array> {
  if (!B64.test(s)) return fail(code, `${what} is not base64`);
  return ok(new Uint8Array(Buffer.from(s, s.includes('-') || s.includes('_') ? 'base64url' : 'base64')));
}

const err = (r: { code: ErrorCode; message: string }) => new MyKeyError(r.code, r.message);

/** What a binding records of a checked certificate (also hub/linkage, which binds without a proof). */
export function certIdentityOf(checked: CheckedCertificate): CertIdentity {
  const c = checked.cert;
  return {
    fingerprint: checked.fingerprint,
    issuerKey: checked.anchor.issuerKey,
    issuerKeyId: checked.anchor.keyId,
    serialHex: c.serialHex,
    // The issuing key in the identity edges key certificate-mode touches with (shared/cert-identity.ts).
    aki: c.authorityKeyId ? Buffer.from(c.authorityKeyId).toString('hex') : '',
    subjectCn: c.subjectCn,
    notAfter: c.notAfter.getTime(),
  };
}

export function createMyKeyService(deps: MyKeyServiceDeps) {
  const { repo, challenges } = deps;
  const requireRevocation = deps.requireRevocationStatus ?? true;

  /**
   * Verifies a proof for one operation (and its parameters and device, see challenges.ts). Cheap
   * checks first and the network (OCSP) last. The challenge is consumed before the certificate is
   * looked at, so a challenge is never good for a second try.
   */
  async function prove(proof: Proof, binding: ChallengeBinding, opts: { allowExpired?: boolean; allowRevokedReasons?: (r: CrlReason) => boolean } = {}): Promise<Proven> {
    const certDer = decodeB64(proof.certificate, 'cert_malformed', 'certificate');
    if (!certDer.ok) throw err(certDer);
    const sig = decodeB64(proof.signature, 'signature_malformed', 'signature');
    if (!sig.ok) throw err(sig);
    const challenge = await challenges.consume(proof.challenge, binding);
    if (!challenge.ok) throw err(challenge);
    const now = deps.now();
    const checked = checkUserCertificate(certDer.value, deps.anchors(), { now, allowExpired: opts.allowExpired });
    if (!checked.ok) throw err(checked);
    const sigOk = verifyChallengeSignature(checked.value.cert, challenge.value, sig.value);
    if (!sigOk.ok) throw err(sigOk);
    const revocation = await deps.revocation.check(checked.value, now);
    if (revocation.status === 'revoked' && !(revocation.reason && opts.allowRevokedReasons?.(revocation.reason))) {
      throw new MyKeyError(
        revocation.reason === 'superseded' ? 'cert_revoked_superseded' : 'cert_revoked',
        `the certificate was revoked (${revocation.reason ?? 'unspecified'}) at ${revocation.revokedAt?.toISOString() ?? 'an unknown time'}`,
        {
          details: { reason: revocation.reason },
        },
      );
    }
    // A CRL applied by another process (hub/cli.ts crl-import or crl-fetch, another replica) has marked
    // the binding in the store before this process loads that CRL itself: the stored verdict stands,
    // and an OCSP "good" (perhaps cached) never overrides it.
    const stored = await repo.bindingByFingerprint(checked.value.fingerprint);
    if (revocation.status !== 'revoked' && stored?.revoked_at != null) {
      const reason = (stored.revocation_reason ?? 'unspecified') as CrlReason;
      if (!opts.allowRevokedReasons?.(reason)) {
        throw new MyKeyError(reason === 'superseded' ? 'cert_revoked_superseded' : 'cert_revoked', `the certificate was revoked (${reason}) at ${new Date(stored.revoked_at).toISOString()}`, {
          details: { reason },
        });
      }
    }
    if (revocation.status === 'unknown' && requireRevocation) {
      throw new MyKeyError('cert_revocation_unknown', `revocation status unknown: ${revocation.detail ?? 'no source'}`, { details: { ocsp: revocation.ocspCode } });
    }
    return { checked: checked.value, revocation, identity: certIdentityOf(checked.value) };
  }

  async function currentOf(p: Proven): Promise<{ row: MyKeyRow; binding: BindingRow }> {
    const binding = await repo.liveBindingOfCert(p.identity);
    if (!binding) throw new MyKeyError('mykey_id_not_found');
    if (binding.state === 'carried_over') throw new MyKeyError('cert_superseded');
    const row = await repo.get(binding.mykey_id);
    if (!row) throw new MyKeyError('mykey_id_not_found');
    return { row, binding };
  }

  async function view(row: MyKeyRow): Promise<HolderView> {
    const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
    return {
      mykeyId: row.id,
      status: row.status,
      statusReason: row.status_reason,
      createdAt: new Date(row.created_at).toISOString(),
      certificates: (await repo.bindingsOf(row.id)).map((b) => ({
        serial: b.serial_hex,
        state: b.state,
        boundAt: new Date(b.bound_at).toISOString(),
        unboundAt: iso(b.unbound_at),
        notAfter: new Date(b.not_after).toISOString(),
        revoked: b.revoked_at === null ? null : { at: new Date(b.revoked_at).toISOString(), reason: b.revocation_reason ?? 'unspecified' },
      })),
    };
  }

  return {
    prove,

    /** Creates the MyKey ID for a certificate, or returns the one it already has. */
    async register(proof: Proof): Promise<{ mykeyId: MyKeyId; status: MyKeyRow['status']; created: boolean }> {
      const p = await prove(proof, { operation: 'register' });
      const r = await deps.write(() => repo.createOrGet(p.identity, () => randomMyKeyId(deps.random), deps.now().getTime()));
      if ('superseded' in r) throw new MyKeyError('cert_superseded');
      return { mykeyId: r.row.id, status: r.row.status, created: r.created };
    },

    /** The holder reads their MyKey ID's status and certificate history. */
    async status(proof: Proof): Promise<HolderView> {
      const p = await prove(proof, { operation: 'status' });
      return view((await currentOf(p)).row);
    },

    /** The holder's MyKey ID, proven for the holder's unlinking of one service. */
    async forUnlink(proof: Proof, serviceId: string): Promise<HolderView> {
      const p = await prove(proof, { operation: 'unlink', params: { serviceId } });
      return view((await currentOf(p)).row);
    },

    /** The holder chooses another free MyKey ID. */
    async changeId(proof: Proof, wanted: string): Promise<HolderView> {
      const newId = normalizeMyKeyId(wanted);
      if (!newId) throw new MyKeyError('mykey_id_malformed');
      const p = await prove(proof, { operation: 'change_id', params: { mykeyId: newId } });
      const { row } = await currentOf(p);
      if (row.status !== 'active') throw new MyKeyError(row.status === 'invalidated' ? 'mykey_id_invalidated' : 'mykey_id_suspended');
      if (newId === row.id) return view(row);
      await deps.prepareKeys?.(row.id, { mykeyId: newId });
      try {
        await deps.write(() => repo.changeId(row.id, newId, deps.now().getTime()));
      } catch (e) {
        if (e instanceof IdTakenError) throw new MyKeyError('mykey_id_taken');
        throw e;
      }
      return view((await repo.get(newId))!);
    },

    /** The holder invalidates their MyKey ID. */
    async invalidate(proof: Proof): Promise<HolderView> {
      const p = await prove(proof, { operation: 'invalidate' });
      const { row } = await currentOf(p);
      if (row.status === 'invalidated') throw new MyKeyError('mykey_id_invalidated');
      await deps.write(() => repo.invalidate(row.id, deps.now().getTime()));
      return view((await repo.get(row.id))!);
    },

    /**
     * Carries a MyKey ID over to a renewed certificate or a new card. The holder proves possession of
     * both: the new card (a valid, unrevoked certificate) and the previous one, whose certificate may
     * have expired or been revoked as superseded (renewal) but not for a loss such as keyCompromise.
     */
    async carryOver(newProof: Proof, previousProof: Proof): Promise<HolderView> {
      const prev = await prove(previousProof, { operation: 'carry_over', params: { role: 'previous' } }, { allowExpired: true, allowRevokedReasons: (r) => !isLossReason(r) });
      const next = await prove(newProof, { operation: 'carry_over', params: { role: 'new' } });
      if (prev.identity.fingerprint === next.identity.fingerprint) throw new MyKeyError('carry_over_same_certificate');
      const { row } = await currentOf(prev);
      if (row.status === 'invalidated') throw new MyKeyError('mykey_id_invalidated');
      if (row.status === 'suspended' && row.status_reason && isLossReason(row.status_reason as CrlReason)) {
        throw new MyKeyError('mykey_id_suspended', `the MyKey ID is suspended (${row.status_reason}); it cannot be carried over`);
      }
      if (await repo.liveBindingOfCert(next.identity)) throw new MyKeyError('carry_over_new_cert_bound');
      await deps.prepareKeys?.(row.id, { cert: next.identity });
      await deps.write(() => repo.carryOver(row.id, next.identity, deps.now().getTime()));
      return view((await repo.get(row.id))!);
    },
  };
}

export type MyKeyService = ReturnType<typeof createMyKeyService>;
