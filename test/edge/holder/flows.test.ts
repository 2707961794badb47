// The companion's flows over fake readers and a fake hub: every refusal that must come before the card
// is touched or the hub is asked, as a table.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HolderFlows, type FlowRequest } from '../../../edge/holder/flows.ts';
import { HolderHubClient } from '../../../edge/holder/hub-client.ts';
import { MyKeyError } from '../../../shared/errors.ts';

function setup(readerNames: string[], cards: string[], opts: { reader?: string; hubDown?: boolean } = {}) {
  const calls = { connect: [] as string[], challenge: 0, perform: 0 };
  const flows = new HolderFlows({
    reader: opts.reader,
    readers: {
      readers: () => readerNames,
      isCardPresent: (r) => cards.includes(r),
      connect: async (r) => {
        calls.connect.push(r);
        throw new MyKeyError('card_removed');
      },
    },
    hub: {
      challenge: async () => {
        calls.challenge++;
        if (opts.hubDown) throw new MyKeyError('hub_unreachable');
        return { text: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', bytes: new Uint8Array(32) };
      },
      perform: async () => {
        calls.perform++;
        throw new Error('not reached');
      },
    },
  });
  return { flows, calls };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return e instanceof MyKeyError ? e.code : String(e);
  }
}

const R = 'Reader A';
const CASES: [string, FlowRequest | Record<string, unknown>, string[], string[], { reader?: string; hubDown?: boolean }, string, boolean][] = [
  // name, request, readers, cards, options, code, hub asked
  ['a PIN of 3 digits', { op: 'register', pin: '123' }, [R], [R], {}, 'bad_request', false],
  ['a PIN with a letter', { op: 'register', pin: '12a4' }, [R], [R], {}, 'bad_request', false],
  ['a PIN that is not text', { op: 'register', pin: 1234 }, [R], [R], {}, 'bad_request', false],
  ['a malformed MyKey ID', { op: 'change_id', pin: '1234', mykeyId: 'O0O0' }, [R], [R], {}, 'mykey_id_malformed', false],
  ['a malformed service id', { op: 'unlink', pin: '1234', serviceId: '../x' }, [R], [R], {}, 'bad_request', false],
  ['an unknown operation', { op: 'delete_everything', pin: '1234' }, [R], [R], {}, 'bad_request', false],
  ['the new card first', { op: 'carry_over_new', pin: '1234' }, [R], [R], {}, 'holder_step_missing', false],
  ['no reader', { op: 'status', pin: '1234' }, [], [], {}, 'holder_no_reader', false],
  ['two readers', { op: 'status', pin: '1234' }, [R, 'Reader B'], [R], {}, 'holder_two_readers', false],
  ['no card', { op: 'status', pin: '1234' }, [R], [], {}, 'holder_no_card', false],
  ['a named reader that is absent', { op: 'status', pin: '1234' }, [R], [R], { reader: 'Reader B' }, 'holder_no_reader', false],
  ['an unreachable hub', { op: 'status', pin: '1234' }, [R], [R], { hubDown: true }, 'hub_unreachable', true],
];

for (const [name, req, readers, cards, opts, code, hubAsked] of CASES) {
  test(`refuses ${name} with ${code}, before the card is touched`, async () => {
    const { flows, calls } = setup(readers, cards, opts);
    assert.is(await codeOf(flows.run(req as FlowRequest)), code);
    assert.equal(calls.connect, [], 'the card was not touched');
    assert.is(calls.challenge > 0, hubAsked);
    assert.is(calls.perform, 0);
  });
}

test('with --reader, the named reader is used even when another is attached', async () => {
  const { flows, calls } = setup([R, 'Reader B'], [R, 'Reader B'], { reader: 'Reader B' });
  assert.is(await codeOf(flows.run({ op: 'status', pin: '1234' })), 'card_removed');
  assert.equal(calls.connect, ['Reader B']);
});

test('one card operation at a time: a second one meanwhile gets holder_busy', async () => {
  let release!: () => void;
  const flows = new HolderFlows({
    readers: { readers: () => [R], isCardPresent: () => true, connect: async () => Promise.reject(new MyKeyError('card_removed')) },
    hub: {
      challenge: () => new Promise((res) => (release = () => res({ text: 'x', bytes: new Uint8Array(32) }))),
      perform: async () => Promise.reject(new Error('not reached')),
    },
  });
  const first = flows.run({ op: 'status', pin: '1234' });
  await new Promise((r) => setTimeout(r, 10));
  assert.is(flows.state().busy, true);
  assert.is(await codeOf(flows.run({ op: 'status', pin: '1234' })), 'holder_busy');
  release();
  assert.is(await codeOf(first), 'card_removed');
  assert.is(flows.state().busy, false);
});

test("the hub client keeps the hub's own code, and calls anything else unreachable", async () => {
  const answer =
    (status: number, body: string, type = 'application/json') =>
    async () =>
      new Response(body, { status, headers: { 'content-type': type } });
  const client = (f: () => Promise<Response>) => new HolderHubClient({ hub: 'https://hub.example.jp', fetch: f as typeof fetch });
  assert.is(await codeOf(client(answer(409, JSON.stringify({ code: 'mykey_id_taken', detail: 'taken' }))).challenge({ purpose: 'register' })), 'mykey_id_taken');
  assert.is(await codeOf(client(answer(502, '<html>bad gateway</html>', 'text/html')).challenge({ purpose: 'register' })), 'hub_unreachable');
  assert.is(await codeOf(client(async () => Promise.reject(new TypeError('fetch failed'))).challenge({ purpose: 'register' })), 'hub_unreachable');
  assert.is(await codeOf(client(answer(201, JSON.stringify({ nope: 1 }))).challenge({ purpose: 'register' })), 'bad_request');
  assert.is(await codeOf(client(answer(200, JSON.stringify({ mykeyId: 'x' }))).perform('status', { challenge: 'a', certificate: 'b', signature: 'c' })), 'bad_request');
});

test.run();
