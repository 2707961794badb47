// The home companion's entry point:
//
//   npx tsx edge/holder/main.ts --hub https://hub.example.jp [--port 0] [--lang ja|en] [--reader NAME]
//
// Prints the loopback link to open in the browser (it carries the session token; open it once).
import { parseArgs } from 'node:util';
import { MyKeyError } from '../../shared/errors.ts';
import { createLogger } from '../../shared/log.ts';
import { HolderCompanion } from './companion.ts';

const USAGE = 'usage: npx tsx edge/holder/main.ts --hub https://hub.example.jp [--port N] [--lang ja|en] [--reader NAME]';

async function main(): Promise<void> {
  let values: { hub?: string; port?: string; lang?: string; reader?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: { hub: { type: 'string' }, port: { type: 'string' }, lang: { type: 'string' }, reader: { type: 'string' }, help: { type: 'boolean' } },
      strict: true,
    }));
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) return void console.log(USAGE);
  if (!values.hub) {
    console.error(`--hub is required\n${USAGE}`);
    process.exit(2);
  }
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--port: not a port number\n${USAGE}`);
    process.exit(2);
  }
  if (values.lang !== undefined && values.lang !== 'ja' && values.lang !== 'en') {
    console.error(`--lang is ja or en\n${USAGE}`);
    process.exit(2);
  }
  let companion: HolderCompanion | undefined;
  let stopping = false;
  // Installed before anything is printed: whoever reads the link may stop us at once.
  const stop = () => {
    if (stopping) return; // a second Ctrl+C while the reader closes
    stopping = true;
    void (companion?.stop() ?? Promise.resolve()).then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    companion = new HolderCompanion({ hub: values.hub, port, language: values.lang, reader: values.reader, log: createLogger('holder') });
    await companion.start();
  } catch (e) {
    console.error(e instanceof MyKeyError ? `${e.code}: ${e.message}` : String(e));
    process.exit(1);
  }
  if (stopping) return;
  console.log(`open ${companion.server.pageUrl}`);
  console.log('(this link is for this browser session only; press Ctrl+C to stop)');
}

void main();
