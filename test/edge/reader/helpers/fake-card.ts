// Test doubles of a card connection for the reader layer's unit tests (no PC/SC involved).
import type { VirtualCard } from '../../../../provisioning/virtual-card/card.ts';
import type { RawCard } from '../../../../edge/reader/transport.ts';
import { toHex } from '../../../../edge/reader/apdu.ts';

/** A RawCard scripted by a function from APDU hex to response hex (or an Error to throw). */
export function scriptedCard(answer: (apduHex: string) => string | Error | Promise<string>): RawCard & { sent: string[]; closes: { reset: boolean }[] } {
  const sent: string[] = [];
  const closes: { reset: boolean }[] = [];
  return {
    sent,
    closes,
    async transmit(apdu) {
      const h = toHex(apdu);
      sent.push(h);
      const r = await answer(h);
      if (r instanceof Error) throw r;
      return Uint8Array.from(Buffer.from(r.replace(/\s+/g, ''), 'hex'));
    },
    async close(o) {
      closes.push(o);
    },
  };
}

/** A RawCard over a VirtualCard in this process (its pure APDU machine, no vpcd). */
export function inProcessCard(card: VirtualCard): RawCard & { closes: { reset: boolean }[] } {
  card.powerOn();
  const closes: { reset: boolean }[] = [];
  return {
    closes,
    async transmit(apdu) {
      return card.transmit(apdu);
    },
    async close(o) {
      closes.push(o);
      if (o.reset) card.reset();
    },
  };
}
