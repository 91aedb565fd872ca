// The Standard Webhooks reference library, unmodified, verifying every delivery the service
// makes to a receiver on loopback: the signed envelope with `timestamp`, a retry after a 500
// with the same webhook-id, a secret rotation that signs with both secrets, and a 410 Gone
// that disables the endpoint.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { must, call, signup, eventually as poll } from './lib.mjs';

// Events reach the deliverer through the outbox relay, which waits for every transaction
// older than the event on the PostgreSQL server to end (docs/architecture.md, "Known limits"):
// on a server shared with other work, a delivery can take a while.
const eventually = (what, fn) =>
  poll(`${what} (if an open transaction anywhere on the PostgreSQL server is older than the event, the relay waits for it)`, fn, 60000);

let tenant;
let server;
let endpoint;
let secret;
const received = []; // {headers, body, status}
// Statuses to answer for the deliveries of a project, by its name, in order; 200 when none
// is left. Keyed by project, not by arrival, so a late delivery takes no other test's answer.
const answers = new Map();

before(async () => {
  tenant = await signup('stdwebhooks');
  server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let name;
      try {
        name = JSON.parse(body).data?.name;
      } catch {
        name = undefined;
      }
      const status = answers.get(name)?.shift() ?? 200;
      received.push({ headers: req.headers, body, status });
      res.writeHead(status).end();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { json } = await must(201, 'POST', '/v1/webhook-endpoints', {
    token: tenant.token,
    body: { url: `http://127.0.0.1:${server.address().port}/hooks`, event_types: ['project.*'] },
  });
  endpoint = json;
  secret = json.secret;
  assert.match(secret, /^whsec_/);
});

after(() => new Promise((r) => server.close(r)));

async function project(name) {
  return (await must(201, 'POST', '/v1/projects', { token: tenant.token, body: { name } })).json;
}

const deliveriesOf = (eventName) => received.filter((d) => JSON.parse(d.body).data?.name === eventName);

test('a delivery verifies: the envelope plus timestamp, webhook-id the event id', async () => {
  const p = await project('first');
  const [d] = await eventually('the delivery of project.created', () => deliveriesOf('first').length && deliveriesOf('first'));
  const payload = new Webhook(secret).verify(d.body, d.headers);
  assert.equal(payload.type, 'project.created');
  assert.equal(payload.tenant_id, tenant.tenant.id);
  assert.equal(payload.data.id, p.id);
  assert.equal(payload.id, d.headers['webhook-id']);
  // The payload's timestamp is when the event occurred; webhook-timestamp, when it was sent.
  assert.equal(payload.timestamp, payload.occurred_at);
  assert.ok(Number(d.headers['webhook-timestamp']) >= Math.floor(Date.parse(payload.timestamp) / 1000));
  // A receiver holding another secret refuses it.
  assert.throws(() => new Webhook(`whsec_${randomBytes(24).toString('base64')}`).verify(d.body, d.headers), WebhookVerificationError);
});

test('a 500 is retried with the same webhook-id, and the retry verifies', async () => {
  answers.set('retried', [500]);
  await project('retried');
  const [first, retry] = await eventually('a retry after the 500', () => {
    const ds = deliveriesOf('retried');
    return ds.length >= 2 && ds;
  });
  assert.equal(first.status, 500);
  assert.equal(retry.status, 200);
  assert.equal(retry.headers['webhook-id'], first.headers['webhook-id']);
  for (const d of [first, retry]) new Webhook(secret).verify(d.body, d.headers);
  const { json } = await must(200, 'GET', `/v1/webhook-endpoints/${endpoint.id}/deliveries`, { token: tenant.token });
  const delivery = json.data.find((x) => x.event_id === retry.headers['webhook-id']);
  assert.equal(delivery.status, 'succeeded');
  assert.equal(delivery.attempts.length, 2);
});

test('after a rotation a delivery carries both signatures; each secret verifies it', async () => {
  const { json } = await must(200, 'POST', `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`, { token: tenant.token });
  assert.notEqual(json.secret, secret);
  await project('rotated');
  const [d] = await eventually('the delivery after the rotation', () => deliveriesOf('rotated').length && deliveriesOf('rotated'));
  assert.equal(d.headers['webhook-signature'].split(' ').length, 2, d.headers['webhook-signature']);
  new Webhook(json.secret).verify(d.body, d.headers);
  new Webhook(secret).verify(d.body, d.headers);
  secret = json.secret;
});

test('a 410 Gone disables the endpoint and is not retried', async () => {
  answers.set('gone', [410]);
  await project('gone');
  await eventually('the endpoint disabled as gone', async () => {
    const { json } = await must(200, 'GET', `/v1/webhook-endpoints/${endpoint.id}`, { token: tenant.token });
    return json.status === 'disabled' && json.disabled_reason === 'gone';
  });
  const [d] = deliveriesOf('gone');
  assert.equal(d.status, 410);
  new Webhook(secret).verify(d.body, d.headers);
  // That delivery failed for good, and a retry by hand is refused until the endpoint is enabled.
  const { json } = await must(200, 'GET', `/v1/webhook-endpoints/${endpoint.id}/deliveries`, { token: tenant.token });
  const gone = json.data.find((x) => x.event_id === d.headers['webhook-id']);
  assert.equal(gone.status, 'failed');
  const res = await call('POST', `/v1/webhook-endpoints/${endpoint.id}/deliveries/${gone.id}/retry`, { token: tenant.token });
  assert.equal(res.status, 409, res.text);
});
