// How a broker refuses an MQTT client: the CONNACK return code, or the connection closing first.
import type { MqttClient } from 'mqtt';

/** What a refused connection showed: the CONNACK return code when one came, and the error. */
export interface Refusal {
  returnCode?: number;
  error: string;
}

/**
 * Waits for `c` (just made with mqtt.connect) to be refused; rejects when it connects, or when
 * nothing happens for `timeoutMs` (a guard against a hang, generous for a loaded machine).
 */
export function refusalOf(c: MqttClient, timeoutMs = 30_000): Promise<Refusal> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`neither refused nor connected in ${timeoutMs / 1000} s`)), timeoutMs);
    c.once('connect', () => {
      clearTimeout(timer);
      reject(new Error('connected, but a refusal was expected'));
    });
    c.once('error', (err: Error & { code?: number | string }) => {
      clearTimeout(timer);
      c.end(true);
      resolve({ returnCode: typeof err.code === 'number' ? err.code : undefined, error: err.message });
    });
    // A TLS 1.3 server judges the client certificate after the client has finished its side of
    // the handshake, so a refused certificate shows as the connection closing before CONNACK.
    c.once('close', () => {
      clearTimeout(timer);
      c.end(true);
      resolve({ error: 'closed before CONNACK' });
    });
  });
}
