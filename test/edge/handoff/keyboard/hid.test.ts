import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEdgeConfig } from '../../../../edge/config.ts';
import { keyDownReport } from '../../../../edge/handoff/keyboard/hid-report.ts';
import { strokeOf } from '../../../../edge/handoff/keyboard/layouts.ts';
import { charactersAllowedBy, keyboardPlanProblems } from '../../../../edge/handoff/keyboard/plan.ts';
import { MyKeyError } from '../../../../shared/errors.ts';
import { SERVICE_USER_ID_PATTERN } from '../../../../shared/ids.ts';
import { decodeHidReports, ENTER, MINIMAL_CONFIG, TAB, throughHandoff, touch } from './decoders.ts';

const dir = mkdtempSync(join(tmpdir(), 'mykey-hid-'));
let n = 0;
/** A regular file standing in for /dev/hidg0 (the target never creates the device file itself). */
function fakeHidg(): string {
  const p = join(dir, `hidg${n++}`);
  writeFileSync(p, '');
  return p;
}

/** Every character a service user ID may hold, as the service's pattern says. */
const ALLOWED = charactersAllowedBy(SERVICE_USER_ID_PATTERN);
/** The same, cut into IDs no longer than the pattern allows (64). */
const IDS = [ALLOWED.slice(0, 47).join(''), ALLOWED.slice(47).join('')];

function configProblems(target: Record<string, unknown>): string[] {
  try {
    loadEdgeConfig({ overrides: { ...MINIMAL_CONFIG, handoff: { targets: [target] } }, env: {} });
  } catch (e) {
    assert.instance(e, MyKeyError);
    assert.is((e as MyKeyError).code, 'config_invalid');
    return (e as MyKeyError).details?.errors as string[];
  }
  return [];
}

test('the service user ID pattern allows the 94 printable ASCII characters', () => {
  assert.is(ALLOWED.length, 94);
  assert.is(ALLOWED[0], '!');
  assert.is(ALLOWED[93], '~');
  for (const id of IDS) assert.ok(new RegExp(SERVICE_USER_ID_PATTERN).test(id));
});

for (const layout of ['jis', 'us'] as const) {
  test(`types every character a service user ID may hold on a ${layout} host, through the hand-off, with an Enter after each`, async () => {
    const device = fakeHidg();
    const kb = await throughHandoff(
      { type: 'keyboard', device, layout, keyDelayMs: 0 },
      IDS.map((id) => touch(id)),
    );
    assert.equal(kb.stats().typed, 2);
    const text = decodeHidReports(readFileSync(device), layout);
    assert.is(text, IDS.map((id) => id + ENTER).join(''));
  });
}

test('a character typed for one layout decodes as another character on the other: the layout must match the host', () => {
  // The shifted characters that sit on different keys on JIS and US keyboards.
  for (const ch of ['@', '"', ':', '_', '=', '+', '(', ')', "'", '*', '~', '^', '&', '`', '[', ']', '{', '}', '\\', '|']) {
    const jis = keyDownReport(strokeOf('jis', ch)!);
    const us = keyDownReport(strokeOf('us', ch)!);
    assert.is(decodeHidReports(Buffer.concat([jis, Buffer.alloc(8)]), 'jis'), ch, `jis ${ch}`);
    assert.is(decodeHidReports(Buffer.concat([us, Buffer.alloc(8)]), 'us'), ch, `us ${ch}`);
    assert.not.equal(jis, us, `${ch} is a different key (or shift) on JIS and US`);
  }
});

test('types the prefix and suffix keys and texts around the ID', async () => {
  const cases: Array<[prefix: unknown[], suffix: unknown[], expect: string]> = [
    [[], [], 'LIB-0042'],
    [['tab'], ['enter'], `${TAB}LIB-0042${ENTER}`],
    [[{ text: ';' }], [{ text: '?' }, 'enter'], `;LIB-0042?${ENTER}`],
    [['escape', { text: 'ID:' }], ['tab', 'tab'], `\x1bID:LIB-0042${TAB}${TAB}`],
  ];
  for (const [prefix, suffix, expect] of cases) {
    for (const layout of ['jis', 'us'] as const) {
      const device = fakeHidg();
      await throughHandoff({ type: 'keyboard', device, layout, prefix, suffix, keyDelayMs: 0 }, [touch('LIB-0042')]);
      assert.is(decodeHidReports(readFileSync(device), layout), expect, `${layout} ${JSON.stringify(prefix)} ${JSON.stringify(suffix)}`);
    }
  }
});

test('touches in quick succession are typed one after another, never interleaved; beyond the queue they are dropped', async () => {
  const device = fakeHidg();
  const { KeyboardTarget } = await import('../../../../edge/handoff/keyboard/keyboard-target.ts');
  const kb = new KeyboardTarget({ anyFile: true, device, layout: 'jis', keyDelayMs: 1, maxQueue: 4 });
  await kb.start();
  for (let i = 1; i <= 6; i++) kb.deliver(touch(`ID-${i}`)); // one being typed, four waiting, one dropped
  await kb.idle();
  kb.deliver(touch('ID-7')); // after the queue ran dry, a new touch starts it again
  await kb.idle();
  await kb.stop();
  assert.is(decodeHidReports(readFileSync(device), 'jis'), ['ID-1', 'ID-2', 'ID-3', 'ID-4', 'ID-5', 'ID-7'].map((id) => id + ENTER).join(''));
  assert.equal([kb.stats().typed, kb.stats().dropped], [6, 1]);
});

test('an ID that waited too long is dropped, not typed late into whatever has the focus by then', async () => {
  const device = fakeHidg();
  let clock = 0;
  const { KeyboardTarget } = await import('../../../../edge/handoff/keyboard/keyboard-target.ts');
  const kb = new KeyboardTarget({ anyFile: true, device, layout: 'us', keyDelayMs: 0, maxWaitMs: 5000, now: () => clock });
  await kb.start();
  kb.deliver(touch('FIRST'));
  kb.deliver(touch('LATE'));
  clock = 6000; // the first took (as far as the target can tell) six seconds to type
  await kb.idle();
  await kb.stop();
  assert.is(decodeHidReports(readFileSync(device), 'us'), `FIRST${ENTER}`);
  assert.equal([kb.stats().typed, kb.stats().expired], [1, 1]);
});

test('a doubled character is two presses with a key-up between them', async () => {
  const device = fakeHidg();
  await throughHandoff({ type: 'keyboard', device, layout: 'us', suffix: [], keyDelayMs: 0 }, [touch('AA11')]);
  const bytes = readFileSync(device);
  assert.is(bytes.length, 8 * 8); // 4 keys, each a down and an up report
  assert.is(decodeHidReports(bytes, 'us'), 'AA11');
  assert.equal([...bytes.subarray(0, 8)], [0x02, 0, 0x04, 0, 0, 0, 0, 0]); // Left Shift + a
  assert.equal([...bytes.subarray(8, 16)], [0, 0, 0, 0, 0, 0, 0, 0]);
});

test('types only linked and degraded touches that carry an ID; refused and not-linked touches type nothing', async () => {
  const device = fakeHidg();
  const kb = await throughHandoff({ type: 'keyboard', device, layout: 'jis', keyDelayMs: 0, outcomes: ['linked', 'degraded'] }, [
    touch(undefined, 'not_linked'),
    touch(undefined, 'refused'),
    touch('P-1', 'degraded'),
    touch(undefined, 'degraded'),
    touch('P-2', 'linked'),
  ]);
  assert.is(decodeHidReports(readFileSync(device), 'jis'), `P-1${ENTER}P-2${ENTER}`);
  assert.is(kb.stats().typed, 2);
  assert.is(kb.stats().skipped, 1); // the degraded touch without an ID; the other two were never routed
});

test('refuses at configuration time a prefix or suffix text the layout cannot type, naming the character and the layout', () => {
  const table: Array<[target: Record<string, unknown>, expect: RegExp]> = [
    [{ type: 'keyboard', layout: 'us', prefix: [{ text: '¥' }] }, /\/handoff\/targets\/0\/prefix\/0\/text: the us layout cannot type '¥' \(U\+00A5\)/],
    [{ type: 'keyboard', layout: 'jis', suffix: ['tab', { text: 'é' }] }, /\/handoff\/targets\/0\/suffix\/1\/text: the jis layout cannot type 'é' \(U\+00E9\)/],
    [{ type: 'keyboard', layout: 'jis', prefix: [{ text: '図書館' }] }, /the jis layout cannot type '図' \(U\+56F3\), '書' \(U\+66F8\), '館' \(U\+9928\)/],
    [{ type: 'keyboard', backend: 'uinput', layout: 'us', suffix: [{ text: '\u3000' }] }, /the us layout cannot type \(U\+3000\)/],
  ];
  for (const [target, expect] of table) {
    const p = configProblems(target);
    assert.is(p.length, 1, JSON.stringify(p));
    assert.match(p[0], expect);
  }
});

test('refuses at configuration time a layout that cannot type a character the service user IDs may hold', () => {
  // Today every ID character is typable on both layouts; a wider ID pattern (as a service might one
  // day allow) with a character no key types is refused before the agent starts, naming it.
  for (const layout of ['jis', 'us'] as const) assert.equal(keyboardPlanProblems({ layout, prefix: [], suffix: ['enter'] }, '/handoff/targets/0', SERVICE_USER_ID_PATTERN), []);
  const wider = '^[\\x20-\\x7e\\u00a5\\u3042]{1,64}$';
  const p = keyboardPlanProblems({ layout: 'jis', prefix: [], suffix: [] }, '/handoff/targets/2', wider);
  assert.is(p.length, 1);
  assert.match(p[0], "/handoff/targets/2/layout: the jis layout cannot type '¥' (U+00A5), 'あ' (U+3042), which service user IDs may contain");
});

test('reports a layout problem together with the other configuration problems', () => {
  const p = configProblems({ type: 'keyboard', layout: 'us', prefix: [{ text: '€' }] });
  assert.is(p.length, 1);
  const all = (() => {
    try {
      loadEdgeConfig({ overrides: { ...MINIMAL_CONFIG, edgeId: 'Bad Id', handoff: { targets: [{ type: 'keyboard', layout: 'us', prefix: [{ text: '€' }] }] } }, env: {} });
    } catch (e) {
      return (e as MyKeyError).details?.errors as string[];
    }
    return [];
  })();
  assert.ok(
    all.some((x) => x.startsWith('/edgeId')),
    all.join('\n'),
  );
  assert.ok(
    all.some((x) => x.includes("the us layout cannot type '€' (U+20AC)")),
    all.join('\n'),
  );
});

test('refuses a keyboard target with an unknown key, layout or backend, with the reason', () => {
  const p = configProblems({ type: 'keyboard', layout: 'dvorak', backend: 'bluetooth', suffix: ['return'], keyDelayMs: -1 });
  const text = p.join('\n');
  assert.match(text, '/handoff/targets/0/layout');
  assert.match(text, '/handoff/targets/0/backend');
  assert.match(text, '/handoff/targets/0/suffix/0');
  assert.match(text, '/handoff/targets/0/keyDelayMs');
});

test('fills the keyboard defaults: hid on /dev/hidg0, JIS, Enter after the ID', () => {
  const c = loadEdgeConfig({ overrides: { ...MINIMAL_CONFIG, handoff: { targets: [{ type: 'keyboard' }] } }, env: {} });
  assert.equal(c.handoff.targets[0], { type: 'keyboard', backend: 'hid', device: '', layout: 'jis', prefix: [], suffix: ['enter'], keyDelayMs: 10, outcomes: ['linked', 'degraded'] });
});

test('a device missing at start is not fatal: the target types once it appears', async () => {
  const device = join(dir, 'hidg-late');
  const { KeyboardTarget } = await import('../../../../edge/handoff/keyboard/keyboard-target.ts');
  const kb = new KeyboardTarget({ anyFile: true, device, layout: 'us', keyDelayMs: 0 });
  await kb.start(); // logs and carries on
  kb.deliver(touch('X1'));
  await kb.idle();
  assert.is(kb.stats().failed, 1);
  writeFileSync(device, ''); // the gadget is set up
  kb.deliver(touch('X2'));
  await kb.idle();
  await kb.stop();
  assert.is(decodeHidReports(readFileSync(device), 'us'), `X2${ENTER}`);
});

test('never writes key reports over a file that is not a character device (a mistyped path)', async () => {
  const file = join(dir, 'precious.txt');
  writeFileSync(file, 'keep me');
  const { KeyboardTarget } = await import('../../../../edge/handoff/keyboard/keyboard-target.ts');
  const kb = new KeyboardTarget({ device: file, layout: 'us', keyDelayMs: 0 });
  await kb.start();
  kb.deliver(touch('X1'));
  await kb.idle();
  await kb.stop();
  assert.is(kb.stats().failed, 1);
  assert.is(readFileSync(file, 'utf8'), 'keep me');
  assert.match(configProblems({ type: 'keyboard', device: 'dev/hidg0' }).join('\n'), '/handoff/targets/0/device');
});

test('a host that stops taking reports cannot hang the agent: the write gives up, the next touch types', async () => {
  // A FIFO whose buffer the test has filled stands in for a gadget whose host no longer polls: the
  // non-blocking write gets EAGAIN, as /dev/hidg0 does then.
  const fifo = join(dir, 'hidg-fifo');
  execFileSync('mkfifo', [fifo]);
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const filler = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  let filled = 0;
  try {
    for (;;) filled += writeSync(filler, Buffer.alloc(4096, 0xee));
  } catch (e) {
    assert.is((e as NodeJS.ErrnoException).code, 'EAGAIN');
  }
  closeSync(filler);
  const { KeyboardTarget } = await import('../../../../edge/handoff/keyboard/keyboard-target.ts');
  const kb = new KeyboardTarget({ anyFile: true, device: fifo, layout: 'jis', keyDelayMs: 0, writeTimeoutMs: 150 });
  await kb.start();
  const t0 = performance.now();
  kb.deliver(touch('STUCK-1'));
  assert.ok(performance.now() - t0 < 50, 'deliver() returns at once');
  await kb.idle();
  assert.is(kb.stats().failed, 1);
  assert.is(kb.stats().typed, 0);
  // The host polls again: the buffer drains, and the next touch is typed whole.
  const drained = Buffer.alloc(filled);
  let got = 0;
  while (got < filled) got += readSync(reader, drained, got, filled - got, null);
  kb.deliver(touch('OK-2'));
  await kb.idle();
  await kb.stop();
  const rest = Buffer.alloc(4096);
  const n = readSync(reader, rest, 0, rest.length, null);
  closeSync(reader);
  assert.is(decodeHidReports(rest.subarray(0, n), 'jis'), `OK-2${ENTER}`);
  assert.is(kb.stats().typed, 1);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
