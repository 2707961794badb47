// The test CA's OCSP responder in its own process, for register.bench.ts: opens the CA directory
// given as argv[2], answers "good" for every serial of that CA (the bench's certificates are all
// valid), prints `OCSP_URL <url>` on stdout and, asked over IPC, how many requests it answered and
// the CPU time it has used (user + system, microseconds).
import type { webcrypto } from 'node:crypto';
import { startOcspResponder } from '../provisioning/test-ca/ocsp-responder.ts';
import { openCaDir } from '../provisioning/test-ca/store.ts';

const dir = process.argv[2];
// 'ca': the CA's RSA-2048 key signs each answer; 'delegated-ec': a responder certificate the CA issued
// for an ECDSA P-256 key does (RFC 6960 4.2.2.2), whose signatures cost a fraction of RSA's.
const mode = process.argv[3] ?? 'ca';
let answered = 0;
const d = await openCaDir(dir);
const ecKeys = mode === 'delegated-ec' ? ((await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair) : undefined;
const responder = await startOcspResponder({
  ca: d.ca,
  responder: mode === 'ca' ? 'ca' : 'delegated',
  ...(ecKeys ? { responderKeyPair: ecKeys } : {}),
  status: () => {
    answered++;
    return undefined;
  },
});
process.stdout.write(`OCSP_URL ${responder.url}\n`);
process.on('message', () => {
  const cpu = process.cpuUsage();
  process.send?.({ answered, cpuUs: cpu.user + cpu.system });
});
process.on('SIGTERM', () => void responder.close().then(() => process.exit(0)));
