// The edge agent's configuration schema. Validated once at start-up with every problem reported at
// once (shared/config.ts); env overrides are MYKEY_EDGE_<SECTION>_<KEY> (e.g. MYKEY_EDGE_KIOSK_PORT).
// Keys without a default (edge id, service, hub and broker URLs, device certificate) must be given.
import { readFileSync } from 'node:fs';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { loadConfig } from '../shared/config.ts';
import { MyKeyError } from '../shared/errors.ts';
import { EDGE_ID_PATTERN, SERVICE_ID_PATTERN, SERVICE_USER_ID_PATTERN } from '../shared/ids.ts';
import '../shared/messages.ts'; // registers the `uri` string format
import { LAYOUTS, NAMED_KEYS } from './handoff/keyboard/layouts.ts';
import { keyboardPlanProblems } from './handoff/keyboard/plan.ts';
import { OUTCOMES } from './handoff/outcomes.ts';

const Outcome = Type.Union(OUTCOMES.map((o) => Type.Literal(o)));

const WebhookTarget = Type.Object(
  {
    type: Type.Literal('webhook'),
    url: Type.String({ format: 'uri', pattern: '^https?://', description: "the business system's endpoint; receives one JSON POST per touch" }),
    timeoutMs: Type.Integer({ minimum: 50, maximum: 60_000, default: 3000, description: 'per attempt' }),
    retries: Type.Integer({ minimum: 0, maximum: 20, default: 3, description: 'attempts after the first' }),
    backoffMs: Type.Integer({ minimum: 10, default: 200, description: 'first retry delay; doubles per retry, with jitter' }),
    maxQueue: Type.Integer({ minimum: 1, maximum: 10_000, default: 100, description: 'pending deliveries held in memory; the oldest is dropped beyond' }),
    secret: Type.String({ default: '', description: 'when set, each POST is signed: webhook-id, webhook-timestamp, webhook-signature (shared/webhook-signature.ts, as the hub signs)' }),
    outcomes: Type.Array(Outcome, { default: ['linked', 'degraded'], description: 'which touch outcomes are sent' }),
    includeMyKeyId: Type.Boolean({ default: false, description: "also send the card's MyKey ID (privacy: off unless the target needs it)" }),
  },
  { additionalProperties: false },
);

const StdoutTarget = Type.Object(
  {
    type: Type.Literal('stdout'),
    outcomes: Type.Array(Outcome, { default: [...OUTCOMES] }),
    includeMyKeyId: Type.Boolean({ default: false }),
  },
  { additionalProperties: false, description: 'opt-in: one JSON line per touch on standard output (under systemd: the journal, a persistent per-touch record)' },
);

const SocketTarget = Type.Object(
  {
    type: Type.Literal('socket'),
    path: Type.String({ minLength: 1, maxLength: 100, description: 'Unix socket the edge listens on; every connected program gets JSON lines' }),
    outcomes: Type.Array(Outcome, { default: [...OUTCOMES] }),
    includeMyKeyId: Type.Boolean({ default: false }),
  },
  { additionalProperties: false },
);

// Hand-off as a USB keyboard (edge/handoff/keyboard): types the service user ID like a barcode scanner.
const KeyboardKey = Type.Union([
  ...Object.keys(NAMED_KEYS).map((k) => Type.Literal(k as keyof typeof NAMED_KEYS)),
  Type.Object({ text: Type.String({ minLength: 1, maxLength: 32 }) }, { additionalProperties: false }),
]);
const KeyboardTarget = Type.Object(
  {
    type: Type.Literal('keyboard'),
    backend: Type.Union([Type.Literal('hid'), Type.Literal('uinput')], {
      default: 'hid',
      description: 'hid: a USB HID gadget plugged into the counter PC (provisioning/hid-gadget); uinput: a virtual keyboard on this machine',
    }),
    device: Type.String({ default: '', maxLength: 200, pattern: '^(/.*)?$', description: 'an absolute path to a character device; empty: /dev/hidg0 (hid) or /dev/uinput (uinput)' }),
    layout: Type.Union(
      LAYOUTS.map((l) => Type.Literal(l)),
      { default: 'jis', description: "the counter PC's keyboard layout setting: jis (106/109-key) or us" },
    ),
    prefix: Type.Array(KeyboardKey, { default: [], maxItems: 8, description: 'keys typed before the ID: enter, tab, escape or { "text": "..." }' }),
    suffix: Type.Array(KeyboardKey, { default: ['enter'], maxItems: 8, description: 'keys typed after the ID; [] for none' }),
    keyDelayMs: Type.Integer({ minimum: 0, maximum: 1000, default: 10, description: 'pause after each key-down and key-up' }),
    outcomes: Type.Array(Type.Union([Type.Literal('linked'), Type.Literal('degraded')]), {
      default: ['linked', 'degraded'],
      description: 'which touch outcomes are typed (only those that carry a service user ID)',
    }),
  },
  { additionalProperties: false },
);

/** One hand-off target from the config. */
export const HandoffTargetConfig = Type.Union([WebhookTarget, StdoutTarget, SocketTarget, KeyboardTarget]);
export type KeyboardTargetConfig = Static<typeof KeyboardTarget>;
export type HandoffTargetConfig = Static<typeof HandoffTargetConfig>;

export const EdgeConfigSchema = Type.Object(
  {
    edgeId: Type.String({ pattern: EDGE_ID_PATTERN, description: "this reader's id, as in its device certificate" }),
    serviceId: Type.String({ pattern: SERVICE_ID_PATTERN, description: 'the service this edge serves, as in its device certificate' }),
    storeId: Type.String({ default: '', maxLength: 64, description: 'the store or counter, sent to hand-off targets that want it' }),
    hub: Type.Object({ url: Type.String({ format: 'uri', pattern: '^https?://', description: 'the hub device API (https with the device certificate)' }) }, { additionalProperties: false }),
    broker: Type.Object(
      {
        url: Type.String({ format: 'uri', pattern: '^mqtts?://', description: "the hub's MQTT broker" }),
        urls: Type.Array(Type.String({ format: 'uri', pattern: '^mqtts?://' }), {
          default: [],
          maxItems: 16,
          description: 'the nodes of a clustered broker: url is tried first, then these in turn on each reconnect (failover)',
        }),
      },
      { additionalProperties: false },
    ),
    tls: Type.Object(
      {
        cert: Type.String({ minLength: 1, description: 'device certificate (PEM)' }),
        key: Type.String({ minLength: 1, description: 'device private key (PEM)' }),
        ca: Type.String({ minLength: 1, description: "the hub's CA certificate (PEM)" }),
      },
      { additionalProperties: false },
    ),
    stateDir: Type.String({ default: './edge-state', description: 'cache checkpoint, journal and counters (lowdb)' }),
    readers: Type.Object(
      {
        include: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'reader name patterns (* wildcard, case-insensitive); empty: every reader' }),
        // A reader that heals itself (edge/reader/reader-health.ts): known USB readers that hang are reset.
        heal: Type.Object(
          {
            enabled: Type.Boolean({ default: true, description: 'reset a known USB reader that is on the bus but missing from PC/SC, or stops answering' }),
            pollSeconds: Type.Integer({ minimum: 1, maximum: 600, default: 5, description: 'how often the USB bus is looked at' }),
            missingSeconds: Type.Integer({ minimum: 1, maximum: 3600, default: 10, description: 'how long a reader may be on the USB bus but not in PC/SC before it is reset' }),
            failuresBeforeReset: Type.Integer({ minimum: 1, maximum: 100, default: 3, description: 'reader failures in a row (timeouts, unresponsive card, mute) before it is reset' }),
            maxResets: Type.Integer({ minimum: 0, maximum: 20, default: 3, description: 'resets in a row before the page asks the shop to unplug and replug the reader' }),
            backoffSeconds: Type.Integer({ minimum: 1, maximum: 3600, default: 5, description: 'wait after a reset before the next; doubles each time' }),
            technicianAfter: Type.Integer({ minimum: 1, maximum: 100, default: 6, description: 'failed resets since the reader last worked before the page says "call the technician"' }),
            report: Type.Boolean({ default: true, description: 'carry the reader health in the status (`reader`); false only for a hub older than that field, which refuses statuses carrying it' }),
            sysRoot: Type.String({ default: '/sys', pattern: '^/', description: 'where sysfs is (tests)' }),
            devRoot: Type.String({ default: '/dev', pattern: '^/', description: 'where /dev is (tests)' }),
          },
          { default: {}, additionalProperties: false },
        ),
      },
      { default: {}, additionalProperties: false },
    ),
    handoff: Type.Object(
      {
        // No usage history (MISSION.md): the default keeps no per-touch record anywhere persistent. The
        // kiosk page (in memory) is added by the agent; stdout under systemd is the journal, so a
        // JSON-lines stdout target is opt-in.
        targets: Type.Array(HandoffTargetConfig, {
          default: [],
          maxItems: 16,
          description:
            'where touch results go, besides the kiosk page; several at once. Default none. A stdout target writes one JSON line per touch, which under systemd lands in the journal: opt-in only',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    staleness: Type.Object(
      {
        maxSeconds: Type.Integer({ minimum: 60, default: 86_400, description: 'longest time without contact with the hub before the edge is stale' }),
        policy: Type.Union([Type.Literal('refuse'), Type.Literal('answer-with-warning')], {
          default: 'refuse',
          description: 'when stale (or the clock is unsure): refuse to answer, or answer and say the answer may be out of date',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    kiosk: Type.Object(
      {
        enabled: Type.Boolean({ default: true }),
        host: Type.String({ default: '127.0.0.1', description: 'the counter tablet page; loopback by default. Any other address requires the token' }),
        token: Type.String({
          default: '',
          maxLength: 200,
          description: 'token every browser must present (once in the URL, then a cookie); empty and host not loopback: one is generated and printed once at start',
        }),
        allowedHosts: Type.Array(Type.String({ minLength: 1, maxLength: 253 }), {
          default: [],
          maxItems: 16,
          description: 'more host names the tablet uses to reach the page (the Host header is checked: DNS rebinding guard)',
        }),
        port: Type.Integer({ minimum: 0, maximum: 65535, default: 8088, description: '0 picks a free port' }),
        language: Type.Union([Type.Literal('ja'), Type.Literal('en')], { default: 'ja', description: 'the page language until someone switches it' }),
        resultSeconds: Type.Integer({ minimum: 1, maximum: 600, default: 8, description: 'how long a result stays on the page before "touch your card" returns' }),
        pinSeconds: Type.Integer({
          minimum: 5,
          maximum: 300,
          default: 30,
          description: 'PIN-checked touch (#14): how long the PIN pad waits for the holder before the touch is refused (pin_touch_timeout)',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    registration: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: 'counter registration (サービスID登録) from the kiosk page or the socket' }),
        requireHolderProof: Type.Boolean({ default: false, description: 'ask the holder for the PIN and send a card signature with every link' }),
        socketPath: Type.String({ default: '', maxLength: 100, description: 'Unix socket taking registration commands (JSON lines); empty: none' }),
        stepSeconds: Type.Integer({ minimum: 10, maximum: 600, default: 120, description: 'a registration step not finished in this time is abandoned' }),
      },
      { default: {}, additionalProperties: false },
    ),
    metrics: Type.Object(
      {
        port: Type.Integer({
          minimum: 0,
          maximum: 65535,
          default: 0,
          description: 'Prometheus text at http://127.0.0.1:<port>/metrics (loopback only: touches by outcome in aggregate, contact age, cache size); 0: off',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    updates: Type.Object(
      {
        releaseKey: Type.String({
          default: '',
          maxLength: 4096,
          description: 'the Ed25519 release public key (base64 SubjectPublicKeyInfo) releases must be signed with; empty: updates off. Written by enroll',
        }),
        dir: Type.String({ default: '', maxLength: 200, description: 'the install folder holding releases/ and current (edge/update/layout.ts); the launcher boot.js sets it; empty: updates off' }),
        checkSeconds: Type.Integer({ minimum: 5, maximum: 86_400, default: 900, description: 'how often the hub is asked for a release' }),
        selfTestSeconds: Type.Integer({ minimum: 5, maximum: 3600, default: 120, description: 'a new version not through its self-test (online, reader up, a lookup) in this time is rolled back' }),
      },
      { default: {}, additionalProperties: false },
    ),
    logLevel: Type.Union([Type.Literal('debug'), Type.Literal('info'), Type.Literal('warn'), Type.Literal('error')], { default: 'info' }),
  },
  { additionalProperties: false },
);

export type EdgeConfig = Static<typeof EdgeConfigSchema>;

/** Loads the edge config from a file, the environment (MYKEY_EDGE_*) and overrides; all errors at once. */
/** Every broker URL of the config, `broker.url` first, without repeats. */
export function brokerUrls(config: Pick<EdgeConfig, 'broker'>): string[] {
  return [...new Set([config.broker.url, ...(config.broker.urls ?? [])])];
}

/**
 * mqtt.js `servers` for a list of broker URLs: it takes the next one at each connect, so a
 * reconnect after a node died goes to another node. Undefined for a single URL (plain connect).
 */
export function brokerServers(urls: readonly string[]): Array<{ host: string; port: number; protocol: 'mqtt' | 'mqtts' }> | undefined {
  if (urls.length < 2) return undefined;
  return urls.map((u) => {
    const url = new URL(u);
    const protocol = url.protocol === 'mqtt:' ? 'mqtt' : 'mqtts';
    return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || (protocol === 'mqtts' ? 8883 : 1883)), protocol };
  });
}

export function loadEdgeConfig(opts: { file?: string; overrides?: Record<string, unknown>; env?: NodeJS.ProcessEnv } = {}): EdgeConfig {
  let config: EdgeConfig;
  try {
    config = loadConfig(EdgeConfigSchema, { ...opts, envPrefix: 'MYKEY_EDGE' });
  } catch (e) {
    throw explainTargets(e, opts);
  }
  checkKeyboardTargets(config);
  return config;
}

/** A keyboard target whose layout cannot type a character a service user ID may hold is refused now, not at the counter. */
function checkKeyboardTargets(config: EdgeConfig): void {
  const errors = config.handoff.targets.flatMap((t, i) => (t.type === 'keyboard' ? keyboardPlanProblems(t, `/handoff/targets/${i}`, SERVICE_USER_ID_PATTERN) : []));
  if (errors.length) throw new MyKeyError('config_invalid', `invalid configuration:\n  - ${errors.join('\n  - ')}`, { details: { errors } });
}

const TARGET_SCHEMAS: Record<string, TSchema> = { webhook: WebhookTarget, stdout: StdoutTarget, socket: SocketTarget, keyboard: KeyboardTarget };

/**
 * A hand-off target that matches no member of the union only gets "Expected union value"; this adds
 * what is wrong with it against the schema its `type` names.
 */
function explainTargets(e: unknown, opts: { file?: string; overrides?: Record<string, unknown> }): unknown {
  if (!(e instanceof MyKeyError) || e.code !== 'config_invalid') return e;
  const errors = [...((e.details?.errors as string[] | undefined) ?? [])];
  const targetsOf = (v: unknown): unknown => (v as { handoff?: { targets?: unknown } } | undefined)?.handoff?.targets;
  let targets = targetsOf(opts.overrides);
  if (targets === undefined && opts.file) {
    try {
      targets = targetsOf(JSON.parse(readFileSync(opts.file, 'utf8')));
    } catch {
      // the file's own problem is already listed
    }
  }
  if (!Array.isArray(targets)) return e;
  targets.forEach((t, i) => {
    const type = (t as { type?: unknown } | null)?.type;
    const schema = typeof type === 'string' ? TARGET_SCHEMAS[type] : undefined;
    if (!schema) {
      errors.push(`/handoff/targets/${i}/type: one of ${Object.keys(TARGET_SCHEMAS).join(', ')}`);
      return;
    }
    const filled = Value.Default(schema, Value.Clone(t));
    const before = errors.length;
    for (const err of Value.Errors(schema, filled)) errors.push(`/handoff/targets/${i}${err.path}: ${err.message}`);
    // a well-formed keyboard target's layout check, so that it is reported with the other problems
    if (type === 'keyboard' && errors.length === before) errors.push(...keyboardPlanProblems(filled as KeyboardTargetConfig, `/handoff/targets/${i}`, SERVICE_USER_ID_PATTERN));
  });
  return new MyKeyError('config_invalid', `invalid configuration:\n  - ${errors.join('\n  - ')}`, { details: { errors } });
}

/** A reader filter from name patterns (`*` matches anything; case-insensitive); no patterns: all. */
export function readerFilter(patterns: readonly string[]): (name: string) => boolean {
  if (patterns.length === 0) return () => true;
  const res = patterns.map(
    (p) =>
      new RegExp(
        `^${p
          .split('*')
          .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
          .join('.*')}$`,
        'i',
      ),
  );
  return (name) => res.some((re) => re.test(name));
}
