// Option defaults in one place: a part's constructor names its defaults once, as a table, and takes
// each option that was given. `??` per key, so an option passed as `undefined` (or `null`) still gets
// its default, as `opts.x ?? d` did (a plain `{ ...defaults, ...opts }` would let `undefined` through).

/** Each key of `defaults`, taken from `given` where set there (not undefined or null), else the default. */
export function withDefaults<D extends object>(given: { [K in keyof D]?: D[K] | null }, defaults: D): D {
  const out = { ...defaults };
  for (const k of Object.keys(defaults) as (keyof D)[]) {
    const v = given[k];
    if (v !== undefined && v !== null) out[k] = v;
  }
  return out;
}
