// Touch to hand-off through the real stack: VirtualCard -> vpcd -> pcscd -> pcsclite -> the reader
// layer -> the touch desk and lookup over a cache of CACHE_SIZE mappings -> the webhook target -> a
// business system on loopback. Timed from putting the card into the vpcd slot until the business
// system has the whole POST body, p50 and p99 over TOUCHES touches alternating a card with the MyKey
// application (MyKey ID) and one without (certificate mode).
//
// As in bench/touch.bench.ts, each touch is inserted right after the previous removal was seen, which
// locks the insert to pcscd's presence polling (about 400 ms of every figure is that poll).
// `touch_present_handoff_*` times from the reader's card-present event, and `handoff_after_identity_*`
// only the edge's own part: from the reader layer's identity event to the body received.
import { X509Certificate } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { benchMain, percentile, progress, round, type Metrics } from './lib.ts';
import { touchLookup } from '../test/helpers/edge-stack.ts';
import { createTestCa } from '../provisioning/test-ca/ca.ts';
import { makeCardFile } from '../provisioning/virtual-card/card-file.ts';
import { VirtualCard } from '../provisioning/virtual-card/card.ts';
import { VpcdSlot } from '../provisioning/virtual-card/vpcd-slot.ts';
import { certIdentity, issuerKeyOf } from '../shared/cert-identity.ts';
import { keyedId } from '../shared/sync.ts';
import { EdgeCache, KeyIndex } from '../edge/cache/index.ts';
import { Handoff, WebhookTarget } from '../edge/handoff/index.ts';
import { TouchDesk } from '../edge/lookup/index.ts';
import { ReaderManager, TouchPipeline, silentReaderLog } from '../edge/reader/index.ts';
import { requirePcscd, vpcdReaderName } from '../test/helpers/pcsc.ts';

const TOUCHES = Math.max(2, Number(process.env.HANDOFF_BENCH_TOUCHES ?? 200));
const CACHE_SIZE = Number(process.env.HANDOFF_BENCH_CACHE ?? 100_000);
const SLOT = 1 as const;
const READER = vpcdReaderName(SLOT);
const SECRET = new Uint8Array(32).fill(9);

function timeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: nothing within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

benchMain(async () => {
  await requirePcscd();
  const ca = await createTestCa({ label: 'handoff-bench' });
  const files = {
    mykey: await makeCardFile({ ca, mykeyId: 'B7NQ4KXW' }),
    cert: await makeCardFile({ ca, withMyKeyApp: false }),
  };
  const certDer = new Uint8Array(Buffer.from(files.cert.jpki.authCert, 'base64'));
  const certKey = keyedId(SECRET, 'cert', certIdentity(issuerKeyOf(ca.nameDer), new X509Certificate(certDer).serialNumber));

  // A service-sized cache, with the two cards among the mappings.
  const index = new KeyIndex(CACHE_SIZE + 2);
  for (let i = 0; i < CACHE_SIZE; i++) index.set(keyedId(SECRET, 'mykey', `K${i}`), `LIB-${100_000 + i}`);
  index.set(keyedId(SECRET, 'mykey', 'B7NQ4KXW'), 'LIB-MYKEY');
  index.set(certKey, 'LIB-CERT');
  const cache = new EdgeCache({ secret: SECRET });
  cache.replace(index, 1);

  // The business system: resolves the waiting touch when the whole body is in.
  let waiting: ((at: number, body: string) => void) | undefined;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const at = performance.now();
      res.writeHead(204).end();
      waiting?.(at, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/touch`;

  const handoff = new Handoff([{ target: new WebhookTarget({ url, retries: 0 }), outcomes: ['linked'] }]);
  const lookup = touchLookup({ cache, secret: () => SECRET, handoff, context: { serviceId: 'library', edgeId: 'bench-counter' } });
  const manager = new ReaderManager({ log: silentReaderLog, readerFilter: (n) => n === READER });
  const pipeline = new TouchPipeline(manager, { log: silentReaderLog });
  const desk = new TouchDesk({ source: pipeline, lookup });
  const slot = new VpcdSlot({ slot: SLOT, log: () => {} });
  const ready = new Promise<void>((r) => manager.on('reader-added', (e) => e.reader === READER && r()));
  desk.start();
  pipeline.start();
  manager.start();
  await timeout(ready, 5000, `reader ${READER}`);
  if (manager.isCardPresent(READER)) throw new Error(`${READER} already holds a card`);

  let identityAt = 0;
  let presentAt = 0;
  pipeline.on('identity', () => (identityAt = performance.now()));
  manager.on('card-present', () => (presentAt = performance.now()));

  async function touchOnce(kind: 'mykey' | 'cert'): Promise<{ total: number; read: number; edge: number }> {
    const received = new Promise<{ at: number; body: string }>((resolve) => (waiting = (at, body) => resolve({ at, body })));
    const t0 = performance.now();
    await slot.insert(new VirtualCard(files[kind]));
    const { at, body } = await timeout(received, 5000, 'hand-off');
    waiting = undefined;
    const expected = kind === 'mykey' ? 'LIB-MYKEY' : 'LIB-CERT';
    if (JSON.parse(body).serviceUserId !== expected) throw new Error(`hand-off carried ${body}`);
    const gone = manager.isCardPresent(READER)
      ? new Promise<void>((r) => {
          const off = manager.on('card-removed', (e) => {
            if (e.reader === READER) {
              off();
              r();
            }
          });
        })
      : Promise.resolve();
    await slot.remove();
    await timeout(gone, 5000, 'removal');
    return { total: at - t0, read: at - presentAt, edge: at - identityAt };
  }

  const metrics: Metrics = {};
  try {
    await touchOnce('mykey'); // warm-up of both paths
    await touchOnce('cert');
    const all: { kind: 'mykey' | 'cert'; total: number; read: number; edge: number }[] = [];
    for (let i = 0; i < TOUCHES; i++) {
      const kind = i % 2 === 0 ? 'mykey' : 'cert';
      all.push({ kind, ...(await touchOnce(kind)) });
      if ((i + 1) % 50 === 0) progress(`${i + 1}/${TOUCHES} touches`);
    }
    // A metric's p50 and p99 from a sample (`<name>_p50_ms`, `<name>_p99_ms`).
    const percentiles = (name: string, xs: number[]) => {
      for (const q of [50, 99]) metrics[`${name}_p${q}_ms`] = { value: round(percentile(xs, q), 2), unit: 'ms' };
    };
    const total = (t: (typeof all)[number]) => t.total;
    percentiles('touch_handoff', all.map(total));
    for (const kind of ['mykey', 'cert'] as const) percentiles(`touch_handoff_${kind}`, all.filter((x) => x.kind === kind).map(total));
    const reads = all.map((t) => t.read);
    const afterIdentity = all.map((t) => t.edge);
    percentiles('touch_present_handoff', reads);
    percentiles('handoff_after_identity', afterIdentity);
    progress(`touch to hand-off p50 ${metrics.touch_handoff_p50_ms.value} ms, p99 ${metrics.touch_handoff_p99_ms.value} ms (${CACHE_SIZE} mappings)`);
  } finally {
    await slot.remove().catch(() => {});
    desk.stop();
    await pipeline.stop();
    await manager.stop();
    await handoff.stop();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
  return metrics;
});
