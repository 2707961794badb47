// Secrets for the command-line tools (a card PIN, a write key) are asked for, or read from standard
// input, never taken from argv: the arguments of a process are visible to every user of the machine
// (`ps`, /proc/<pid>/cmdline) and end up in shell history.
import type { Readable, Writable } from 'node:stream';

export interface SecretInput {
  input?: Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  /** Where the prompt goes (stderr: stdout may be piped). */
  output?: Writable;
}

/**
 * Reads one secret line: on a terminal with the echo off (nothing is shown, not even its length),
 * otherwise the first line of standard input (`echo 1234 | tool ...`, a file, a pipe from a vault).
 */
export async function readSecretLine(prompt: string, io: SecretInput = {}): Promise<string> {
  const input = io.input ?? process.stdin;
  const output = io.output ?? process.stderr;
  if (input.isTTY && input.setRawMode) {
    output.write(prompt);
    input.setRawMode(true);
    input.resume();
    try {
      return await new Promise<string>((resolve, reject) => {
        let value = '';
        const onData = (chunk: Buffer | string) => {
          for (const ch of chunk.toString('utf8')) {
            if (ch === '\r' || ch === '\n') return done(() => resolve(value));
            if (ch === '\u0003') return done(() => reject(Object.assign(new Error('cancelled'), { code: 'cancelled' })));
            if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
            else value += ch;
          }
        };
        const done = (fn: () => void) => {
          input.off('data', onData);
          output.write('\n');
          fn();
        };
        input.on('data', onData);
      });
    } finally {
      input.setRawMode(false);
      input.pause();
    }
  }
  // Not a terminal: the first line, read without keeping the rest of the stream.
  let text = '';
  for await (const chunk of input) {
    text += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
    const nl = text.indexOf('\n');
    if (nl >= 0) return text.slice(0, nl).replace(/\r$/, '');
    if (text.length > 4096) break;
  }
  return text.replace(/\r?\n?$/, '');
}

/** Refuses a secret given on the command line, saying how to give it instead. */
export function refuseSecretArgument(argv: readonly string[], names: readonly string[]): string | undefined {
  for (const a of argv) {
    const name = a.split('=')[0]!;
    if (names.includes(name)) {
      return `${name} is not accepted: arguments are visible to every user of this machine (ps). The tool asks for it, or reads it from standard input (echo ... | tool ...).`;
    }
  }
  return undefined;
}
