// The edge agent as a supervised system service ("firmware-style"): starts on boot after pcscd and
// the network, restarts on failure forever. A dry run prints the unit and the commands instead, so
// the rest of enrollment can run (and be tested) on a machine without systemd.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MyKeyError } from '../../shared/errors.ts';
import { writeFileAtomic } from './state-dir.ts';
import { renderReaderUdevRules, UDEV_RULES_DIR, UDEV_RULES_NAME, udevReloadCommands } from './udev-rules.ts';

export const UNIT_NAME = 'mykey-edge.service';
/** The unprivileged system user the agent runs as (pcscd access: provisioning/edge-service/). */
export const EDGE_USER = 'mykey-edge';
export const UNIT_DIR = '/etc/systemd/system';

/** The repository this tool runs from (the edge agent lives beside it). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface UnitOptions {
  edgeId: string;
  configPath: string;
  stateDir: string;
  /** Absolute path of node (default: the one running this tool). */
  node?: string;
  repoRoot?: string;
  /**
   * The built agent (`dist/edge/main.js`, installed with `npm ci --omit=dev`) to run with plain node.
   * Default: the main.js beside this tool when it runs from the build, else none (a source checkout:
   * the agent runs through tsx, for development).
   */
  builtMain?: string;
}

/** The built agent beside the running tool (dist/edge/enroll.js -> dist/edge/main.js), if any. */
export function builtAgentBeside(script = process.argv[1] ?? ''): string | undefined {
  const main = join(dirname(script), 'main.js');
  return script.endsWith('.js') && existsSync(main) ? main : undefined;
}

/** systemd.unit(5) text for the edge agent. */
export function renderUnit(o: UnitOptions): string {
  const node = o.node ?? process.execPath;
  const built = o.builtMain ?? (o.repoRoot ? undefined : builtAgentBeside());
  const root = built ? dirname(built) : (o.repoRoot ?? REPO_ROOT);
  // The launcher beside the built agent (edge/update/boot.ts) runs the release `current` points at and
  // rolls back a bad update; releases go to the state directory (writable by the agent), while the
  // install folder with the launcher stays read-only to it.
  const boot = built && existsSync(join(root, 'boot.js')) ? join(root, 'boot.js') : undefined;
  const exec = boot ? `${node} ${boot} --updates-dir ${join(o.stateDir, 'updates')}` : built ? `${node} ${built}` : `${node} --import tsx ${join(root, 'edge', 'main.ts')}`;
  for (const p of [node, root, o.configPath, o.stateDir]) {
    // WorkingDirectory= and ReadWritePaths= take paths unquoted (systemd.exec(5)): keep them plain.
    if (/[\s"'\\]/.test(p))
      throw new MyKeyError('validation_failed', `the path ${JSON.stringify(p)} has spaces or quotes, which a systemd unit cannot carry here`, {
        details: { fix: 'use a state directory (and checkout) path without spaces, e.g. /var/lib/mykey-edge' },
      });
  }
  // systemd.unit(5) "Specifiers": a literal % is written %%.
  const q = (s: string) => s.replace(/%/g, '%%');
  return `# Installed by provisioning/enroll (edge ${o.edgeId}). Re-running enroll rewrites this file.
[Unit]
Description=MyKey edge agent (${o.edgeId})
Wants=network-online.target pcscd.socket
After=pcscd.service pcscd.socket network-online.target time-sync.target
# Restart forever: a shop reader has nobody to press a button.
StartLimitIntervalSec=0

[Service]
Type=simple
# Its own unprivileged user (enroll creates it and hands it the state directory).
User=${EDGE_USER}
Group=${EDGE_USER}
WorkingDirectory=${q(root)}
ExecStart=${q(exec)} --config ${q(o.configPath)}
Environment=NODE_ENV=production
Restart=always
RestartSec=3
# The agent writes only its state directory, and /run/mykey-edge for hand-off and registration sockets.
RuntimeDirectory=${EDGE_USER}
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
UMask=0077
ReadWritePaths=${q(o.stateDir)}

[Install]
WantedBy=multi-user.target
`;
}

/** The systemctl invocations that install and (re)start the unit. */
export function installCommands(): string[][] {
  return [
    ['systemctl', 'daemon-reload'],
    ['systemctl', 'enable', UNIT_NAME],
    // restart, not start: a second enrollment (new certificate, new config) must take effect.
    ['systemctl', 'restart', UNIT_NAME],
    ['systemctl', 'is-active', UNIT_NAME],
  ];
}

/** The systemctl invocations that stop and remove the unit (decommission). */
export function removeCommands(): string[][] {
  return [
    ['systemctl', 'disable', '--now', UNIT_NAME],
    ['systemctl', 'daemon-reload'],
  ];
}

export type Exec = (cmd: string, args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;

/** Runs a command without a shell; never rejects on a non-zero exit. */
export const execCommand: Exec = (cmd, args) =>
  new Promise((resolve) => {
    execFile(cmd, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 127) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr || (err && !stdout ? err.message : '')) });
    });
  });

/**
 * The commands that give the agent its own system user and hand it the state directory: `useradd` only
 * when `id` does not know the user yet.
 */
export async function ensureEdgeUser(stateDir: string, exec: Exec): Promise<void> {
  const known = await exec('id', ['-u', EDGE_USER]);
  const cmds: string[][] = [];
  if (known.code !== 0) cmds.push(['useradd', '--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', EDGE_USER]);
  cmds.push(['chown', '-R', `${EDGE_USER}:${EDGE_USER}`, stateDir]);
  await runAll(cmds, exec);
}

/** Writes a root-owned, world-readable system file; a refusal says to run as root. */
function writeSystemFile(path: string, text: string): void {
  try {
    writeFileAtomic(path, text, 0o644);
  } catch (e) {
    throw new MyKeyError('forbidden', `cannot write ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      cause: e,
      details: { fix: 'run enroll as root (sudo), or use --dry-run and install the unit yourself' },
    });
  }
}

/**
 * Writes the udev rule that gives the agent's group write access to the known readers' USB device
 * nodes (the healer's USBDEVFS_RESET, provisioning/edge-service/README.md), then has udev reload its
 * rules and re-apply them to the devices already plugged in. Returns the path written.
 */
export async function installReaderUdevRules(opts: { udevRulesDir?: string; exec?: Exec } = {}): Promise<string> {
  const path = join(opts.udevRulesDir ?? UDEV_RULES_DIR, UDEV_RULES_NAME);
  writeSystemFile(path, renderReaderUdevRules());
  await runAll(udevReloadCommands(), opts.exec ?? execCommand);
  return path;
}

/**
 * Writes the unit and runs the commands; a failing command throws with what it printed. With a state
 * directory, the agent's user is created and handed it, and the reader udev rule is installed before
 * the service (re)starts.
 */
export async function installUnit(unitText: string, opts: { unitDir?: string; udevRulesDir?: string; exec?: Exec; stateDir?: string } = {}): Promise<string> {
  const path = join(opts.unitDir ?? UNIT_DIR, UNIT_NAME);
  writeSystemFile(path, unitText);
  if (opts.stateDir) {
    await ensureEdgeUser(opts.stateDir, opts.exec ?? execCommand);
    // After the user exists: udev resolves GROUP= to a group id when it loads the rules.
    await installReaderUdevRules({ udevRulesDir: opts.udevRulesDir, exec: opts.exec });
  }
  await runAll(installCommands(), opts.exec ?? execCommand);
  return path;
}

/** Runs the commands in order; stops at the first failure. */
export async function runAll(cmds: string[][], exec: Exec): Promise<void> {
  for (const [cmd, ...args] of cmds) {
    const r = await exec(cmd, args);
    if (r.code !== 0) {
      const fix =
        r.code === 127
          ? `this machine has no ${cmd}: run with --dry-run and start the agent another way`
          : cmd === 'udevadm'
            ? 'see: journalctl -u systemd-udevd -n 50'
            : `see: journalctl -u ${UNIT_NAME} -n 50`;
      throw new MyKeyError('unavailable', `${cmd} ${args.join(' ')} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 300)}`, { details: { fix } });
    }
  }
}
