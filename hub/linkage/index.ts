// Certificate linkage files (新旧シリアル番号紐付け): the importer assembled from the hub's parts, so
// hub/main.ts wires it in one line. See import.ts, parse.ts and hub/pki/README.md.
import type { Emitter } from '../../shared/typed-events.ts';
import type { FanoutEvents } from '../fanout.ts';
import type { Logger } from '../../shared/log.ts';
import type { HubConfig } from '../config.ts';
import type { LoadedCrl } from '../revocation/checker.ts';
import type { TrustAnchor } from '../pki/trust-anchors.ts';
import { createLinkageRepo } from '../store/linkage-repo.ts';
import type { MyKeyRepo } from '../store/mykey-repo.ts';
import type { Sql } from '../store/sql.ts';
import type { CertRef } from '../../shared/cert-identity.ts';
import { createLinkageImporter } from './import.ts';
import { loadLinkageSigners } from './parse.ts';

export interface LinkageParts {
  config: HubConfig;
  /** The store's executor. */
  sql: Sql;
  mykeys: MyKeyRepo;
  anchors: () => readonly TrustAnchor[];
  /** The CRLs the hub holds, per issuer key id (the CRL manager's). */
  crls: ReadonlyMap<string, LoadedCrl>;
  prepareKeys: (mykeyId: string, next: { cert?: CertRef }) => Promise<void>;
  events: Emitter<FanoutEvents>;
  now: () => Date;
  log: Logger;
}

export function createLinkage(p: LinkageParts) {
  const signers = loadLinkageSigners(p.config.jpki.linkageSigners);
  return createLinkageImporter({
    sql: p.sql,
    mykeys: p.mykeys,
    repo: createLinkageRepo(p.sql),
    anchors: p.anchors,
    signers: () => signers,
    maxBytes: p.config.jpki.linkageMaxBytes,
    revokedNow: (c) => p.crls.get(c.anchor.keyId)?.lookup(c.cert.serialHex),
    prepareKeys: p.prepareKeys,
    events: p.events,
    now: p.now,
    log: p.log,
  });
}

export { mountLinkageRoutes, LINKAGE_SIGNATURE_HEADER, type LinkageRoutesDeps } from './routes.ts';
export type { LinkageImporter, LinkageReport } from './import.ts';
