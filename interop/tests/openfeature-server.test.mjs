// OpenFeature's server SDK with its OFREP provider, unmodified, against POST
// /ofrep/v1/evaluate/flags/{key}: every flag type, targeting, a split, a missing flag, a type
// mismatch, and an operator change seen by the very next evaluation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { OpenFeature, ErrorCode, StandardResolutionReasons } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';
import { apiURL, adminToken, must, signup, unique } from './lib.mjs';

const keys = {
  bool: unique('of-bool'),
  str: unique('of-str'),
  num: unique('of-num'),
  obj: unique('of-obj'),
  split: unique('of-split'),
};
let tenant;
let client;

function putFlag(key, flag) {
  return must(flag.status ?? 201, 'PUT', `/v1/admin/flags/${key}`, { token: adminToken, body: flag.body });
}

before(async () => {
  tenant = await signup('of-server');
  await putFlag(keys.bool, {
    body: {
      type: 'boolean', variants: { on: true, off: false }, default_variant: 'off', enabled: true,
      rules: [{ conditions: [{ attribute: 'country', operator: 'in', values: ['fr', 'de'] }], variant: 'on' }],
    },
  });
  await putFlag(keys.str, {
    body: { type: 'string', variants: { blue: 'blue', green: 'green' }, default_variant: 'blue', enabled: true },
  });
  await putFlag(keys.num, {
    body: {
      type: 'number', variants: { small: 10, large: 250.5 }, default_variant: 'small', enabled: true,
      rules: [{ conditions: [{ attribute: 'seats', operator: 'gte', values: [100] }], variant: 'large' }],
    },
  });
  await putFlag(keys.obj, {
    body: {
      type: 'object', default_variant: 'basic', enabled: true,
      variants: { basic: { theme: 'light', limits: { projects: 3 } }, pro: { theme: 'dark', limits: { projects: 50 }, beta: ['a', 'b'] } },
      rules: [{ conditions: [{ attribute: 'plan', operator: 'in', values: ['free'] }], variant: 'pro' }],
    },
  });
  await putFlag(keys.split, {
    body: {
      type: 'boolean', variants: { on: true, off: false }, default_variant: 'off', enabled: true,
      rules: [{ split: [{ variant: 'on', weight: 50 }, { variant: 'off', weight: 50 }] }],
    },
  });
  await OpenFeature.setProviderAndWait('interop', new OFREPProvider({
    baseUrl: apiURL,
    headers: { Authorization: `Bearer ${tenant.token}` },
  }));
  client = OpenFeature.getClient('interop');
});

after(() => OpenFeature.close());

test('a boolean flag: the default, then the variant a context attribute targets', async () => {
  let d = await client.getBooleanDetails(keys.bool, true, { targetingKey: 'user-1', country: 'us' });
  assert.equal(d.value, false);
  assert.equal(d.variant, 'off');
  assert.equal(d.reason, StandardResolutionReasons.DEFAULT);
  assert.equal(d.errorCode, undefined);
  d = await client.getBooleanDetails(keys.bool, false, { targetingKey: 'user-1', country: 'fr' });
  assert.equal(d.value, true);
  assert.equal(d.variant, 'on');
  assert.equal(d.reason, StandardResolutionReasons.TARGETING_MATCH);
  assert.equal(await client.getBooleanValue(keys.bool, false, { country: 'de' }), true);
});

test('a string flag answers its value (STATIC: no rules)', async () => {
  const d = await client.getStringDetails(keys.str, 'fallback', { targetingKey: 'user-1' });
  assert.deepEqual([d.value, d.variant, d.reason], ['blue', 'blue', StandardResolutionReasons.STATIC]);
});

test('a number flag: a numeric condition on a context attribute', async () => {
  assert.equal(await client.getNumberValue(keys.num, -1, { seats: 5 }), 10);
  const d = await client.getNumberDetails(keys.num, -1, { seats: 100 });
  assert.deepEqual([d.value, d.variant, d.reason], [250.5, 'large', StandardResolutionReasons.TARGETING_MATCH]);
});

test('an object flag: the server-side attribute plan targets, the whole JSON value arrives', async () => {
  // A new tenant is on the free plan: `plan` comes from the server, never from the context.
  const d = await client.getObjectDetails(keys.obj, {}, { targetingKey: 'user-1', plan: 'enterprise' });
  assert.equal(d.reason, StandardResolutionReasons.TARGETING_MATCH);
  assert.equal(d.variant, 'pro');
  assert.deepEqual(d.value, { theme: 'dark', limits: { projects: 50 }, beta: ['a', 'b'] });
});

test('a split: each targeting key lands in one variant, always the same, and both variants are served', async () => {
  const seen = new Map();
  for (let i = 0; i < 40; i++) {
    const d = await client.getBooleanDetails(keys.split, false, { targetingKey: `member-${i}` });
    assert.equal(d.reason, StandardResolutionReasons.SPLIT, JSON.stringify(d));
    assert.equal(d.value, d.variant === 'on');
    seen.set(`member-${i}`, d.variant);
  }
  assert.deepEqual(new Set(seen.values()), new Set(['on', 'off']), 'a 50/50 split over 40 keys served one variant only');
  for (const [key, variant] of [...seen].slice(0, 10)) {
    assert.equal((await client.getBooleanDetails(keys.split, false, { targetingKey: key })).variant, variant);
    // The service's own API places the key in the same bucket.
    const { json } = await must(200, 'GET', `/v1/flags/${keys.split}?targeting_key=${key}`, { token: tenant.token });
    assert.equal(json.variant, variant);
  }
});

test('a missing flag answers the caller default with FLAG_NOT_FOUND', async () => {
  const d = await client.getBooleanDetails(unique('of-missing'), true, { targetingKey: 'user-1' });
  assert.equal(d.value, true);
  assert.equal(d.reason, StandardResolutionReasons.ERROR);
  assert.equal(d.errorCode, ErrorCode.FLAG_NOT_FOUND);
});

test('a type mismatch answers the caller default with TYPE_MISMATCH', async () => {
  const d = await client.getNumberDetails(keys.str, 42, { targetingKey: 'user-1' });
  assert.equal(d.value, 42);
  assert.equal(d.reason, StandardResolutionReasons.ERROR);
  assert.equal(d.errorCode, ErrorCode.TYPE_MISMATCH);
});

test("an operator's change is seen by the next evaluation", async () => {
  assert.equal(await client.getStringValue(keys.str, 'fallback'), 'blue');
  await putFlag(keys.str, {
    status: 200,
    body: { type: 'string', variants: { blue: 'blue', green: 'green' }, default_variant: 'green', enabled: true },
  });
  const d = await client.getStringDetails(keys.str, 'fallback');
  assert.deepEqual([d.value, d.variant], ['green', 'green']);
  // The kill switch: the default variant, reason DISABLED.
  await putFlag(keys.bool, {
    status: 200,
    body: { type: 'boolean', variants: { on: true, off: false }, default_variant: 'off', enabled: false,
      rules: [{ conditions: [{ attribute: 'country', operator: 'in', values: ['fr', 'de'] }], variant: 'on' }] },
  });
  const k = await client.getBooleanDetails(keys.bool, true, { country: 'fr' });
  assert.deepEqual([k.value, k.reason], [false, StandardResolutionReasons.DISABLED]);
});
