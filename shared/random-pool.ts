// Random bytes for the many small draws of a busy hub (a 16-byte MyKey ID candidate, a 32-byte
// challenge, thousands a second): crypto.randomBytes makes one call into OpenSSL per draw, which at
// registration load cost more than the draw itself. This pool fills a large block from the same
// CSPRNG (crypto.randomFillSync) and hands out fresh copies of consecutive unused slices; every byte
// is handed out once, then the block is refilled. A draw larger than half a block bypasses the pool.
import { randomFillSync } from 'node:crypto';

/** A `(n) => n random bytes` source backed by one block of `blockBytes` refilled as it is used up. */
export function createRandomPool(blockBytes = 8192): (n: number) => Uint8Array {
  if (!Number.isInteger(blockBytes) || blockBytes < 64) throw new RangeError('blockBytes must be an integer of at least 64');
  const block = new Uint8Array(blockBytes);
  // Nothing is drawn yet: the first draw fills the block.
  let at = blockBytes;
  return (n: number): Uint8Array => {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`cannot draw ${n} random bytes`);
    if (n > blockBytes / 2) return randomFillSync(new Uint8Array(n));
    if (at + n > blockBytes) {
      randomFillSync(block);
      at = 0;
    }
    const out = block.slice(at, at + n);
    // What was handed out is not left in the block (a copy is all the caller gets, and all there is).
    block.fill(0, at, at + n);
    at += n;
    return out;
  };
}
