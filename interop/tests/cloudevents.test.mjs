// The CloudEvents JavaScript SDK, unmodified, sending usage to POST /v1/usage/events in every
// content mode of the HTTP binding: binary (the SDK's default), structured, batch, data as
// bytes (data_base64), and duplicates. The meter's sum proves each event counted once.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { CloudEvent, HTTP, Mode, CONSTANTS, emitterFor, httpTransport } from 'cloudevents';
import { apiURL, adminToken, call, must, signup, unique } from './lib.mjs';

const meter = unique('ce_units').replace(/-/g, '_');
const type = `com.example.interop.${meter}`;
let tenant;
let emitBinary;
let emitStructured;

// The SDK's transport answers the body and headers; the body says how it went.
async function sent(emit, event) {
  const res = await emit(event, { headers: { authorization: `Bearer ${tenant.token}` } });
  return JSON.parse(res.body);
}

const event = (units, extra = {}) => new CloudEvent({ type, source: 'interop/cloudevents', id: randomUUID(), data: { units }, ...extra });

before(async () => {
  tenant = await signup('cloudevents');
  await must(201, 'PUT', `/v1/admin/meters/${meter}`, {
    token: adminToken, body: { event_type: type, aggregation: 'sum', value_property: '$.units' },
  });
  const transport = httpTransport(new URL('/v1/usage/events', apiURL));
  emitBinary = emitterFor(transport, { binding: HTTP, mode: Mode.BINARY });
  emitStructured = emitterFor(transport, { binding: HTTP, mode: Mode.STRUCTURED });
});

async function total() {
  const quarter = 15 * 60_000;
  const from = new Date(Math.floor(Date.now() / quarter) * quarter - quarter).toISOString();
  const to = new Date(Math.floor(Date.now() / quarter) * quarter + 2 * quarter).toISOString();
  const { json } = await must(200, 'GET', `/v1/meters/${meter}/usage?from=${from}&to=${to}`, { token: tenant.token });
  return json.data.reduce((s, d) => s + d.value, 0);
}

test('binary mode (the SDK default): ce-* headers, data as the body', async () => {
  const ev = event(2);
  const message = HTTP.binary(ev);
  assert.equal(message.headers['ce-specversion'], '1.0', 'the SDK sends binary mode');
  assert.deepEqual(await sent(emitBinary, ev), { accepted: 1, duplicates: 0 });
  assert.deepEqual(await sent(emitBinary, ev), { accepted: 0, duplicates: 1 }, 'the same event again is a duplicate');
});

test('structured mode: application/cloudevents+json', async () => {
  const ev = event(3, { subject: 'seat-7', myextension: 'kept' });
  assert.match(HTTP.structured(ev).headers['content-type'], /^application\/cloudevents\+json/);
  assert.deepEqual(await sent(emitStructured, ev), { accepted: 1, duplicates: 0 });
  assert.deepEqual(await sent(emitStructured, ev), { accepted: 0, duplicates: 1 });
});

test('data as bytes: data_base64 in structured mode, raw bytes in binary mode', async () => {
  const bytes = (units) => new TextEncoder().encode(JSON.stringify({ units }));
  const structured = event(undefined, { data: bytes(4), datacontenttype: 'application/json' });
  assert.ok(JSON.parse(HTTP.structured(structured).body).data_base64, 'the SDK sends data_base64');
  assert.deepEqual(await sent(emitStructured, structured), { accepted: 1, duplicates: 0 });
  const binary = event(undefined, { data: bytes(5), datacontenttype: 'application/json' });
  assert.deepEqual(await sent(emitBinary, binary), { accepted: 1, duplicates: 0 });
});

test('batch mode: application/cloudevents-batch+json, and a retried batch answers as duplicates', async () => {
  const events = [event(1), event(1.5), event('0.5')];
  // The SDK reads batches but has no batch serializer: the array of its structured events,
  // which its own deserializer must read back as the same events.
  const body = JSON.stringify(events);
  const headers = { 'content-type': CONSTANTS.MIME_CE_BATCH };
  assert.deepEqual(HTTP.toEvent({ headers, body }).map((e) => e.id), events.map((e) => e.id));
  const opts = { token: tenant.token, body, headers };
  assert.deepEqual((await must(200, 'POST', '/v1/usage/events', opts)).json, { accepted: 3, duplicates: 0 });
  assert.deepEqual((await must(200, 'POST', '/v1/usage/events', opts)).json, { accepted: 0, duplicates: 3 });
});

test('every accepted event counted once: 2 + 3 + 4 + 5 + 3', async () => {
  assert.equal(await total(), 17);
});

test('an event of the meter without a value at its path is refused, naming it, in every mode', async () => {
  const bad = new CloudEvent({ type, source: 'interop/cloudevents', id: randomUUID(), data: { seats: 1 } });
  for (const message of [HTTP.binary(bad), HTTP.structured(bad)]) {
    const res = await call('POST', '/v1/usage/events', { token: tenant.token, body: message.body, headers: message.headers });
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json.code, 'validation_failed');
    assert.equal(res.json.errors[0].index, 0);
  }
  assert.equal(await total(), 17, 'nothing of a refused request is stored');
});
