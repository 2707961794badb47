// The hub says where it listens in its `hub listening` log line, as a human-readable line or as a JSON
// line (shared/log.ts picks the form: JSON when stderr is not a terminal, outside development).
/** The `url` field of the first `hub listening` line in a hub's log output, in either form. */
export function listeningUrl(log: string): string | undefined {
  for (const line of log.split('\n')) {
    if (!line.includes('hub listening')) continue;
    const m = /"url":"(https?:\/\/[^"]+)"/.exec(line);
    if (m) return m[1];
  }
  return undefined;
}
