// Child process of exclusive.serial.test.ts: start a ReaderManager, read the card, stop; again; then
// return without exiting explicitly. The process must end on its own: any native handle left open by
// stop() (a reader's status thread, the context's thread, a connection) would keep it alive.
import { readIdentity } from '../../../../edge/reader/identity.ts';
import { silentReaderLog } from '../../../../edge/reader/log.ts';
import { ReaderManager } from '../../../../edge/reader/reader-manager.ts';

const reader = process.argv[2] ?? '';
const ids: string[] = [];
for (let round = 0; round < 2; round++) {
  const manager = new ReaderManager({ log: silentReaderLog, readerFilter: (n) => n === reader });
  const present = new Promise<void>((resolve) => {
    const check = () => manager.isCardPresent(reader) && resolve();
    manager.on('card-present', check);
  });
  manager.start();
  await present;
  const s = await manager.connect(reader);
  const id = await readIdentity(s);
  await s.close();
  if (id.kind === 'mykey') ids.push(id.mykeyId);
  await manager.stop();
}
console.log(`read ${ids[0]} ${ids.length === 2 && ids[0] === ids[1] ? 'twice' : `${ids.length} times`}`);
