// The hub's configuration schema. Every key has a default that runs the hub on one machine; env
// overrides are MYKEY_HUB_<SECTION>_<KEY> (for example MYKEY_HUB_HTTP_PORT=8080).
import { Type, type Static } from '@sinclair/typebox';
import { loadConfig } from '../shared/config.ts';

const RateLimit = Type.Object(
  {
    perSecond: Type.Number({ minimum: 0.01, default: 20, description: 'sustained requests per second per client (IPv4 address or IPv6 /64)' }),
    burst: Type.Integer({ minimum: 1, default: 100, description: 'requests allowed at once' }),
  },
  { default: {} },
);

export const HubConfigSchema = Type.Object(
  {
    dataDir: Type.String({ default: './data', description: 'where the database and fetched CRLs live' }),
    http: Type.Object(
      {
        host: Type.String({ default: '127.0.0.1', description: 'address of the HTTP API and console' }),
        port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: '0 picks a free port' }),
        maxBodyBytes: Type.Integer({ minimum: 1024, default: 65536, description: 'larger request bodies get 413 payload_too_large' }),
      },
      { default: {} },
    ),
    store: Type.Object(
      {
        path: Type.String({ default: '', description: 'SQLite file; empty means <dataDir>/hub.sqlite' }),
        synchronous: Type.Union([Type.Literal('NORMAL'), Type.Literal('FULL')], {
          default: 'NORMAL',
          description: 'NORMAL survives a crash or kill -9 of the hub; FULL also survives power loss',
        }),
        url: Type.String({
          default: '',
          pattern: '^$|^postgres(ql)?://',
          description: 'PostgreSQL instead of SQLite (postgres://user[:password]@host:port/database); empty keeps the SQLite file',
        }),
        poolSize: Type.Integer({ minimum: 1, maximum: 200, default: 10, description: 'PostgreSQL connections this hub keeps open (store.url only)' }),
      },
      { default: {} },
    ),
    replicas: Type.Object(
      {
        lockRetryMs: Type.Integer({
          minimum: 100,
          maximum: 60_000,
          default: 1000,
          description: 'hub replicas on PostgreSQL (store.url): how often a replica that does not publish the outbox tries to take over; a killed publisher is replaced within about this long',
        }),
      },
      { default: {} },
    ),
    jpki: Type.Object(
      {
        trustAnchors: Type.Array(Type.String(), { default: [], description: 'JPKI user-authentication CA certificates (PEM or DER files)' }),
        requireRevocationStatus: Type.Boolean({ default: true, description: 'refuse a proof when revocation status is unknown' }),
        challengeTtlSeconds: Type.Integer({ minimum: 10, maximum: 3600, default: 120, description: 'how long a challenge may be signed and used' }),
        challengesPerClient: Type.Integer({ minimum: 1, maximum: 100_000, default: 256, description: 'unused challenges one client (IPv4 address, IPv6 /64, edge) may hold at once' }),
        ocspUrl: Type.String({ default: '', description: 'OCSP responder; empty for none' }),
        ocspTimeoutMs: Type.Integer({ minimum: 100, default: 3000, description: 'after this the CRL answers alone' }),
        ocspMaxAgeSeconds: Type.Integer({ minimum: 60, default: 3600, description: 'an OCSP answer without nextUpdate is stale this long after its thisUpdate (no replay of old answers)' }),
        ocspCacheSeconds: Type.Integer({
          minimum: 0,
          maximum: 86400,
          default: 300,
          description: 'a verified OCSP answer is reused this long for the same certificate, never past its nextUpdate or the max age; 0 asks every time',
        }),
        crlSources: Type.Array(Type.String(), { default: [], description: 'CRL URLs fetched on a schedule' }),
        crlIntervalSeconds: Type.Integer({ minimum: 10, default: 3600, description: 'how often each CRL source is fetched (定期的な失効確認)' }),
        crlGraceHours: Type.Number({ minimum: 0, default: 24, description: 'how long a CRL is trusted after its nextUpdate' }),
        crlMaxBytes: Type.Integer({ minimum: 1024, default: 512 * 1024 * 1024, description: 'a larger CRL download is refused' }),
        linkageSigners: Type.Array(Type.String(), {
          default: [],
          description:
            'public keys (PEM SubjectPublicKeyInfo) or certificates (PEM or DER) whose Ed25519 or ECDSA P-256 key signs certificate linkage files (hub/pki/README.md); empty: no linkage file is imported',
        }),
        linkageMaxBytes: Type.Integer({
          minimum: 1024,
          maximum: 1024 * 1024 * 1024,
          default: 256 * 1024 * 1024,
          description: 'a larger certificate linkage file is refused whole (linkage_file_too_large)',
        }),
      },
      { default: {} },
    ),
    rateLimits: Type.Object({ challenge: RateLimit, register: RateLimit }, { default: {} }),
    broker: Type.Object(
      {
        host: Type.String({ default: '127.0.0.1', description: 'address of the MQTT over TLS listener for edges' }),
        port: Type.Integer({ minimum: 0, maximum: 65535, default: 8883, description: 'MQTT over TLS (device certificates); 0 picks a free port' }),
        plainPort: Type.Integer({ minimum: 0, maximum: 65535, default: 0, description: 'development only: a plain MQTT listener on 127.0.0.1; 0 is off' }),
        serverNames: Type.Array(Type.String(), { default: [], description: 'extra DNS names or addresses in the broker and device API certificate' }),
        logBatchVersion: Type.Integer({
          minimum: 2,
          maximum: 3,
          default: 3,
          description: 'form of the batched change-log messages of a burst: 3 compact (edges from v3 on), 2 while older edges remain (they drop a v3 batch and catch up over HTTP)',
        }),
        external: Type.Object(
          {
            urls: Type.Array(Type.String(), {
              default: [],
              description: 'MQTT URLs of the nodes of a clustered broker (RabbitMQ with its MQTT plugin); set: the hub publishes there instead of the embedded broker (hub/broker-cluster)',
            }),
            username: Type.String({ default: 'mykey_hub', description: 'the hub’s own user on the cluster (not an edge id: it holds an underscore)' }),
            password: Type.String({ default: '', description: 'the hub user’s password, checked by the hub’s broker auth backend (set MYKEY_HUB_BROKER_EXTERNAL_PASSWORD)' }),
            caFile: Type.String({ default: '', description: 'CA certificate (PEM) of the nodes for mqtts:// URLs; empty: the device CA' }),
            managementUrls: Type.Array(Type.String(), { default: [], description: 'management HTTP API of the nodes, used to cut off a revoked device at once' }),
            managementUser: Type.String({ default: '', description: 'management API user (a broker-internal administrator)' }),
            managementPassword: Type.String({ default: '', description: 'management API password (set MYKEY_HUB_BROKER_EXTERNAL_MANAGEMENT_PASSWORD)' }),
            outboxWindow: Type.Integer({
              minimum: 1,
              maximum: 256,
              default: 32,
              description: 'change-log messages per service topic the hub keeps in flight to the cluster (published, PUBACK not yet in); rows leave the outbox in order as they are confirmed',
            }),
            outboxWindowKb: Type.Integer({
              minimum: 1,
              maximum: 64 * 1024,
              default: 128,
              description:
                'KiB of change-log payload per service topic in flight to the cluster at once (one message always goes); every edge’s quorum queue writes each message, so a burst’s 64 KiB batches are kept to a few at a time',
            }),
          },
          { default: {} },
        ),
      },
      { default: {} },
    ),
    brokerAuth: Type.Object(
      {
        host: Type.String({ default: '127.0.0.1', description: 'address of the HTTP auth backend the clustered broker calls (only with broker.external.urls)' }),
        port: Type.Integer({ minimum: 0, maximum: 65535, default: 8091, description: 'port of the broker auth backend; 0 picks a free port' }),
      },
      { default: {} },
    ),
    devices: Type.Object(
      {
        httpsHost: Type.String({ default: '127.0.0.1', description: 'address of the device API (HTTPS, device certificates)' }),
        httpsPort: Type.Integer({ minimum: 0, maximum: 65535, default: 8443, description: 'device API port; 0 picks a free port' }),
        certValidityDays: Type.Integer({ minimum: 1, maximum: 3650, default: 365, description: 'validity of device certificates issued at enrollment' }),
        snapshotCacheMb: Type.Integer({
          minimum: 0,
          maximum: 65536,
          default: 128,
          description: 'memory kept for built snapshots (JSON and gzip), so edges asking at the same head seq share one build; 0 keeps none',
        }),
      },
      { default: {} },
    ),
    console: Type.Object(
      {
        secureCookies: Type.Union([Type.Literal('auto'), Type.Boolean()], { default: 'auto', description: "mark console cookies Secure: 'auto' when the request came over https" }),
        origins: Type.Array(Type.String(), { default: [], description: 'public origins (https://hub.example.jp) allowed to post console forms, when a proxy changes scheme or host' }),
        trustForwardedFor: Type.Boolean({ default: false, description: 'take the sign-in lockout address from X-Forwarded-For (only behind a proxy)' }),
        sessionIdleMinutes: Type.Integer({ minimum: 1, maximum: 1440, default: 30, description: 'a console session unused this long ends' }),
        sessionMaxHours: Type.Integer({ minimum: 1, maximum: 168, default: 12, description: 'a console session ends this long after sign-in' }),
      },
      { default: {} },
    ),
    enrollment: Type.Object(
      {
        tokenTtlHours: Type.Integer({ minimum: 1, maximum: 168, default: 24, description: 'default lifetime of a one-time enrollment token' }),
        brokerUrl: Type.String({ default: '', description: 'broker URL told to enrolled edges; empty: the bound mqtts address' }),
        brokerUrls: Type.Array(Type.String({ pattern: '^mqtts?://' }), {
          default: [],
          description: 'further broker URLs told to enrolled edges (the other nodes of a broker cluster), which they fail over to',
        }),
        hubUrl: Type.String({ default: '', description: 'device API URL told to enrolled edges; empty: the bound device API address' }),
        rateLimit: Type.Object(
          {
            perSecond: Type.Number({ minimum: 0.01, default: 1, description: 'sustained redemptions per second per client address' }),
            burst: Type.Integer({ minimum: 1, default: 10, description: 'redemptions allowed at once' }),
          },
          { default: {} },
        ),
      },
      { default: {} },
    ),
    releases: Type.Object(
      {
        publicKeys: Type.Array(Type.String({ minLength: 40, maxLength: 4096 }), {
          default: [],
          description:
            'Ed25519 release public keys (base64 SubjectPublicKeyInfo, as `provisioning/release/cli.ts keygen` prints); an uploaded release must be signed by one. The private key is never on the hub',
        }),
      },
      { default: {} },
    ),
    admin: Type.Object({ token: Type.String({ default: '', description: 'bearer token of the operator API; empty disables it (set MYKEY_HUB_ADMIN_TOKEN)' }) }, { default: {} }),
    metrics: Type.Object(
      {
        token: Type.String({
          default: '',
          description: 'bearer token of GET /metrics (Prometheus text) on the public listener, for the scraper only (not the operator token); empty: no /metrics',
        }),
      },
      { default: {} },
    ),
    webhooks: Type.Object(
      {
        timeoutMs: Type.Integer({ minimum: 100, default: 5000, description: 'per webhook delivery attempt' }),
        baseDelayMs: Type.Integer({ minimum: 10, default: 1000, description: 'first retry delay; doubles per attempt' }),
        maxDelayMs: Type.Integer({ minimum: 100, default: 3_600_000, description: 'longest wait between retries' }),
        allowPrivateTargets: Type.Boolean({
          default: false,
          description: 'allow webhook URLs on loopback, link-local, private, unspecified and multicast addresses (and plain http to them); checked when set and at every delivery',
        }),
        allowHttp: Type.Boolean({ default: false, description: 'development only: allow plain http webhook URLs to any address' }),
        retentionDays: Type.Number({ minimum: 0, default: 7, description: 'delivered webhook notices are deleted this long after delivery (0: at the next pruning); undelivered ones are kept' }),
      },
      { default: {} },
    ),
  },
  { additionalProperties: false },
);

export type HubConfig = Static<typeof HubConfigSchema>;

/** Loads the hub config from a file, the environment and overrides; all errors at once. */
export function loadHubConfig(opts: { file?: string; overrides?: Record<string, unknown>; env?: NodeJS.ProcessEnv } = {}): HubConfig {
  return loadConfig(HubConfigSchema, { ...opts, envPrefix: 'MYKEY_HUB' });
}
