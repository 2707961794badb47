// systemd unit files in tests: what `systemd-analyze verify` can check on this machine.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

/**
 * The unit as shipped, or, where node is not /usr/bin/node (a CI image with another Node.js), a copy
 * naming this node: verify checks that ExecStart's program exists.
 */
export function unitForVerify(path: string): string {
  if (existsSync('/usr/bin/node')) return path;
  const dir = mkdtempSync(join(tmpdir(), 'mykey-unit-'));
  const copy = join(dir, basename(path));
  writeFileSync(copy, readFileSync(path, 'utf8').replaceAll('/usr/bin/node', process.execPath));
  return copy;
}
