// What the keyboard types for one touch: the prefix keys, the service's ID of the holder, the suffix
// keys, as strokes of one layout; and the configuration check that refuses, at start-up, a layout
// that cannot type a character the IDs (or the prefix and suffix texts) may contain.
import { NAMED_KEYS, strokeOf, untypable, type Layout, type NamedKey, type Stroke } from './layouts.ts';

/** A prefix or suffix item: a named key, or literal text (e.g. a `;` start sentinel). */
export type KeySpec = NamedKey | { text: string };

/** The strokes of a prefix or suffix; undefined when the layout cannot type one of its characters. */
export function strokesOfKeys(layout: Layout, keys: readonly KeySpec[]): Stroke[] | undefined {
  const out: Stroke[] = [];
  for (const k of keys) {
    if (typeof k === 'string') {
      out.push({ usage: NAMED_KEYS[k], shift: false });
      continue;
    }
    const s = strokesOfText(layout, k.text);
    if (!s) return undefined;
    out.push(...s);
  }
  return out;
}

/** The strokes that type `text`; undefined when the layout has no key for one of its characters. */
export function strokesOfText(layout: Layout, text: string): Stroke[] | undefined {
  const out: Stroke[] = [];
  for (const ch of text) {
    const s = strokeOf(layout, ch);
    if (!s) return undefined;
    out.push(s);
  }
  return out;
}

/**
 * Every character a pattern of the form `^[class]{m,n}$` (or `+`/`*`) admits, from the Basic
 * Multilingual Plane. Service user IDs are described by such a pattern (shared/ids.ts).
 */
export function charactersAllowedBy(pattern: string): string[] {
  const m = /^\^(\[(?:\\.|[^\]\\])+\])(?:\{\d+(?:,\d*)?\}|\+|\*)\$$/.exec(pattern);
  if (!m) throw new Error(`cannot list the characters of ${pattern}: expected ^[class]{m,n}$`);
  const one = new RegExp(`^${m[1]}$`);
  const out: string[] = [];
  for (let c = 0; c <= 0xffff; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue; // lone surrogates are not characters
    const ch = String.fromCharCode(c);
    if (one.test(ch)) out.push(ch);
  }
  return out;
}

/** How a character is named in an error: `'¥' (U+00A5)`, or `(U+3000)` for an invisible one. */
export function describeCharacter(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0;
  const shown = /[\p{Z}\p{C}]/u.test(ch) ? '' : `'${ch}' `; // a space or control character would show as nothing
  return `${shown}(U+${cp.toString(16).toUpperCase().padStart(4, '0')})`;
}

/** The parts of a keyboard target's config this check needs. */
export interface KeyboardPlanConfig {
  layout: Layout;
  prefix: readonly KeySpec[];
  suffix: readonly KeySpec[];
}

/**
 * Problems of one keyboard target, as config error lines under `path`: every character the service
 * user IDs may contain (from `idPattern`) and every prefix/suffix character must be typable on the
 * layout. A character found missing at the counter would mean a wrong card number typed, so it is
 * refused here, before the agent starts.
 */
export function keyboardPlanProblems(c: KeyboardPlanConfig, path: string, idPattern: string): string[] {
  const problems: string[] = [];
  const missing = untypable(c.layout, charactersAllowedBy(idPattern));
  if (missing.length) {
    problems.push(`${path}/layout: the ${c.layout} layout cannot type ${missing.map(describeCharacter).join(', ')}, which service user IDs may contain (${idPattern})`);
  }
  for (const side of ['prefix', 'suffix'] as const) {
    c[side].forEach((k, i) => {
      if (typeof k === 'string') return;
      const bad = untypable(c.layout, k.text);
      if (bad.length) problems.push(`${path}/${side}/${i}/text: the ${c.layout} layout cannot type ${bad.map(describeCharacter).join(', ')}`);
    });
  }
  return problems;
}
