// Preloaded (--import) into a process whose every log record a test wants: each record any logger of
// shared/log.ts makes, at every level and whatever the logger's own level, is appended as a JSON line
// to $MYKEY_LOG_TAP_FILE.
import { appendFileSync } from 'node:fs';
import { tapLogs } from '../../shared/log.ts';

const file = process.env.MYKEY_LOG_TAP_FILE;
if (file) tapLogs((r) => appendFileSync(file, JSON.stringify(r) + '\n'));
