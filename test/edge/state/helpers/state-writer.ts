// Child process for the kill -9 test: opens the state directory, then applies the deterministic log
// as fast as it can (journal appends, frequent checkpoints, now and then a snapshot replacement and
// counters), forever, until killed. Prints `ready <seq>` once open.
import { EdgeCache } from '../../../../edge/cache/edge-cache.ts';
import { KeyIndex } from '../../../../edge/cache/key-index.ts';
import { EdgeState } from '../../../../edge/state/edge-state.ts';
import { entryFor } from './workload.ts';

const dir = process.argv[2];
const cache = new EdgeCache();
const state = new EdgeState({ dir, compactEveryEntries: 40, compactEveryMs: 60_000, metaFlushMs: 20 });
await state.open(cache);
if (!cache.synced) {
  // First start: an empty "snapshot" at seq 0.
  cache.replace(new KeyIndex(), 0);
  await state.setIdentity({ edgeId: 'edge-1', serviceId: 'library', syncSecret: Buffer.alloc(32, 1).toString('base64url') });
  await state.checkpoint();
}
process.stdout.write(`ready ${cache.appliedSeq}\n`);
for (;;) {
  const seq = cache.appliedSeq + 1;
  if (seq % 150 === 0) {
    // A snapshot replacement: same content, rebuilt, then checkpointed.
    const idx = KeyIndex.unpack(cache.pack());
    const e = entryFor(seq);
    cache.replace(idx, seq - 1);
    cache.apply(e);
    await state.checkpoint();
  } else {
    const r = cache.apply(entryFor(seq));
    if (r.result !== 'applied') throw new Error(`unexpected ${r.result}`);
    await state.recordApplied([entryFor(seq)]);
  }
  state.count('touches');
  if (seq % 7 === 0) await state.flush();
}
