// The edge asks for its snapshot gzip-encoded and decodes it under its size cap: a gzip body that
// unpacks beyond the cap (a few kilobytes that become megabytes) is refused as payload_too_large
// before it is all decoded, and a body that does not decode is validation_failed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { HubClient } from '../../../edge/sync/hub-client.ts';
import { MyKeyError } from '../../../shared/errors.ts';

const KEY = 'AAAAAAAAAAAAAAAAAAAAAA';
let server: Server;
let url = '';
let body: Buffer = Buffer.alloc(0);
let asked: string | undefined;

test.before(async () => {
  server = createServer((req, res) => {
    asked = req.headers['accept-encoding'];
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
test.after(() => new Promise<void>((r) => server.close(() => r())));

const code = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return e instanceof MyKeyError ? e.code : `other: ${(e as Error).message}`;
  }
};

test('a gzip-encoded snapshot is asked for, decoded and checked against the schema', async () => {
  body = gzipSync(JSON.stringify({ serviceId: 'library', seq: 3, generatedAt: '2026-06-01T12:00:00Z', entries: [[KEY, 'LIB-1']], keyScheme: 'scrypt-v3' }));
  const { value } = await new HubClient({ hubUrl: url }).snapshot();
  assert.is(asked, 'gzip');
  assert.equal(value.entries, [[KEY, 'LIB-1']]);
});

test('a gzip body that decodes beyond the cap is refused as payload_too_large', async () => {
  // 8 MiB of one repeated byte packs into about 8 KB.
  body = gzipSync(Buffer.concat([Buffer.from('{"serviceId":"library","seq":1,"generatedAt":"2026-06-01T12:00:00Z","entries":[],"x":"'), Buffer.alloc(8 * 1024 * 1024, 0x61), Buffer.from('"}')]));
  assert.ok(body.length < 64 * 1024, `the bomb is small (${body.length} bytes)`);
  assert.is(await code(new HubClient({ hubUrl: url, maxSnapshotBytes: 1024 * 1024 }).snapshot()), 'payload_too_large');
});

test('a body that says gzip but does not decode is refused as validation_failed', async () => {
  body = Buffer.from('this is not gzip at all');
  assert.is(await code(new HubClient({ hubUrl: url }).snapshot()), 'validation_failed');
});

test.run();
