// Which key, with or without Shift, types each character, on the two host keyboard layouts a counter
// PC in Japan is set to: JIS (106/109-key, the Japanese default) and US (101/104-key).
//
// A USB keyboard sends key positions, not characters: the host turns a position into a character with
// its OWN layout setting. So the layout here must be the one the business PC is configured with.
// Keys are named by their HID usage (USB HID Usage Tables 1.4, section 10 "Keyboard/Keypad Page 0x07");
// the uinput backend maps the same usages to Linux KEY_* codes (linuxKeyOf below), as the kernel's
// own hid-input does for a real USB keyboard.

/** A host keyboard layout. */
export const LAYOUTS = ['jis', 'us'] as const;
export type Layout = (typeof LAYOUTS)[number];

/** One key press: a HID usage on page 0x07, with or without Shift. */
export interface Stroke {
  usage: number;
  shift: boolean;
}

/** Named keys a prefix or suffix may press (the same position on both layouts). */
export const NAMED_KEYS = { enter: 0x28, escape: 0x29, tab: 0x2b } as const;
export type NamedKey = keyof typeof NAMED_KEYS;

// HUT 1.4 section 10: a..z are 0x04..0x1D, 1..9 0x1E..0x26, 0 0x27, Space 0x2C.
const LETTER_A = 0x04;
const DIGIT_1 = 0x1e;
const DIGIT_0 = 0x27;
const SPACE = 0x2c;

/** The same on every layout: letters (Shift for capitals), digits and Space. */
function common(): Map<string, Stroke> {
  const m = new Map<string, Stroke>();
  for (let i = 0; i < 26; i++) {
    m.set(String.fromCharCode(0x61 + i), { usage: LETTER_A + i, shift: false });
    m.set(String.fromCharCode(0x41 + i), { usage: LETTER_A + i, shift: true });
  }
  for (let d = 1; d <= 9; d++) m.set(String(d), { usage: DIGIT_1 + d - 1, shift: false });
  m.set('0', { usage: DIGIT_0, shift: false });
  m.set(' ', { usage: SPACE, shift: false });
  return m;
}

/** [usage, unshifted, shifted] rows; '' where the key types nothing printable. */
type Row = readonly [number, string, string];

// US (ANSI) layout: the HUT names of page 0x07 are the US legends.
const US_ROWS: readonly Row[] = [
  [0x1e, '1', '!'],
  [0x1f, '2', '@'],
  [0x20, '3', '#'],
  [0x21, '4', '$'],
  [0x22, '5', '%'],
  [0x23, '6', '^'],
  [0x24, '7', '&'],
  [0x25, '8', '*'],
  [0x26, '9', '('],
  [0x27, '0', ')'],
  [0x2d, '-', '_'],
  [0x2e, '=', '+'],
  [0x2f, '[', '{'],
  [0x30, ']', '}'],
  [0x31, '\\', '|'],
  [0x33, ';', ':'],
  [0x34, "'", '"'],
  [0x35, '`', '~'],
  [0x36, ',', '<'],
  [0x37, '.', '>'],
  [0x38, '/', '?'],
];

// JIS X 6002 layout (106/109-key) as Windows' kbd106 and X11's `jp` map it. 0x35 is 半角/全角 (an
// input-method toggle): never pressed. 0x32 (HUT "Non-US # and ~") is the む key, `]`/`}` on JIS.
// `\` is typed with the ろ key (International1, 0x87): a backslash on Windows (kbd106: VK_OEM_102)
// and X11 (jp: <AB11> backslash underscore); the ¥ key (International3, 0x89) is only used shifted,
// for `|` (<AE13> backslash bar). A Mac set to JIS maps these keys differently and is not supported.
const JIS_ROWS: readonly Row[] = [
  [0x1e, '1', '!'],
  [0x1f, '2', '"'],
  [0x20, '3', '#'],
  [0x21, '4', '$'],
  [0x22, '5', '%'],
  [0x23, '6', '&'],
  [0x24, '7', "'"],
  [0x25, '8', '('],
  [0x26, '9', ')'],
  [0x27, '0', ''],
  [0x2d, '-', '='],
  [0x2e, '^', '~'],
  [0x2f, '@', '`'],
  [0x30, '[', '{'],
  [0x32, ']', '}'],
  [0x33, ';', '+'],
  [0x34, ':', '*'],
  [0x36, ',', '<'],
  [0x37, '.', '>'],
  [0x38, '/', '?'],
  [0x87, '\\', '_'],
  [0x89, '', '|'],
];

function build(rows: readonly Row[]): ReadonlyMap<string, Stroke> {
  const m = common();
  for (const [usage, plain, shifted] of rows) {
    if (plain && !m.has(plain)) m.set(plain, { usage, shift: false });
    if (shifted && !m.has(shifted)) m.set(shifted, { usage, shift: true });
  }
  return m;
}

const TABLES: Record<Layout, ReadonlyMap<string, Stroke>> = { jis: build(JIS_ROWS), us: build(US_ROWS) };

/** The stroke that types `ch` on `layout`, or undefined when that layout has no key for it. */
export function strokeOf(layout: Layout, ch: string): Stroke | undefined {
  return TABLES[layout].get(ch);
}

/** Every character a layout can type. */
export function typableCharacters(layout: Layout): string[] {
  return [...TABLES[layout].keys()];
}

/** The characters of `chars` that `layout` cannot type, each once, in order of first appearance. */
export function untypable(layout: Layout, chars: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const ch of chars) if (!TABLES[layout].has(ch)) out.add(ch);
  return [...out];
}

/** Usage of Left Shift (HUT 0x07: 0xE1); in a boot report it is modifier bit 1. */
export const LEFT_SHIFT_USAGE = 0xe1;

// Linux input-event-codes.h KEY_* for the HID usages above, as drivers/hid/hid-input.c
// (hid_keyboard[]) maps a USB keyboard's usages: the host then applies its layout the same way.
const LINUX_KEYS: ReadonlyMap<number, number> = new Map<number, number>([
  // a..z
  [0x04, 30],
  [0x05, 48],
  [0x06, 46],
  [0x07, 32],
  [0x08, 18],
  [0x09, 33],
  [0x0a, 34],
  [0x0b, 35],
  [0x0c, 23],
  [0x0d, 36],
  [0x0e, 37],
  [0x0f, 38],
  [0x10, 50],
  [0x11, 49],
  [0x12, 24],
  [0x13, 25],
  [0x14, 16],
  [0x15, 19],
  [0x16, 31],
  [0x17, 20],
  [0x18, 22],
  [0x19, 47],
  [0x1a, 17],
  [0x1b, 45],
  [0x1c, 21],
  [0x1d, 44],
  // 1..9, 0 (KEY_1 = 2 .. KEY_0 = 11)
  [0x1e, 2],
  [0x1f, 3],
  [0x20, 4],
  [0x21, 5],
  [0x22, 6],
  [0x23, 7],
  [0x24, 8],
  [0x25, 9],
  [0x26, 10],
  [0x27, 11],
  // Enter, Escape, Tab, Space
  [0x28, 28],
  [0x29, 1],
  [0x2b, 15],
  [0x2c, 57],
  // - = [ ] \ (Non-US # is KEY_BACKSLASH too) ; ' ` , . /
  [0x2d, 12],
  [0x2e, 13],
  [0x2f, 26],
  [0x30, 27],
  [0x31, 43],
  [0x32, 43],
  [0x33, 39],
  [0x34, 40],
  [0x35, 41],
  [0x36, 51],
  [0x37, 52],
  [0x38, 53],
  // International1 (ろ) = KEY_RO, International3 (¥) = KEY_YEN
  [0x87, 89],
  [0x89, 124],
  // Left Shift
  [LEFT_SHIFT_USAGE, 42],
]);

/** The Linux KEY_* code of a HID usage this module presses. */
export function linuxKeyOf(usage: number): number {
  const k = LINUX_KEYS.get(usage);
  if (k === undefined) throw new RangeError(`no Linux key code for HID usage 0x${usage.toString(16)}`);
  return k;
}

/** Every Linux key code the strokes of any layout may press (what a uinput device must declare). */
export function allLinuxKeys(): number[] {
  return [...new Set(LINUX_KEYS.values())].sort((a, b) => a - b);
}
