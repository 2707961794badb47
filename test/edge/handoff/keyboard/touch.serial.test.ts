// A card touch typed as a keyboard, through the real stack: the virtual card in vpcd slot 0, pcscd, the
// reader layer, the touch desk and lookup over a cache holding the card's keyed identity, and the
// hand-off built from an edge config with two keyboard targets (a HID gadget on a JIS PC, a uinput
// keyboard on a US desktop), each writing to a file standing in for its device.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCardFile, type CardFile } from '../../../../provisioning/virtual-card/card-file.ts';
import { VirtualCard } from '../../../../provisioning/virtual-card/card.ts';
import { createTestCa } from '../../../../provisioning/test-ca/ca.ts';
import { keyedId } from '../../../../shared/sync.ts';
import { loadEdgeConfig } from '../../../../edge/config.ts';
import { EdgeCache, KeyIndex } from '../../../../edge/cache/index.ts';
import { Handoff, targetsFromConfig } from '../../../../edge/handoff/handoff.ts';
import type { KeyboardTarget } from '../../../../edge/handoff/keyboard/keyboard-target.ts';
import { inputEventSize } from '../../../../edge/handoff/keyboard/input-event.ts';
import { TouchDesk, TouchLookup } from '../../../../edge/lookup/index.ts';
import { requirePcscd, vpcdReaderName, startTouchDesk, touchReaderParts, type TouchDeskParts } from '../../../helpers/pcsc.ts';
import { decodeHidReports, decodeInputEvents, ENTER, MINIMAL_CONFIG, TAB } from './decoders.ts';

const READER = vpcdReaderName(0);
const SECRET = new Uint8Array(32).fill(5);
/** A library card number with the characters that sit on different keys on JIS and US keyboards. */
const CARD_NUMBER = `L@"_:(*)~^'=+\\|{}[]\`&-9z`;

interface Ctx extends TouchDeskParts {
  dir: string;
  card: CardFile;
  hidg: string;
  uinput: string;
  ioctls: number[];
  handoff: Handoff;
}
const test = suite<Ctx>('a touch typed as a keyboard', {} as Ctx);

test.before(async (ctx) => {
  await requirePcscd();
  ctx.dir = mkdtempSync(join(tmpdir(), 'mykey-kb-touch-'));
  const ca = await createTestCa({ label: 'keyboard-touch' });
  ctx.card = await makeCardFile({ ca, mykeyId: 'B7NQ4KXW' });
  const index = new KeyIndex();
  index.set(keyedId(SECRET, 'mykey', 'B7NQ4KXW'), CARD_NUMBER);
  const cache = new EdgeCache({ secret: SECRET });
  cache.replace(index, 1);

  ctx.hidg = join(ctx.dir, 'hidg0');
  ctx.uinput = join(ctx.dir, 'uinput');
  writeFileSync(ctx.hidg, '');
  writeFileSync(ctx.uinput, '');
  const config = loadEdgeConfig({
    env: {},
    overrides: {
      ...MINIMAL_CONFIG,
      handoff: {
        targets: [
          { type: 'keyboard', backend: 'hid', device: ctx.hidg, layout: 'jis', suffix: ['enter'], keyDelayMs: 1 },
          { type: 'keyboard', backend: 'uinput', device: ctx.uinput, layout: 'us', prefix: ['tab'], suffix: ['enter'], keyDelayMs: 1 },
        ],
      },
    },
  });
  ctx.ioctls = [];
  ctx.handoff = new Handoff(targetsFromConfig(config.handoff.targets, { keyboard: { anyFile: true, settleMs: 0, ioctl: (_fd, request) => void ctx.ioctls.push(request) } }));
  await ctx.handoff.start();
  const lookup = new TouchLookup({
    cache,
    secret: () => SECRET,
    health: () => ({ state: 'ok', lastContactMs: Date.now() }),
    policy: { maxStalenessMs: 3_600_000, whenStale: 'refuse' },
    handoff: ctx.handoff,
    context: { serviceId: 'library', edgeId: 'lib-counter-1' },
  });
  Object.assign(ctx, touchReaderParts());
  ctx.desk = new TouchDesk({ source: ctx.pipeline, lookup });
  await startTouchDesk(ctx, READER);
});

test.after(async (ctx) => {
  await ctx.slot?.remove().catch(() => {});
  ctx.desk?.stop();
  await ctx.pipeline?.stop();
  await ctx.manager?.stop();
  await ctx.handoff?.stop();
  if (ctx.dir) rmSync(ctx.dir, { recursive: true, force: true });
});

test('a touch of the card types its library card number on both keyboards, in their layouts', async (ctx) => {
  const [hid, uinput] = ctx.handoff.targets as KeyboardTarget[];
  await ctx.slot.insert(new VirtualCard(ctx.card));
  const end = Date.now() + 10_000;
  while (hid.stats().typed + uinput.stats().typed < 2) {
    if (Date.now() > end) throw new Error(`timed out: ${JSON.stringify(ctx.handoff.stats())}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const gone = new Promise<void>((r) => ctx.manager.on('card-removed', (e) => e.reader === READER && r()));
  await ctx.slot.remove();
  await gone;
  assert.is(decodeHidReports(readFileSync(ctx.hidg), 'jis'), CARD_NUMBER + ENTER);
  assert.is(decodeInputEvents(readFileSync(ctx.uinput), 'us', inputEventSize()), TAB + CARD_NUMBER + ENTER);
  assert.ok(ctx.ioctls.length > 3, 'the uinput device was created with its ioctls');
});

test.run();
