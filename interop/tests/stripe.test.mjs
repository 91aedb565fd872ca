// Stripe's Node library, unmodified, signing webhook events for POST /v1/webhooks/stripe with
// webhooks.generateTestHeaderString: a signed payment_intent.succeeded takes effect (once),
// a bad signature and a stale timestamp are refused as such, and a verified event that does
// not parse is refused as not parsing, never as a bad signature. The payment itself is made
// through the service against stripe-mock (run.sh).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import { call, must, signup, unique } from './lib.mjs';

const secret = process.env.STRIPE_WEBHOOK_SECRET;
const stripe = new Stripe('sk_test_interop');
let tenant;
let payment;

function deliver(payload, header) {
  return call('POST', '/v1/webhooks/stripe', { body: payload, headers: { 'stripe-signature': header, 'content-type': 'application/json' } });
}

function intentEvent(type, status) {
  return JSON.stringify({
    id: `evt_${randomBytes(12).toString('hex')}`, object: 'event', type, api_version: '2023-10-16',
    created: Math.floor(Date.now() / 1000), livemode: false, pending_webhooks: 1,
    data: {
      object: {
        id: payment.stripe_payment_intent_id, object: 'payment_intent', status,
        amount: payment.amount, currency: payment.currency, metadata: { payment_id: payment.id },
      },
    },
  });
}

before(async () => {
  assert.ok(secret, 'STRIPE_WEBHOOK_SECRET is set by run.sh');
  tenant = await signup('stripe');
  const { json } = await must(201, 'POST', '/v1/payments', {
    token: tenant.token, headers: { 'idempotency-key': unique('pay') }, body: { amount: 1500, currency: 'usd' },
  });
  payment = json;
  assert.equal(payment.status, 'pending');
  assert.match(payment.stripe_payment_intent_id, /^pi_/);
});

test('a signed payment_intent.succeeded takes effect, once however often it is delivered', async () => {
  const payload = intentEvent('payment_intent.succeeded', 'succeeded');
  const header = stripe.webhooks.generateTestHeaderString({ payload, secret });
  // Stripe's own verification accepts what the service is about to be sent.
  assert.equal(stripe.webhooks.constructEvent(payload, header, secret).type, 'payment_intent.succeeded');
  for (let i = 0; i < 3; i++) {
    const res = await deliver(payload, header);
    assert.equal(res.status, 200, res.text);
  }
  const { json } = await must(200, 'GET', `/v1/payments/${payment.id}`, { token: tenant.token });
  assert.equal(json.status, 'succeeded');
  const events = await must(200, 'GET', '/v1/events?type=payment.succeeded', { token: tenant.token });
  assert.equal(events.json.data.length, 1);
});

test('a bad signature is refused as not verifying', async () => {
  const payload = intentEvent('payment_intent.canceled', 'canceled');
  const header = stripe.webhooks.generateTestHeaderString({ payload, secret: `whsec_${randomBytes(24).toString('hex')}` });
  const res = await deliver(payload, header);
  assert.equal(res.status, 400, res.text);
  assert.match(res.json.detail, /does not verify/);
});

test('a stale timestamp (6 minutes old) is refused as not verifying', async () => {
  const payload = intentEvent('payment_intent.canceled', 'canceled');
  const header = stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp: Math.floor(Date.now() / 1000) - 360 });
  assert.throws(() => stripe.webhooks.constructEvent(payload, header, secret, 300), /timestamp/i);
  const res = await deliver(payload, header);
  assert.equal(res.status, 400, res.text);
  assert.match(res.json.detail, /does not verify/);
  const { json } = await must(200, 'GET', `/v1/payments/${payment.id}`, { token: tenant.token });
  assert.equal(json.status, 'succeeded', 'neither refused event took effect');
});

test('a verified event that does not parse is a validation error, not a bad signature', async () => {
  for (const payload of ['{"id": "evt_1", "object": "event",', '["evt_1"]']) {
    const header = stripe.webhooks.generateTestHeaderString({ payload, secret });
    const res = await deliver(payload, header);
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json.code, 'validation_failed');
    assert.match(res.json.detail, /does not parse/);
    assert.doesNotMatch(res.json.detail, /does not verify/);
  }
});

test('a verified event of a type the service does not act on is accepted and ignored', async () => {
  const payload = JSON.stringify({
    id: `evt_${randomBytes(12).toString('hex')}`, object: 'event', type: 'customer.created', api_version: '2023-10-16',
    created: Math.floor(Date.now() / 1000), data: { object: { id: 'cus_interop', object: 'customer' } },
  });
  const res = await deliver(payload, stripe.webhooks.generateTestHeaderString({ payload, secret }));
  assert.equal(res.status, 200, res.text);
});
