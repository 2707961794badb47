// A clustered broker in place of the embedded one (config broker.external): the hub serves the
// broker's HTTP auth backend on its own listener (config brokerAuth), publishes the change log to the
// cluster as an MQTT client, records the edges' statuses from it, and cuts a revoked device off
// through the management API.
import { readFileSync } from 'node:fs';
import type { Logger } from '../../shared/log.ts';
import type { HubConfig } from '../config.ts';
import { closeServer, listen, urlHost } from '../http/listener.ts';
import type { DeviceRepo } from '../store/device-repo.ts';
import { createBrokerAuthApp } from './auth-backend.ts';
import { createExternalPublisher } from './external-publisher.ts';
import { createRabbitManagement } from './management.ts';
import { createStatusRecorder } from './status-recorder.ts';
import { TOPIC_ROOT } from '../../shared/topics.ts';

export interface BrokerCluster {
  /** Base URL of the auth backend (`http://127.0.0.1:8091`); its paths are /user, /vhost, /resource, /topic. */
  authUrl: string;
  publish(topic: string, payload: string): Promise<void>;
  /** Closes the connections of a revoked device on the cluster (logged, never thrown). */
  cutOff(edgeId: string): void;
  stop(): Promise<void>;
}

export async function startBrokerCluster(o: {
  config: HubConfig;
  devices: DeviceRepo;
  deviceCaPem: string;
  log: Logger;
  headSeq: (serviceId: string) => Promise<number>;
  now: () => number;
}): Promise<BrokerCluster> {
  const ext = o.config.broker.external;
  const app = createBrokerAuthApp({ devices: o.devices, log: o.log.child('auth'), hubUser: { username: ext.username, password: ext.password } });
  if (!ext.password) o.log.warn('broker.external.password is empty: the hub user is refused by its own auth backend and cannot publish');
  const { server, port } = await listen({ fetch: app.fetch, hostname: o.config.brokerAuth.host, port: o.config.brokerAuth.port });
  const publisher = createExternalPublisher({
    urls: ext.urls,
    username: ext.username,
    password: ext.password,
    ca: ext.caFile ? readFileSync(ext.caFile, 'utf8') : o.deviceCaPem,
    log: o.log,
    subscribe: { filters: [`${TOPIC_ROOT}/edge/+/status`], onMessage: createStatusRecorder({ devices: o.devices, headSeq: o.headSeq, now: o.now, log: o.log }) },
  });
  const management = ext.managementUrls.length > 0 ? createRabbitManagement({ urls: ext.managementUrls, username: ext.managementUser, password: ext.managementPassword, log: o.log }) : undefined;
  if (!management) o.log.warn('broker.external.managementUrls is empty: a revoked device keeps its open cluster connection until it reconnects');
  return {
    authUrl: `http://${urlHost(o.config.brokerAuth.host)}:${port}`,
    publish: (topic, payload) => publisher.publish(topic, payload),
    cutOff(edgeId) {
      management?.closeUserConnections(edgeId).catch(() => {
        /* logged by the management client; the auth backend refuses its every next check anyway */
      });
    },
    async stop() {
      await publisher.stop();
      await closeServer(server);
    },
  };
}
