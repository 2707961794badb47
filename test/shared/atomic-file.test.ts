import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { replaceFileAtomically } from '../../shared/atomic-file.ts';

let dir = '';
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mykey-atomic-'));
});
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('replaces a file with the new bytes and leaves no temporary file behind', async () => {
  const path = join(dir, 'crl.der');
  writeFileSync(path, 'old');
  await replaceFileAtomically(path, new Uint8Array([1, 2, 3]), { tmp: `${path}.tmp` });
  assert.equal([...readFileSync(path)], [1, 2, 3]);
  assert.not.ok(existsSync(`${path}.tmp`));
});

test('creates the file with the mode asked for', async () => {
  const path = join(dir, 'state.json');
  await replaceFileAtomically(path, '{}', { tmp: join(dir, '.state.json.tmp'), mode: 0o600 });
  assert.is(readFileSync(path, 'utf8'), '{}');
  assert.is(statSync(path).mode & 0o777, 0o600);
});

test('a write that fails leaves the old file as it was', async () => {
  const path = join(dir, 'kept.txt');
  writeFileSync(path, 'old');
  // The temporary file's folder does not exist: nothing is written, nothing renamed.
  await replaceFileAtomically(path, 'new', { tmp: join(dir, 'missing', 'kept.tmp') }).then(
    () => assert.unreachable('the write should fail'),
    () => undefined,
  );
  assert.is(readFileSync(path, 'utf8'), 'old');
});

test.run();
