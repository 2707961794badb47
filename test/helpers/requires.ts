// Tests that need a tool the machine may lack (Mosquitto, OpenSC) are registered through `testIf`:
// without the tool they are reported by uvu as skipped (and counted so in the runner's closing line),
// never as passed. CI installs every such tool, so there they always run.
import { test } from 'uvu';

type Handler = Parameters<typeof test>[1];

/** `test` when `available`, otherwise `test.skip` with the reason printed once. */
export function testIf(available: boolean, missing: string): (name: string, fn: Handler) => void {
  if (available) return (name, fn) => test(name, fn);
  return (name, fn) => {
    console.log(`skipped (${missing}): ${name}`);
    test.skip(name, fn);
  };
}
