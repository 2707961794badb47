// The hub's embedded MQTT broker: aedes (MQTT 3.1.1) behind a TLS listener that demands a device
// certificate from the hub's device CA, with hooks that deny by default (hooks/), edge status
// recorded in the device repo, and a way to drop a revoked edge at once.
//
// Sessions and in-flight QoS 1 messages live in aedes' in-memory persistence: a hub restart loses
// them. That is by design: every change-log entry is stored before it is published, and an edge
// that reconnects compares its applied sequence with the log and catches up (missing entries, or a
// snapshot), so nothing depends on the broker remembering a session across restarts. For the same
// reason no change-log message is kept for a session at all (session-store.ts): only commands are.
//
// An optional plain listener exists for development; it binds only a loopback address and trusts
// the client id of an enrolled device (no certificate). It is off unless configured.
import { Aedes, type Client } from 'aedes';
import { createServer as createNetServer, isIP, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { constants as cryptoConstants, X509Certificate } from 'node:crypto';
import { MyKeyError, type ErrorCode } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { MAX_SYNC_PAYLOAD_BYTES } from '../../shared/sync.ts';
import { parseTopic } from '../../shared/topics.ts';
import type { DeviceRepo } from '../store/device-repo.ts';
import { createBrokerContext } from './context.ts';
import { authenticateHook } from './hooks/authenticate.ts';
import { authorizeForwardHook } from './hooks/authorize-forward.ts';
import { authorizePublishHook } from './hooks/authorize-publish.ts';
import { authorizeSubscribeHook } from './hooks/authorize-subscribe.ts';
import { preConnectHook } from './hooks/pre-connect.ts';
import { installEncodedPublishWrites } from './encoded-publish.ts';
import { guardPacketSize } from './packet-guard.ts';
import { publishedHook } from './hooks/published.ts';
import { createSessionStore } from './session-store.ts';

export interface BrokerOptions {
  /** The device CA certificate (PEM): the only issuer whose client certificates are accepted. */
  /** The device CA; `trustedPems` adds the retired CAs still trusted after a rotation (hub/pki/device-ca.ts). */
  deviceCa: { certPem: string; trustedPems?: () => string[] };
  devices: DeviceRepo;
  log: Logger;
  tls: { host: string; port: number; serverCert: string; serverKey: string };
  /** Development only: a listener without TLS; refused unless `host` is a loopback address. */
  plain?: { host: string; port: number };
  /** The head sequence of a service's change log (lag = head - applied). */
  headSeq: (serviceId: string) => Promise<number>;
  now?: () => number;
  /** Minimum interval between lag samples of one edge while its lag is unchanged. Default 60 s. */
  lagSampleIntervalMs?: number;
  /** How often connections are checked for certificates that expired since the handshake. Default 60 s. */
  expirySweepMs?: number;
  /**
   * aedes tuning (options of aedes 1.x, node_modules/aedes/aedes.js defaultOptions): concurrency of
   * its message queue, how long a write may wait for a slow client to drain, and how long a
   * connection may stay without a CONNECT.
   */
  aedes?: { concurrency?: number; drainTimeout?: number; connectTimeout?: number };
  /**
   * The largest MQTT remaining length accepted from a client, checked at each fixed header before the
   * packet is read (packet-guard.ts). Default MAX_MQTT_PACKET_BYTES.
   */
  maxPacketBytes?: number;
}

/**
 * Largest remaining length of a packet from an edge: the largest payload of the protocol plus room
 * for a topic, a packet id or a CONNECT's fields (client id, will topic). Anything bigger is refused
 * at its fixed header; the payload limit itself is checked in authorizePublish.
 */
export const MAX_MQTT_PACKET_BYTES = MAX_SYNC_PAYLOAD_BYTES + 4096;

export interface PublishOptions {
  qos?: 0 | 1;
  retain?: boolean;
}

/**
 * The tuning options the hub gives aedes. Each is an option of the installed aedes (1.x,
 * `defaultOptions` in node_modules/aedes/aedes.js; a test checks): aedes copies unknown keys without a
 * word, so an option it does not have would protect nothing. aedes has no packet-size option: that
 * limit is packet-guard.ts.
 */
export function aedesTuning(opts: Pick<BrokerOptions, 'aedes'>) {
  return {
    concurrency: opts.aedes?.concurrency ?? 1000,
    drainTimeout: opts.aedes?.drainTimeout ?? 30_000,
    connectTimeout: opts.aedes?.connectTimeout ?? 10_000,
    // Topics of the protocol have 5 levels; nothing legitimate is deeper.
    maxTopicLevels: 16,
  };
}

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

// TLS verification results (OpenSSL X509_V_ERR_*, as Node names them in authorizationError) to codes.
function tlsRefusalCode(reason: string): ErrorCode {
  if (reason === 'CERT_HAS_EXPIRED') return 'cert_expired';
  if (reason === 'CERT_NOT_YET_VALID') return 'cert_not_yet_valid';
  if (reason === 'CERT_REVOKED') return 'cert_revoked';
  if (/ISSUER|SELF_SIGNED|UNABLE_TO_VERIFY|CERT_SIGNATURE_FAILURE/.test(reason)) return 'cert_unknown_issuer';
  return 'unauthorized';
}

export function createBroker(opts: BrokerOptions) {
  // A message to many edges is encoded once and written to each as one buffer (encoded-publish.ts).
  installEncodedPublishWrites();
  const trustedPems = opts.deviceCa.trustedPems?.() ?? [opts.deviceCa.certPem];
  const caCerts = trustedPems.map((p) => new X509Certificate(p));
  const signedByDeviceCa = (socket: TLSSocket): boolean => {
    const peer = socket.getPeerX509Certificate();
    return peer !== undefined && caCerts.some((ca) => peer.checkIssued(ca) && peer.verify(ca.publicKey));
  };
  const log = opts.log;
  const now = opts.now ?? Date.now;
  const ctx = createBrokerContext(opts.devices, log, now);
  const connected = ctx.connected;
  let aedes: Aedes | undefined;
  let tlsServer: TlsServer | undefined;
  let plainServer: NetServer | undefined;
  let expirySweep: NodeJS.Timeout | undefined;

  if (opts.plain && !isLoopback(opts.plain.host)) {
    throw new MyKeyError('config_invalid', `the plain MQTT listener may only bind a loopback address, not ${opts.plain.host}`);
  }

  const maxPacketBytes = opts.maxPacketBytes ?? MAX_MQTT_PACKET_BYTES;
  /** Hands a connection to aedes behind the packet-size guard. */
  function handle(a: Aedes, socket: Socket): void {
    guardPacketSize(socket, maxPacketBytes, (v) => {
      const client = (socket as unknown as { client?: Client }).client;
      const id = client ? ctx.identities.get(client) : undefined;
      ctx.refuse(v.code, v.code === 'mqtt_packet_too_large' ? 'MQTT packet over the size limit' : 'malformed MQTT fixed header', {
        packetType: v.packetType,
        ...(v.code === 'mqtt_packet_too_large' ? { announcedAtLeast: v.atLeast, limit: maxPacketBytes } : {}),
        ...(id ? { edgeId: id.edgeId } : {}),
        remote: socket.remoteAddress,
      });
    });
    a.handle(socket);
  }

  function listen(server: NetServer | TlsServer, host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
  }

  function closeServer(server: NetServer | TlsServer | undefined): Promise<void> {
    return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  return {
    /** Starts aedes and the listeners; resolves with the bound ports. */
    async start(): Promise<{ tlsPort: number; plainPort?: number }> {
      const a = await Aedes.createBroker({
        ...aedesTuning(opts),
        persistence: createSessionStore(),
        preConnect: preConnectHook(ctx),
        authenticate: authenticateHook(ctx),
        authorizeSubscribe: authorizeSubscribeHook(ctx),
        authorizePublish: authorizePublishHook(ctx),
        authorizeForward: authorizeForwardHook(ctx),
        published: publishedHook(ctx, opts.headSeq, opts.lagSampleIntervalMs ?? 60_000),
      });
      aedes = a;
      await opts.devices.markAllOffline();

      // Listeners never throw into aedes: a failing store is logged and the broker carries on.
      const guarded =
        <A extends unknown[]>(what: string, fn: (...args: A) => Promise<void>) =>
        (...args: A) => {
          fn(...args).catch((err) => log.error(`${what} failed`, { error: err }));
        };
      a.on(
        'client',
        guarded('registering an edge connection', async (client: Client) => {
          const id = ctx.identities.get(client);
          if (!id) return;
          // A revocation committed between authenticate and registration must still win.
          const row = await opts.devices.get(id.edgeId);
          if (!row || row.status !== 'active') {
            ctx.refuse('device_revoked', 'revoked while connecting', { edgeId: id.edgeId });
            client.close();
            return;
          }
          connected.set(id.edgeId, client);
          await opts.devices.markSeen(id.edgeId, now());
        }),
      );
      a.on(
        'clientDisconnect',
        guarded('marking an edge offline', async (client: Client) => {
          const id = ctx.identities.get(client);
          // A takeover by a new connection of the same edge [MQTT-3.1.4-2] must not mark it offline.
          if (!id || connected.get(id.edgeId) !== client) return;
          connected.delete(id.edgeId);
          await opts.devices.markOffline(id.edgeId, now());
        }),
      );
      // aedes emits 'error' for persistence failures; unhandled, that would end the process.
      // (The typings omit the event; aedes is an EventEmitter all the same.)
      (a as unknown as NodeJS.EventEmitter).on('error', (err: Error) => log.error('broker error', { error: err }));
      a.on('clientError', (client, err) => log.debug('client error', { clientId: client?.id, error: err.message }));
      a.on('connectionError', (_client, err) => log.debug('connection error', { error: err.message }));

      // TLS: only certificates of the device CA pass. The handshake requests and verifies the client
      // certificate against the device CA alone; a socket that fails verification is destroyed in
      // the secureConnection callback before aedes sees a byte of it, so an unknown party never
      // reaches the MQTT parser. (This is rejectUnauthorized done by hand: Node's own destroys the
      // socket silently, and every refusal here must be logged with its code.) The one exception is
      // a device certificate of ours that is expired or not yet valid: its CONNECT gets CONNACK 5.
      const tls = createTlsServer(
        {
          key: opts.tls.serverKey,
          cert: opts.tls.serverCert,
          ca: trustedPems,
          requestCert: true,
          rejectUnauthorized: false,
          minVersion: 'TLSv1.2',
          handshakeTimeout: 10_000,
          // No session tickets (RFC 8446 4.6.1, RFC 5077): an edge connects with a full handshake
          // every time (mqtt.js keeps no session), and issuing two tickets per connection cost 6 to
          // 10 KB of resident memory per edge (fan-out bench; a bare TLS server: 53 KB per connection
          // against 44). Node keeps no server-side session cache unless asked ('newSession'), so no
          // session is resumed: every connection verifies its certificate (test/hub/broker/tls-session.test.ts);
          // authenticate checks the dates and the device's status anyway (hooks/authenticate.ts).
          secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
        },
        (socket: TLSSocket) => {
          if (!socket.authorized) {
            const reason = String(socket.authorizationError ?? 'no client certificate');
            let code = tlsRefusalCode(reason);
            // Only a certificate the device CA itself signed may go on to be refused at CONNACK for
            // its dates. OpenSSL reports the last verification error, so a stranger's expired
            // certificate also says CERT_HAS_EXPIRED: the signature is checked here.
            if (code === 'cert_expired' || code === 'cert_not_yet_valid') {
              if (signedByDeviceCa(socket)) ctx.outOfValidity.set(socket, code);
              else code = 'cert_unknown_issuer';
            }
            if (!ctx.outOfValidity.has(socket)) {
              ctx.refuse(code, 'TLS client certificate', { reason, remote: socket.remoteAddress });
              socket.destroy();
              return;
            }
          }
          // Fan-out latency: small change-log messages must not wait for Nagle.
          socket.setNoDelay(true);
          handle(a, socket);
        },
      );
      // Handshakes that fail before any certificate (scanners, resets, protocol errors).
      tls.on('tlsClientError', (err: Error) => log.debug('TLS handshake failed', { error: err.message }));
      tlsServer = tls;
      const tlsPort = await listen(tls, opts.tls.host, opts.tls.port);

      let plainPort: number | undefined;
      if (opts.plain) {
        const plain = createNetServer((socket: Socket) => {
          socket.setNoDelay(true);
          ctx.plainConnections.add(socket);
          handle(a, socket);
        });
        plainServer = plain;
        plainPort = await listen(plain, opts.plain.host, opts.plain.port);
        log.warn('plain MQTT listener enabled (development only): client ids of enrolled devices are trusted without a certificate', {
          host: opts.plain.host,
          port: plainPort,
        });
      }
      // A certificate that expires during a long-lived connection ends that connection: TLS checked
      // validity only at the handshake.
      expirySweep = setInterval(() => {
        const t = now();
        for (const [edgeId, client] of connected) {
          const id = ctx.identities.get(client);
          if (id && id.notAfter <= t) {
            ctx.refuse('cert_expired', 'device certificate expired while connected', { edgeId });
            connected.delete(edgeId);
            client.close();
          }
        }
      }, opts.expirySweepMs ?? 60_000);
      expirySweep.unref();
      log.info('broker listening', { tlsPort, plainPort });
      return plainPort === undefined ? { tlsPort } : { tlsPort, plainPort };
    },

    /** Stops listening and disconnects everyone. */
    async stop(): Promise<void> {
      const a = aedes;
      aedes = undefined;
      clearInterval(expirySweep);
      const closing = [closeServer(tlsServer), closeServer(plainServer)];
      tlsServer = plainServer = undefined;
      if (a) await new Promise<void>((r) => a.close(() => r()));
      await Promise.all(closing);
      connected.clear();
    },

    /**
     * Publishes on a protocol topic on behalf of the hub (the change log, commands). Resolves once
     * aedes has queued it for every subscriber (stored for persistent sessions at QoS 1).
     */
    publish(topic: string, payload: Buffer | string, o: PublishOptions = {}): Promise<void> {
      const a = aedes;
      if (!a) return Promise.reject(new MyKeyError('unavailable', 'the broker is not running'));
      if (!parseTopic(topic)) return Promise.reject(new MyKeyError('topic_forbidden', 'not a protocol topic'));
      const buf = typeof payload === 'string' ? Buffer.from(payload) : payload;
      if (buf.byteLength > MAX_SYNC_PAYLOAD_BYTES) return Promise.reject(new MyKeyError('payload_too_large'));
      return new Promise((resolve, reject) => {
        a.publish({ cmd: 'publish', topic, payload: buf, qos: o.qos ?? 1, retain: o.retain ?? false, dup: false }, (err) => (err ? reject(err) : resolve()));
      });
    },

    /** Drops the edge's connection now (after a revocation). True when it was connected. */
    disconnectEdge(edgeId: string): boolean {
      const client = connected.get(edgeId) ?? (aedes ? (aedes as unknown as { clients: Record<string, Client> }).clients[edgeId] : undefined);
      if (!client) return false;
      connected.delete(edgeId);
      // MQTT 3.1.1 has no server DISCONNECT: closing the network connection is the way [MQTT-3.14].
      client.close();
      opts.devices.markOffline(edgeId, now()).catch((err) => log.error('marking an edge offline failed', { edgeId, error: err }));
      log.info('edge disconnected by the hub', { edgeId });
      return true;
    },

    /** Edge ids with a live, authenticated connection. */
    connectedEdges(): string[] {
      return [...connected.keys()];
    },

    /** Refusals since start, by stable code (for the console and tests). */
    refusals(): Record<string, number> {
      return Object.fromEntries(ctx.refusals);
    },
  };
}

export type Broker = ReturnType<typeof createBroker>;
