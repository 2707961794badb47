// The types of the revocation runs (crl-manager.ts): what the manager needs and what a run reports.
import type { Emitter } from '../../shared/typed-events.ts';
import type { Logger } from '../../shared/log.ts';
import type { FanoutEvents } from '../fanout.ts';
import type { TrustAnchor } from '../pki/trust-anchors.ts';
import type { MyKeyRepo } from '../store/mykey-repo.ts';
import type { RevocationRepo } from '../store/revocation-repo.ts';

/** What one revocation run found. */
export interface RevocationRunSummary {
  source: string;
  issuer: string;
  /** The key id of the issuer whose key verified the CRL (TrustAnchor.keyId). */
  issuerKeyId: string;
  crlNumber?: string;
  thisUpdate: string;
  nextUpdate?: string;
  entries: number;
  /** Bound certificates found revoked for the first time. */
  matched: number;
  /** MyKey IDs suspended by this run. */
  newlySuspended: number;
  durationMs: number;
  /** Set when the CRL was applied but an operator should look (it was already past nextUpdate plus grace). */
  warning?: string;
}

export interface CrlManagerDeps {
  dataDir: string;
  anchors: () => readonly TrustAnchor[];
  mykeys: MyKeyRepo;
  revocations: RevocationRepo;
  log: Logger;
  now?: () => Date;
  fetchTimeoutMs?: number;
  maxBytes?: number;
  /** A CRL fetched after its nextUpdate plus this is applied with a warning (jpki.crlGraceHours); default 24 h. */
  crlGraceMs?: number;
  /** How far a CRL's thisUpdate may lie in the future before it is refused (crl_not_yet_valid); default 5 min. */
  clockSkewMs?: number;
  /** Told `suspended` after suspensions were committed (their change-log entries wait in the outboxes). */
  events?: Emitter<FanoutEvents>;
  /** Hub replicas (hub/replicas): true for the one replica that fetches in this period; absent: every tick fetches. */
  claimPeriod?: (name: string, periodMs: number) => Promise<boolean>;
}
