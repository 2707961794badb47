// The home companion assembled: the reader layer, the hub client, the flows and the local page.
// The constructor only assigns; start() and stop() act.
import type { Logger } from '../../shared/log.ts';
import { silentLogger } from '../../shared/log.ts';
import { MyKeyError } from '../../shared/errors.ts';
import { ReaderManager, silentReaderLog, type ReaderManagerOptions } from '../reader/index.ts';
import { HolderFlows } from './flows.ts';
import { HolderHubClient } from './hub-client.ts';
import type { Language } from './messages.ts';
import { HolderServer } from './server.ts';
import { isLoopbackHost } from '../kiosk/request-guard.ts';

export interface HolderCompanionOptions {
  /** The hub's base URL: https, or http to a loopback address (development). */
  hub: string;
  port?: number;
  host?: string;
  language?: Language;
  /** Use only this reader. */
  reader?: string;
  readers?: ReaderManagerOptions;
  hubTimeoutMs?: number;
  log?: Logger;
}

/** Checks the hub URL: an absolute https URL (plain http only to loopback), without credentials. */
export function parseHubUrl(value: string): URL {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new MyKeyError('bad_request', `--hub: not a URL: ${value}`);
  }
  if (u.username || u.password) throw new MyKeyError('bad_request', '--hub: no credentials in the URL');
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopbackHost(u.hostname))) {
    throw new MyKeyError('insecure_transport', '--hub must be https (plain http only to a loopback address)');
  }
  return u;
}

export class HolderCompanion {
  readonly manager: ReaderManager;
  readonly server: HolderServer;
  readonly flows: HolderFlows;

  constructor(o: HolderCompanionOptions) {
    const hub = new HolderHubClient({ hub: parseHubUrl(o.hub).href, timeoutMs: o.hubTimeoutMs });
    this.manager = new ReaderManager({ log: silentReaderLog, ...o.readers });
    this.flows = new HolderFlows({ readers: this.manager, hub, reader: o.reader });
    this.server = new HolderServer({ flows: this.flows, hubOrigin: hub.origin, host: o.host, port: o.port, language: o.language, log: o.log ?? silentLogger });
  }

  async start(): Promise<void> {
    this.manager.start();
    await this.server.start();
  }

  async stop(): Promise<void> {
    await this.server.stop();
    await this.manager.stop();
  }
}
