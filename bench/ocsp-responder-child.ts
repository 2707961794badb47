// The test CA's OCSP responder in its own process, for register.bench.ts: opens the CA directory
// given as argv[2], answers "good" for every serial of that CA (the bench's certificates are all
// valid), prints `OCSP_URL <url>` on stdout and, asked over IPC, how many requests it answered.
import { startOcspResponder } from '../provisioning/test-ca/ocsp-responder.ts';
import { openCaDir } from '../provisioning/test-ca/store.ts';

const dir = process.argv[2];
const mode = process.argv[3] === 'delegated' ? 'delegated' : 'ca';
let answered = 0;
const d = await openCaDir(dir);
const responder = await startOcspResponder({
  ca: d.ca,
  responder: mode,
  status: () => {
    answered++;
    return undefined;
  },
});
process.stdout.write(`OCSP_URL ${responder.url}\n`);
process.on('message', () => process.send?.({ answered }));
process.on('SIGTERM', () => void responder.close().then(() => process.exit(0)));
