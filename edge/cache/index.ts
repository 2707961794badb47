// Public entry point of the edge cache (pure: no I/O).
export { EdgeCache, type ApplyOutcome } from './edge-cache.ts';
export { KeyIndex, type PackedPairs } from './key-index.ts';
