// A labelled form input that shows again what was typed and, when it was refused, why (in the
// operator's language).
import type { Child } from 'hono/jsx';
import type { FieldErrors } from '../forms.ts';
import type { View } from '../layout.tsx';

export interface FormState {
  raw?: Record<string, string>;
  errors?: FieldErrors;
}

export function invalidText(v: View, name: string): string {
  const t = (v.m.invalid as Record<string, string>)[name];
  return t ?? v.m.invalid.other;
}

export function Field({ v, name, label, f, hint, children, ...input }: { v: View; name: string; label: string; f?: FormState; hint?: string; children?: Child } & Record<string, unknown>) {
  const bad = !!f?.errors?.[name];
  const { value, ...rest } = input;
  return (
    // biome-ignore lint/a11y/noLabelWithoutControl: the label wraps its control: the <input> below, or the <select> or <textarea> passed as children
    <label>
      {label}
      {children ?? <input type="text" name={name} {...rest} value={f?.raw?.[name] ?? (value as string | undefined) ?? ''} aria-invalid={bad ? 'true' : undefined} />}
      {bad ? (
        <small class="field-error" data-testid={`error-${name}`}>
          {invalidText(v, name)}
        </small>
      ) : (
        <small class="hint">{hint ?? '\u00a0'}</small>
      )}
    </label>
  );
}
