// A hub in its own process for the benches that load it over HTTP: `tsx hub/main.ts --config`, with the
// production log form (JSON lines, access log at info) as a deployed hub writes it. Resolves with the
// port once the hub says it listens; only the start-up lines are kept (the access log that follows is
// drained, not accumulated).
import { spawn, type ChildProcess } from 'node:child_process';
import { listeningUrl } from '../test/helpers/hub-log.ts';

export function startHubProcess(configPath: string, nodeArgs: readonly string[] = []): Promise<{ proc: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'hub/main.ts', '--config', configPath], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, MYKEY_LOG_LEVEL: 'info', MYKEY_LOG_FORMAT: 'json' },
    });
    let err = '';
    let up = false;
    proc.stderr!.on('data', (d) => {
      if (up) return;
      err += d;
      const url = listeningUrl(err);
      if (url) {
        up = true;
        resolve({ proc, port: Number(new URL(url).port) });
      }
    });
    proc.once('exit', (code) => reject(new Error(`hub exited ${code}: ${err}`)));
  });
}
