// The console's words in Japanese (the default) and English (i18n/ja.ts, i18n/en.ts). One table: a
// missing translation is a type error, not a blank on the page.
import { en } from './i18n/en.ts';
import { ja } from './i18n/ja.ts';

export type Lang = 'ja' | 'en';

export type Messages = typeof ja;
const TABLE: Record<Lang, Messages> = { ja, en };

export function messages(lang: Lang): Messages {
  return TABLE[lang];
}

export function isLang(v: unknown): v is Lang {
  return v === 'ja' || v === 'en';
}

/** A duration in the largest sensible unit ("3 min", "2時間"). */
export function duration(ms: number, m: Messages): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} ${m.units.s}`;
  if (s < 90 * 60) return `${Math.round(s / 60)} ${m.units.m}`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} ${m.units.h}`;
  return `${Math.round(s / 86400)} ${m.units.d}`;
}

/** A moment as local date and time in Japan (the platform's users are there), e.g. 2026-11-25 18:30. */
export function when(at: number | null | undefined): string {
  if (at === null || at === undefined) return '—';
  const d = new Date(at + 9 * 3600_000);
  return `${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 16)}`;
}
