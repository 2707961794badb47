// The edge's broker URL list (edge/config.ts): backwards compatible with the single `broker.url`,
// the first URL first, and mqtt.js `servers` only when there is more than one node to fail over to.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { brokerServers, brokerUrls } from '../../edge/config.ts';

test('a single broker.url stays a plain connect', () => {
  assert.equal(brokerUrls({ broker: { url: 'mqtts://hub.example:8883', urls: [] } }), ['mqtts://hub.example:8883']);
  assert.is(brokerServers(['mqtts://hub.example:8883']), undefined);
});

test('broker.urls adds the other nodes after broker.url, without repeats', () => {
  const urls = brokerUrls({ broker: { url: 'mqtts://n1.example:8883', urls: ['mqtts://n1.example:8883', 'mqtts://n2.example', 'mqtts://[::1]:9883'] } });
  assert.equal(urls, ['mqtts://n1.example:8883', 'mqtts://n2.example', 'mqtts://[::1]:9883']);
  assert.equal(brokerServers(urls), [
    { host: 'n1.example', port: 8883, protocol: 'mqtts' },
    { host: 'n2.example', port: 8883, protocol: 'mqtts' },
    { host: '::1', port: 9883, protocol: 'mqtts' },
  ]);
});

test.run();
