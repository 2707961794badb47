// The revocation fan-out chain (hub/fanout.ts): a CRL suspension and a link change reach the outbox
// and the webhooks through `outboxWritten`, a revoked device certificate drops its edge through
// `deviceRevoked`; a listener that throws is logged and the chain goes on. (The hub's own tests run
// the chain end to end: test/hub/links, test/edge/sync/sync-agent.hub.test.ts.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createFanoutBus, wireFanout } from '../../hub/fanout.ts';
import { silentLogger } from '../../shared/log.ts';

test('a suspension and a link change each kick the outbox and the webhooks once', () => {
  const bus = createFanoutBus(silentLogger);
  const kicks = { outbox: 0, webhooks: 0 };
  const dropped: string[] = [];
  const unwire = wireFanout(bus, { log: silentLogger, outbox: { kick: () => void kicks.outbox++ }, webhooks: { kick: () => void kicks.webhooks++ }, disconnectEdge: (e) => void dropped.push(e) });
  bus.emit('suspended', { source: 'crl' });
  bus.emit('outboxWritten', { source: 'links' });
  bus.emit('deviceRevoked', { edgeId: 'lib-counter-1' });
  assert.equal(kicks, { outbox: 2, webhooks: 2 });
  assert.equal(dropped, ['lib-counter-1']);
  unwire();
  bus.emit('outboxWritten', { source: 'links' });
  assert.equal(kicks, { outbox: 2, webhooks: 2 }, 'nothing listens once unwired');
});

test('a suspension said to be followed by more reaches the outbox as such; a link change never is', () => {
  const bus = createFanoutBus(silentLogger);
  const kicks: boolean[] = [];
  wireFanout(bus, { log: silentLogger, outbox: { kick: (o) => void kicks.push(o?.more === true) }, webhooks: { kick: () => undefined }, disconnectEdge: () => undefined });
  bus.emit('suspended', { source: 'crl', more: true });
  bus.emit('outboxWritten', { source: 'links' });
  bus.emit('suspended', { source: 'crl' });
  assert.equal(kicks, [true, false, false]);
});

test('a revoked device is dropped by the embedded broker and cut off the cluster, even when one of them throws', () => {
  const errors: string[] = [];
  const bus = createFanoutBus({ error: (msg: string) => void errors.push(msg) });
  const cut: string[] = [];
  wireFanout(bus, {
    log: silentLogger,
    outbox: { kick: () => undefined },
    webhooks: { kick: () => undefined },
    disconnectEdge: () => {
      throw new Error('the broker is stopping');
    },
    cutOffEdge: (e) => void cut.push(e),
  });
  bus.emit('deviceRevoked', { edgeId: 'lib-counter-1' });
  assert.equal(cut, ['lib-counter-1']);
  assert.is(errors.length, 1);
});

test('a listener that throws is logged and the others still run', () => {
  const errors: string[] = [];
  const bus = createFanoutBus({ error: (msg: string) => void errors.push(msg) });
  let webhooks = 0;
  bus.on('outboxWritten', () => {
    throw new Error('boom');
  });
  wireFanout(bus, { log: silentLogger, outbox: { kick: () => undefined }, webhooks: { kick: () => void webhooks++ }, disconnectEdge: () => undefined });
  bus.emit('outboxWritten', { source: 'lifecycle' });
  assert.is(webhooks, 1);
  assert.is(errors.length, 1);
});

test.run();
