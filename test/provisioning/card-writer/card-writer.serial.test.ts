// The municipal counter's MyKey write through the real stack: VirtualCard -> vpcd -> pcscd ->
// pcsclite -> the edge's ReaderManager (writer role) -> provisioning/card-writer.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { ReaderManager, readIdentity, silentReaderLog, type ReaderEvents } from '../../../edge/reader/index.ts';
import { createTestCa } from '../../../provisioning/test-ca/ca.ts';
import { makeCardFile, mykeyIdOf, type CardFile } from '../../../provisioning/virtual-card/card-file.ts';
import { VirtualCard, type CardFaults } from '../../../provisioning/virtual-card/card.ts';
import { VpcdSlot } from '../../../provisioning/virtual-card/vpcd-slot.ts';
import { main } from '../../../provisioning/card-writer/cli.ts';
import { writeMyKey } from '../../../provisioning/card-writer/write-mykey.ts';
import { requirePcscd, vpcdReaderName } from '../../helpers/pcsc.ts';
import { codeOf } from '../../helpers/assertions.ts';

await requirePcscd();

const READER = vpcdReaderName(0);
const KEY_HEX = '4d'.repeat(32);
const KEY = Uint8Array.from(Buffer.from(KEY_HEX, 'hex'));
const ca = await createTestCa({ label: 'card-writer' });
const blank = await makeCardFile({ ca, writeKeyHex: KEY_HEX }); // MyKey application, area not reserved
const noApp = await makeCardFile({ ca, withMyKeyApp: false, writeKeyHex: KEY_HEX });

interface Ctx {
  manager: ReaderManager;
  slot: VpcdSlot;
}
const test = suite<Ctx>('card writer', {} as Ctx);

function next<K extends keyof ReaderEvents>(m: ReaderManager, name: K, ms = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${name} within ${ms} ms`));
    }, ms);
    const off = m.on(name, (e) => {
      if ((e as { reader?: string }).reader !== READER) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

test.before(async (ctx) => {
  ctx.manager = new ReaderManager({ log: silentReaderLog, readerFilter: (n) => n === READER });
  ctx.slot = new VpcdSlot({ slot: 0, log: () => {} });
  const added = next(ctx.manager, 'reader-added');
  ctx.manager.start();
  await added;
});
test.after(async (ctx) => {
  await ctx.slot.remove().catch(() => {});
  await ctx.manager.stop();
});

/** Inserts a card made from `file` (kept up to date from the card's own changes), runs `fn`, removes it. */
async function withCard<T>(ctx: Ctx, file: CardFile, fn: (card: VirtualCard) => Promise<T>, faults?: CardFaults): Promise<T> {
  const card = new VirtualCard(file, { faults, onChange: (f) => Object.assign(file, f) });
  const present = next(ctx.manager, 'card-present');
  await ctx.slot.insert(card);
  await present;
  try {
    return await fn(card);
  } finally {
    if (ctx.manager.isCardPresent(READER)) {
      const gone = next(ctx.manager, 'card-removed');
      await ctx.slot.remove();
      await gone;
    } else await ctx.slot.remove();
  }
}

/** True when the card ever saw a SELECT by name other than the MyKey AID (JPKI or a My Number application). */
function selectedOtherApps(card: VirtualCard): string[] {
  return card.trace.filter((t) => t.apdu.startsWith('00a404') && !t.apdu.includes('f04d594b455901')).map((t) => t.apdu);
}

test('reserves the area, writes the MyKey ID, reads it back; a touch then yields kind mykey', async (ctx) => {
  const file = structuredClone(blank);
  await withCard(ctx, file, async (card) => {
    const s = await ctx.manager.connect(READER, { writer: true });
    try {
      const r = await writeMyKey(s, { mykeyId: 'K7M3QX9B', writeKey: KEY });
      assert.equal(r, { outcome: 'written', mykeyId: 'K7M3QX9B', reserved: true });
    } finally {
      await s.close();
    }
    // An ordinary (non-writer) session, as an edge's touch uses.
    const touch = await ctx.manager.connect(READER);
    try {
      assert.equal(await readIdentity(touch), { kind: 'mykey', mykeyId: 'K7M3QX9B' });
    } finally {
      await touch.close();
    }
    assert.equal(selectedOtherApps(card), [], 'only the MyKey application was selected');
    assert.ok(
      card.trace.some((t) => t.apdu.startsWith('00e00000020001')),
      'CREATE FILE reserved EF 0001',
    );
  });
  assert.is(mykeyIdOf(file), 'K7M3QX9B');
});

test('a wrong write key is refused and nothing is reserved or written', async (ctx) => {
  const file = structuredClone(blank);
  await withCard(ctx, file, async () => {
    const s = await ctx.manager.connect(READER, { writer: true });
    try {
      assert.is(await codeOf(writeMyKey(s, { mykeyId: 'K7M3QX9B', writeKey: new Uint8Array(32).fill(1) })), 'unauthorized');
    } finally {
      await s.close();
    }
  });
  assert.is(file.mykey.idArea.reserved, false);
  assert.is(mykeyIdOf(file), undefined);
});

test('writing the same ID again changes nothing; a different ID needs replace', async (ctx) => {
  const file = structuredClone(blank);
  await withCard(ctx, file, async () => {
    const s = await ctx.manager.connect(READER, { writer: true });
    try {
      assert.is((await writeMyKey(s, { mykeyId: 'K7M3QX9B', writeKey: KEY })).outcome, 'written');
      assert.equal(await writeMyKey(s, { mykeyId: 'K7M3QX9B', writeKey: KEY }), { outcome: 'unchanged', mykeyId: 'K7M3QX9B' });
      assert.is(await codeOf(writeMyKey(s, { mykeyId: 'ABCDEFGH', writeKey: KEY })), 'conflict');
      const r = await writeMyKey(s, { mykeyId: 'ABCDEFGH', writeKey: KEY, replace: true });
      assert.equal(r, { outcome: 'written', mykeyId: 'ABCDEFGH', reserved: false, previous: 'K7M3QX9B' });
    } finally {
      await s.close();
    }
  });
  assert.is(mykeyIdOf(file), 'ABCDEFGH');
});

test('a card without the MyKey application is refused with not_found, and a malformed ID never reaches the card', async (ctx) => {
  await withCard(ctx, structuredClone(noApp), async (card) => {
    const s = await ctx.manager.connect(READER, { writer: true });
    try {
      assert.is(await codeOf(writeMyKey(s, { mykeyId: 'K7M3QX9B', writeKey: KEY })), 'not_found');
      const before = card.trace.length;
      assert.is(await codeOf(writeMyKey(s, { mykeyId: 'K7M3QX9O', writeKey: KEY })), 'mykey_id_malformed');
      assert.is(card.trace.length, before);
    } finally {
      await s.close();
    }
  });
});

test('the writer role does not open the My Number applications: the guard refuses before the card sees it', async (ctx) => {
  await withCard(ctx, structuredClone(blank), async (card) => {
    const s = await ctx.manager.connect(READER, { writer: true });
    try {
      // 券面事項入力補助AP, by its full name and by a prefix.
      const full = Uint8Array.from(Buffer.from('00a4040c0ad3921000310001010408', 'hex'));
      const prefix = Uint8Array.from(Buffer.from('00a4040c04d3921000', 'hex'));
      assert.is(await codeOf(s.transmit(full)), 'apdu_refused');
      assert.is(await codeOf(s.transmit(prefix)), 'apdu_refused');
      // Write commands outside the MyKey application are refused too.
      assert.is(await codeOf(s.transmit(Uint8Array.from([0x00, 0x84, 0x00, 0x00, 0x08]))), 'apdu_refused');
    } finally {
      await s.close();
    }
    assert.is(card.trace.length, 0, 'nothing reached the card');
  });
});

test('a card taken away mid-write gives card_removed; the next try on the same card completes', async (ctx) => {
  const file = structuredClone(blank);
  // SELECT AP, SELECT EF (6A82), SELECT AP, GET CHALLENGE, EXTERNAL AUTHENTICATE, then gone before CREATE FILE.
  await withCard(
    ctx,
    file,
    async () => {
      const s = await ctx.manager.connect(READER, { writer: true, removalGraceMs: 1500 });
      try {
        assert.is(await codeOf(writeMyKey(s, { mykeyId: 'K7M3QX9B', writeKey: KEY })), 'card_removed');
      } finally {
        await s.close();
      }
    },
    { removeAfterApdus: 5 },
  );
  assert.is(mykeyIdOf(file), undefined);
  await withCard(ctx, file, async () => {
    const s = await ctx.manager.connect(READER, { writer: true });
    try {
      assert.is((await writeMyKey(s, { mykeyId: 'K7M3QX9B', writeKey: KEY })).outcome, 'written');
    } finally {
      await s.close();
    }
  });
  assert.is(mykeyIdOf(file), 'K7M3QX9B');
});

/** Runs the card writer as a clerk does: its own process, its own reader manager. */
function cli(args: string[], env: Record<string, string> = {}, stdin?: string): Promise<{ code: number; text: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'provisioning/card-writer/cli.ts', ...args], {
      env: { ...process.env, MYKEY_WRITE_KEY: '', ...env },
      stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (stdin !== undefined) child.stdin!.end(stdin);
    let text = '';
    child.stdout!.on('data', (d) => (text += d));
    child.stderr!.on('data', (d) => (text += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, text });
    });
  });
}

test('the command line writes through the reader and explains a wrong key; bad input is a usage error', async (ctx) => {
  const file = structuredClone(blank);
  await withCard(ctx, file, async () => {
    const wrong = await cli(['write-mykey', '--reader', READER, '--mykey-id', 'k7m3-qx9b', '--write-key', '-', '--wait', '5'], {}, `${'00'.repeat(32)}\n`);
    assert.is(wrong.code, 1, wrong.text);
    assert.match(wrong.text, /refused the write key/);
    const good = await cli(['write-mykey', '--reader', READER, '--mykey-id', 'k7m3-qx9b', '--wait', '5'], { MYKEY_WRITE_KEY: KEY_HEX });
    assert.is(good.code, 0, good.text);
    assert.match(good.text, /wrote MyKey ID K7M3-QX9B \(area reserved\); read back and verified/);
    const missing = await cli(['write-mykey', '--reader', 'No Such Reader', '--mykey-id', 'K7M3QX9B', '--wait', '2'], { MYKEY_WRITE_KEY: KEY_HEX });
    assert.is(missing.code, 1);
    assert.match(missing.text, /no reader named "No Such Reader"/);
  });
  assert.is(mykeyIdOf(file), 'K7M3QX9B');
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l), env: { MYKEY_WRITE_KEY: KEY_HEX } };
  // Usage errors are found before any reader is opened.
  assert.is(await main(['write-mykey', '--reader', READER, '--mykey-id', 'I1O0L'], io), 2);
  assert.match(lines.join('\n'), /is not a MyKey ID/);
  assert.is(await main(['write-mykey', '--reader', READER, '--mykey-id', 'K7M3QX9B'], { ...io, env: { MYKEY_WRITE_KEY: 'abc' } }), 2);
  assert.match(lines.join('\n'), /32 bytes in hex/);
});

test('the write key is never taken from the command line (ps shows arguments to every user)', async () => {
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l), env: {} };
  assert.is(await main(['write-mykey', '--reader', READER, '--mykey-id', 'K7M3QX9B', '--write-key', KEY_HEX], io), 2);
  assert.match(lines.join('\n'), /takes no key on the command line/);
  assert.not.ok(lines.join('\n').includes(KEY_HEX), 'the refusal does not echo the key');
});

test.run();
