// Importing a certificate linkage file (hub/linkage): records a second, from the signed bytes to
// every MyKey ID re-bound (signature, parse, each new certificate checked against the trust anchors,
// one transaction per record). MyKey IDs without linked services, so no keyed identity is derived:
// with links, each record also pays one memory-hard derivation per linked service (see
// keyed-identity.bench.ts).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { benchMain, progress, round } from './lib.ts';
import { createTestCa, generateRsaKeyPair, issueUserAuthCert, toPem } from '../provisioning/test-ca/ca.ts';
import { generateLinkageSigner, writeLinkageFile, type Linkage } from '../provisioning/test-ca/linkage-writer.ts';
import { loadHubConfig } from '../hub/config.ts';
import { createHub } from '../hub/main.ts';
import { silentLogger } from '../shared/log.ts';

const RECORDS = 2000;

benchMain(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-bench-linkage-'));
  try {
    const ca = await createTestCa();
    const signer = generateLinkageSigner();
    writeFileSync(join(dir, 'anchor.pem'), toPem(ca.certDer, 'CERTIFICATE'));
    writeFileSync(join(dir, 'signer.pem'), signer.publicKeyPem);
    const hub = await createHub(
      loadHubConfig({ env: {}, overrides: { dataDir: dir, jpki: { trustAnchors: [join(dir, 'anchor.pem')], linkageSigners: [join(dir, 'signer.pem')], requireRevocationStatus: false } } }),
      { log: silentLogger },
    );
    try {
      const anchor = hub.anchors[0];
      const keyPair = await generateRsaKeyPair();
      progress(`issuing ${RECORDS} renewed certificates`);
      const records: Linkage[] = [];
      const olds = [];
      for (let i = 0; i < RECORDS; i++) {
        const serialHex = `7e${randomBytes(15).toString('hex')}`;
        olds.push({
          id: `B${String(i).padStart(7, '0')}`,
          cert: { fingerprint: randomBytes(32).toString('hex'), issuerKey: anchor.issuerKey, issuerKeyId: anchor.keyId, serialHex, aki: anchor.keyId, notAfter: Date.now() + 86400_000 },
        });
        records.push({ old: { serialHex }, next: await issueUserAuthCert(ca, { keyPair }) });
      }
      await hub.mykeys.bulkCreate(olds, Date.now());
      const file = writeLinkageFile({ issuer: ca, records, signer: signer.privateKey });
      progress(`importing ${(file.bytes.length / 1e6).toFixed(1)} MB`);
      const t0 = performance.now();
      const report = await hub.linkage.importFile(file.bytes, file.signature, 'bench');
      const ms = performance.now() - t0;
      if (report.carried.length !== RECORDS) throw new Error(`carried ${report.carried.length} of ${RECORDS}: ${JSON.stringify(report.refused.slice(0, 3))}`);
      const t1 = performance.now();
      const again = await hub.linkage.importFile(file.bytes, file.signature, 'bench');
      const msAgain = performance.now() - t1;
      if (again.alreadyCarried.length !== RECORDS) throw new Error('re-import was not idempotent');
      return {
        linkage_import_per_s: { value: round((RECORDS / ms) * 1000, 0), unit: 'records/s' },
        linkage_reimport_per_s: { value: round((RECORDS / msAgain) * 1000, 0), unit: 'records/s' },
      };
    } finally {
      await hub.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
