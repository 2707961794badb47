// Test fixture for the broker: a device CA in a temp directory, an in-memory device repo, enrolled
// edges with real certificates, a broker on an ephemeral loopback port, and mqtt.js clients over TLS.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBroker, type Broker, type BrokerOptions } from '../../../../hub/broker/broker.ts';
import { createDeviceCsr, openDeviceCa, type DeviceCa } from '../../../../hub/pki/device-ca.ts';
import { createDeviceEnrollment, type DeviceEnrollment } from '../../../../hub/enrollment/device-enrollment.ts';
import { createFanoutBus } from '../../../../hub/fanout.ts';
import { openDatabase, type Db } from '../../../../hub/store/db.ts';
import { createDeviceRepo, type DeviceRepo } from '../../../../hub/store/device-repo.ts';
import { DEVICE_MIGRATIONS } from '../../../../hub/store/schema/devices.ts';
import { createLogger, type Logger } from '../../../../shared/log.ts';
import type { EdgeStatus } from '../../../../shared/sync.ts';
import { refusalOf } from './refusal.ts';

/** Opens an in-memory hub database with the device schema (whether or not the hub's list has it yet). */
export function openDeviceDb(): Db {
  const db = openDatabase(':memory:');
  const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'devices'").get();
  if (!has) for (const m of DEVICE_MIGRATIONS) db.exec(m.sql);
  return db;
}

export interface EdgeCreds {
  edgeId: string;
  serviceId: string;
  certPem: string;
  keyPem: string;
}

export interface Fixture {
  dir: string;
  ca: DeviceCa;
  db: Db;
  devices: DeviceRepo;
  enrollment: DeviceEnrollment;
  broker: Broker;
  port: number;
  plainPort?: number;
  /** JSON log lines the broker wrote (warn and above). */
  logs: Array<{ msg: string; code?: string; [k: string]: unknown }>;
  heads: Map<string, number>;
  enroll(edgeId: string, serviceId: string, o?: { ca?: DeviceCa; record?: boolean; validityDays?: number }): Promise<EdgeCreds>;
  connect(creds: EdgeCreds, o?: Partial<IClientOptions>): Promise<MqttClient>;
  /** Connects and expects a refusal; resolves with the CONNACK return code or the TLS error text. */
  refusedConnect(creds: EdgeCreds, o?: Partial<IClientOptions>): Promise<{ returnCode?: number; error: string }>;
  close(): Promise<void>;
}

export function status(creds: EdgeCreds, over: Partial<EdgeStatus> = {}): EdgeStatus {
  return { edgeId: creds.edgeId, serviceId: creds.serviceId, online: true, appliedSeq: 0, version: '0.1.0', health: 'ok', at: new Date().toISOString(), ...over };
}

export async function startFixture(o: { plain?: boolean; brokerOptions?: Partial<BrokerOptions> } = {}): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'mykey-broker-'));
  const ca = await openDeviceCa(join(dir, 'device-ca'));
  const db = openDeviceDb();
  const devices = createDeviceRepo(db);
  const logs: Fixture['logs'] = [];
  const log: Logger = createLogger('broker', { level: 'warn', json: true, write: (l) => logs.push(JSON.parse(l)) });
  const heads = new Map<string, number>();
  const server = await ca.serverCredentials();
  const broker = createBroker({
    deviceCa: ca,
    devices,
    log,
    tls: { host: '127.0.0.1', port: 0, serverCert: server.certPem, serverKey: server.keyPem },
    plain: o.plain ? { host: '127.0.0.1', port: 0 } : undefined,
    headSeq: async (s) => heads.get(s) ?? 0,
    ...o.brokerOptions,
  });
  // The hub's chain for revoked devices (hub/fanout.ts): the broker drops the edge's session.
  const events = createFanoutBus(log);
  events.on('deviceRevoked', ({ edgeId }) => broker.disconnectEdge(edgeId));
  const enrollment = createDeviceEnrollment({ deviceCa: ca, devices, events });
  const { tlsPort, plainPort } = await broker.start();
  const clients = new Set<MqttClient>();

  const options = (creds: EdgeCreds, over: Partial<IClientOptions> = {}): IClientOptions => ({
    protocol: 'mqtts',
    host: '127.0.0.1',
    port: tlsPort,
    protocolVersion: 4,
    clientId: creds.edgeId,
    clean: false,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    keepalive: 30,
    ca: ca.certPem,
    cert: creds.certPem,
    key: creds.keyPem,
    rejectUnauthorized: true,
    ...over,
  });

  return {
    dir,
    ca,
    db,
    devices,
    enrollment,
    broker,
    port: tlsPort,
    plainPort,
    logs,
    heads,
    async enroll(edgeId, serviceId, e = {}) {
      const { csrDer, keyPem } = await createDeviceCsr(edgeId);
      const issuer = e.ca ?? ca;
      const r = await issuer.issueDeviceCertificate(csrDer, { edgeId, serviceId, validityDays: e.validityDays ?? 30 });
      if (!r.ok) throw new Error(r.message);
      if (e.record !== false) {
        await devices.enroll({ edgeId, serviceId, certSerial: r.value.serialHex, certFingerprint: r.value.fingerprint, notAfter: r.value.notAfter.getTime() }, Date.now());
      }
      return { edgeId, serviceId, certPem: r.value.certPem, keyPem };
    },
    async connect(creds, over) {
      const c = await mqtt.connectAsync(options(creds, over));
      clients.add(c);
      return c;
    },
    refusedConnect(creds, over) {
      const c = mqtt.connect(options(creds, over));
      clients.add(c);
      return refusalOf(c);
    },
    async close() {
      for (const c of clients) c.end(true);
      await broker.stop();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves when the client's connection closes; rejects after `ms`. */
export function closed(c: MqttClient, ms = 3000): Promise<void> {
  if (!c.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`still connected after ${ms} ms`)), ms);
    c.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** The next message on a topic; rejects after `ms`. */
export function nextMessage(c: MqttClient, topic: string, ms = 3000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      c.off('message', on);
      reject(new Error(`no message on ${topic} within ${ms} ms`));
    }, ms);
    const on = (tp: string, payload: Buffer) => {
      if (tp !== topic) return;
      clearTimeout(t);
      c.off('message', on);
      resolve(payload);
    };
    c.on('message', on);
  });
}
