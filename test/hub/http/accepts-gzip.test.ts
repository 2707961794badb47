// Which Accept-Encoding headers get the device snapshot gzip-encoded (RFC 9110 12.5.3).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { acceptsGzip } from '../../../hub/http/device-routes.ts';

test('gzip, x-gzip or * with a q-value above zero accept gzip; q=0 or absence refuse it', () => {
  const table: [string | undefined, boolean][] = [
    [undefined, false],
    ['', false],
    ['gzip', true],
    ['GZIP', true],
    ['x-gzip', true],
    ['br, gzip;q=0.5', true],
    ['gzip;q=0', false],
    ['gzip; q=0.000', false],
    ['identity', false],
    ['*', true],
    ['*;q=0', false],
    ['*, gzip;q=0', false],
    ['deflate, br', false],
  ];
  for (const [header, want] of table) assert.is(acceptsGzip(header), want, String(header));
});

test.run();
