// No usage history in the logs: the demo's whole story (provisioning/demo/run.ts: registrations with
// cards and PINs, a MyKey ID written to a card, two enrolled edges, counter and server links, touches,
// a CRL revocation and its purge, an offline edge catching up) runs with every log record of the hub
// and of both edges tapped (shared/log.ts tapLogs, whatever each logger's level), and with its stderr
// kept. No record at info level or above, and nothing on stderr, may carry any identifier the story
// used: the MyKey IDs in every form, the service IDs, the certificates' serials in hex and decimal.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LogRecord } from '../shared/log.ts';
import { formatMyKeyId } from '../shared/ids.ts';
import { requirePcscd } from './helpers/pcsc.ts';

// The service IDs the story links (provisioning/demo/run.ts).
const SERVICE_USER_IDS = ['L-0001', 'P-123', 'P-456', 'P-124'];

function forms(used: { mykeyId?: string; cert: string }[]): string[] {
  const out = new Set<string>(SERVICE_USER_IDS);
  for (const u of used) {
    if (u.mykeyId) for (const f of [u.mykeyId, formatMyKeyId(u.mykeyId)]) [f, f.toLowerCase()].forEach((x) => void out.add(x));
    const hex = new X509Certificate(Buffer.from(u.cert, 'base64')).serialNumber; // upper-case hex
    const bare = hex.replace(/^0+/, '');
    for (const h of [hex, bare]) [h, h.toLowerCase()].forEach((x) => void out.add(x));
    out.add(BigInt(`0x${hex}`).toString(10));
    out.add(hex.match(/../g)!.join(':').toLowerCase());
  }
  return [...out].filter((s) => s.length >= 5);
}

test('no log line at info or above, nor stderr, carries a MyKey ID, a service ID or a certificate serial from the demo story', async () => {
  await requirePcscd();
  const dir = mkdtempSync(join(tmpdir(), 'privacy-logs-'));
  try {
    const tap = join(dir, 'records.jsonl');
    const ids = join(dir, 'identifiers.json');
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', './test/helpers/log-tap.ts', 'provisioning/demo/run.ts'], {
      encoding: 'utf8',
      timeout: 240_000,
      env: { ...process.env, MYKEY_LOG_TAP_FILE: tap, MYKEY_DEMO_IDENTIFIERS: ids, MYKEY_LOG_LEVEL: 'debug' },
    });
    assert.is(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /All 9 steps worked/);
    const used = JSON.parse(readFileSync(ids, 'utf8')) as { mykeyId?: string; cert: string }[];
    assert.is(used.filter((u) => u.mykeyId).length, 2, 'two MyKey IDs were created');
    const needles = forms(used);
    assert.ok(existsSync(tap), 'records were tapped');
    const records = readFileSync(tap, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as LogRecord);
    const loud = records.filter((x) => x.level !== 'debug');
    // The demo gives its edges the silent logger: their records are tapped all the same (silent.*).
    const names = [...new Set(records.map((x) => x.name))];
    assert.ok(names.some((n) => n.startsWith('hub')) && names.some((n) => /\.(sync|state)$/.test(n) && !n.startsWith('hub')), `records of the hub and of the edges: ${names.join(', ')}`);
    const leaks: string[] = [];
    for (const rec of loud) for (const n of needles) if (rec.line.includes(n)) leaks.push(`${n} in ${rec.level} ${rec.line}`);
    for (const line of r.stderr.split('\n')) for (const n of needles) if (line.includes(n)) leaks.push(`${n} on stderr: ${line}`);
    assert.equal(leaks, [], `${leaks.length} leaks among ${loud.length} records at info or above:\n${leaks.join('\n')}`);
    // Debug lines keep none either.
    const debugLeaks = records.filter((x) => x.level === 'debug' && needles.some((n) => x.line.includes(n))).map((x) => x.line);
    assert.equal(debugLeaks, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
