// OpenFeature's web SDK with its OFREP web provider, unmodified, against the bulk evaluation
// POST /ofrep/v1/evaluate/flags: every flag evaluated in one call for the context, polls that
// send If-None-Match and get 304 while nothing changed, and an operator change that raises
// ConfigurationChanged. fetchImplementation only watches the real fetch's answers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { OpenFeature, ProviderEvents, StandardResolutionReasons, ErrorCode } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
import { apiURL, adminToken, must, signup, unique, eventually } from './lib.mjs';

const flagKey = unique('ofw-banner');
const numKey = unique('ofw-limit');
const seen = []; // [{status, ifNoneMatch, etag}] of every bulk evaluation the provider made
const changes = []; // the flagsChanged of every ConfigurationChanged event
let client;

function watchingFetch(input, init) {
  const req = new Request(input, init);
  return fetch(req).then((res) => {
    if (new URL(req.url).pathname === '/ofrep/v1/evaluate/flags') {
      seen.push({ status: res.status, ifNoneMatch: req.headers.get('if-none-match'), etag: res.headers.get('etag') });
    }
    return res;
  });
}

const banner = (variant) => ({
  type: 'string', variants: { old: 'old banner', new: 'new banner' }, default_variant: variant, enabled: true,
  rules: [{ conditions: [{ attribute: 'country', operator: 'eq', values: ['fr'] }], variant: 'new' }],
});

before(async () => {
  const tenant = await signup('of-web');
  await must(201, 'PUT', `/v1/admin/flags/${flagKey}`, { token: adminToken, body: banner('old') });
  await must(201, 'PUT', `/v1/admin/flags/${numKey}`, {
    token: adminToken, body: { type: 'number', variants: { five: 5 }, default_variant: 'five', enabled: true },
  });
  const provider = new OFREPWebProvider({
    baseUrl: apiURL,
    headers: [['Authorization', `Bearer ${tenant.token}`]],
    pollInterval: 250,
    cacheMode: 'disabled',
    fetchImplementation: watchingFetch,
  });
  const domain = unique('web');
  await OpenFeature.setContext(domain, { targetingKey: 'visitor-1', country: 'de' });
  await OpenFeature.setProviderAndWait(domain, provider);
  client = OpenFeature.getClient(domain);
  client.addHandler(ProviderEvents.ConfigurationChanged, (e) => changes.push(e?.flagsChanged ?? []));
});

after(() => OpenFeature.close());

test('one bulk evaluation serves every flag of the context, synchronously', async () => {
  assert.ok(seen.length >= 1 && seen[0].status === 200, JSON.stringify(seen));
  assert.ok(seen[0].etag, 'the bulk answer carries an ETag');
  const d = client.getStringDetails(flagKey, 'fallback');
  assert.deepEqual([d.value, d.variant, d.reason], ['old banner', 'old', StandardResolutionReasons.DEFAULT]);
  assert.equal(client.getNumberValue(numKey, 0), 5);
  const missing = client.getBooleanDetails(unique('ofw-missing'), true);
  assert.deepEqual([missing.value, missing.errorCode], [true, ErrorCode.FLAG_NOT_FOUND]);
  const mismatch = client.getBooleanDetails(numKey, true);
  assert.deepEqual([mismatch.value, mismatch.errorCode], [true, ErrorCode.TYPE_MISMATCH]);
});

test('a context change is evaluated again (targeting on a context attribute)', async () => {
  await OpenFeature.setContext(client.metadata.domain, { targetingKey: 'visitor-1', country: 'fr' });
  const d = client.getStringDetails(flagKey, 'fallback');
  assert.deepEqual([d.value, d.reason], ['new banner', StandardResolutionReasons.TARGETING_MATCH]);
  await OpenFeature.setContext(client.metadata.domain, { targetingKey: 'visitor-1', country: 'de' });
});

test('polls send the ETag back and get 304 while nothing changed', async () => {
  // Other scripts change flags of their own meanwhile (flags are platform-wide), which changes
  // the ETag; a quiet moment comes within the deadline.
  await eventually('a 304 to a poll naming the current ETag', () => {
    const i = seen.findIndex((s) => s.status === 304);
    if (i < 1) return false;
    const before = seen.slice(0, i).reverse().find((s) => s.status === 200);
    assert.equal(seen[i].ifNoneMatch, before.etag, 'If-None-Match names the last 200 answer\'s ETag');
    return true;
  });
  assert.equal(client.getStringValue(flagKey, 'fallback'), 'old banner');
});

test("an operator's change raises ConfigurationChanged, and the new value is served", async () => {
  changes.length = 0;
  await must(200, 'PUT', `/v1/admin/flags/${flagKey}`, { token: adminToken, body: banner('new') });
  await eventually('ConfigurationChanged naming the flag', () => changes.some((c) => c.includes(flagKey)));
  const d = client.getStringDetails(flagKey, 'fallback');
  assert.deepEqual([d.value, d.variant], ['new banner', 'new']);
});
