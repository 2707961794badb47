// A hub in front of a broker cluster tells an enrolling edge every node; the edge config written by
// the enrollment lists them (broker.url first, broker.urls for fail-over), and a --broker given by
// the technician names the one broker to use.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildEdgeConfig, endpoints } from '../../../provisioning/enroll/enroll.ts';
import { stateLayout, EnrollmentRecord } from '../../../provisioning/enroll/state-dir.ts';
import { Value } from '@sinclair/typebox/value';
import { brokerUrls } from '../../../edge/config.ts';

const answer = { hubUrl: 'https://hub.example:8443', brokerUrl: 'mqtts://broker-1.example:8883', brokerUrls: ['mqtts://broker-2.example:8883', 'mqtts://broker-3.example:8883'] };

function record(where: ReturnType<typeof endpoints>): EnrollmentRecord {
  return {
    version: 1,
    edgeId: 'lib-1',
    serviceId: 'library',
    hubUrl: 'https://hub.example:8443',
    ...where,
    enrolledAt: '2026-11-30T00:00:00Z',
    notAfter: '2027-11-30T00:00:00Z',
    certFingerprint: 'AA',
  };
}

test('the cluster nodes the hub names reach the edge config as broker.urls, the first as broker.url', () => {
  const dir = mkdtempSync(join(tmpdir(), 'broker-urls-'));
  try {
    const r = record(endpoints({ hubUrl: 'https://hub.example:8443' }, answer));
    assert.ok(Value.Check(EnrollmentRecord, r), 'the record is valid');
    const { config } = buildEdgeConfig(stateLayout(dir), r, undefined);
    assert.is(config.broker.url, 'mqtts://broker-1.example:8883');
    assert.equal(brokerUrls(config), ['mqtts://broker-1.example:8883', 'mqtts://broker-2.example:8883', 'mqtts://broker-3.example:8883']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a --broker given by the technician is the only broker; a hub that names none leaves broker.urls out', () => {
  const dir = mkdtempSync(join(tmpdir(), 'broker-urls-'));
  try {
    const forced = record(endpoints({ hubUrl: 'https://hub.example:8443', brokerUrl: 'mqtts://local.example:8883' }, answer));
    assert.equal(brokerUrls(buildEdgeConfig(stateLayout(dir), forced, undefined).config), ['mqtts://local.example:8883']);
    const single = record(endpoints({ hubUrl: 'https://hub.example:8443' }, { hubUrl: answer.hubUrl, brokerUrl: answer.brokerUrl }));
    assert.not.ok('brokerUrls' in single);
    assert.equal(brokerUrls(buildEdgeConfig(stateLayout(dir), single, undefined).config), ['mqtts://broker-1.example:8883']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
