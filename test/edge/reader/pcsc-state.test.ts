import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cardTransitions, SCARD_STATE as S } from '../../../edge/reader/pcsc-state.ts';

const counter = (n: number) => n << 16;

test('turns PC/SC state changes into card events (changes = old ^ new)', () => {
  const cases: [string, number, number, string[]][] = [
    ['first report of an empty reader', S.UNAWARE, S.CHANGED | S.EMPTY, []],
    ['first report with a card lying there', S.UNAWARE, S.CHANGED | S.PRESENT, ['present']],
    ['card arrives', S.EMPTY, S.CHANGED | S.PRESENT, ['present']],
    ['card arrives and is taken by us', S.EMPTY, S.PRESENT | S.EXCLUSIVE | S.INUSE, ['present']],
    ['card leaves', S.PRESENT | S.INUSE, S.CHANGED | S.EMPTY, ['removed']],
    ['in-use bit changes only', S.PRESENT, S.CHANGED | S.PRESENT | S.INUSE, []],
    ['nothing changes', S.EMPTY, S.EMPTY, []],
    ['reader goes unavailable with a card', S.PRESENT, S.UNAVAILABLE, ['removed']],
    ['a mute card arrives', S.EMPTY, S.PRESENT | S.MUTE, ['mute']],
    ['card taken away and put back between two reports', S.PRESENT | counter(3), S.PRESENT | counter(5), ['removed', 'present']],
    ['event counter moves on an empty reader', S.EMPTY | counter(3), S.EMPTY | counter(4), []],
    ['card arrives with the counter moving', S.EMPTY | counter(4), S.PRESENT | counter(5), ['present']],
  ];
  for (const [name, prev, next, want] of cases) assert.equal(cardTransitions(prev, next), want, name);
});

test.run();
