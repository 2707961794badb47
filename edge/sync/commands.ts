// Commands from the hub to this edge (shared/sync.ts EdgeCommand) and their replies on the edge's
// reply topic, echoing the transaction (one reply envelope, shared/errors.ts): `ping` answers the
// applied seq, health and version; `resync` takes a fresh snapshot and catches up; `decommission`
// answers, then wipes the state and stops the agent.
import { errorReply, okReply, type Reply } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { EdgeCommand } from '../../shared/sync.ts';
import { edgeReplyTopic } from '../../shared/topics.ts';
import type { Health } from './health.ts';

export interface CommandDeps {
  log: Logger;
  edgeId: string;
  version: string;
  appliedSeq: () => number;
  mappings: () => number;
  health: () => Health;
  resync: () => Promise<void>;
  reply: (topic: string, payload: string) => Promise<void>;
  /** Wipes the state and stops the agent (after the reply went out). */
  decommission: () => Promise<void>;
}

/** Runs one command and publishes its reply. Never throws. */
export async function runCommand(c: EdgeCommand, d: CommandDeps): Promise<void> {
  let reply: Reply<unknown>;
  try {
    if (c.command === 'ping') reply = okReply({ appliedSeq: d.appliedSeq(), health: d.health(), version: d.version }, c.transaction);
    else if (c.command === 'resync') {
      await d.resync();
      reply = okReply({ appliedSeq: d.appliedSeq(), mappings: d.mappings() }, c.transaction);
    } else {
      reply = okReply({ decommissioned: true }, c.transaction);
    }
  } catch (e) {
    reply = errorReply(e, c.transaction);
  }
  await d.reply(edgeReplyTopic(d.edgeId), JSON.stringify(reply)).catch((e) => d.log.warn('reply not sent', { error: e }));
  if (c.command === 'decommission') {
    d.log.warn('decommissioned by the hub: wiping state');
    await d.decommission().catch((e) => d.log.error('decommission failed', { error: e }));
  }
}
