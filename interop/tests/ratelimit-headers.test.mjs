// structured-headers (RFC 8941/9651), unmodified, parsing every RateLimit and RateLimit-Policy
// field the service sends (draft-ietf-httpapi-ratelimit-headers), and a 429's naming the
// policy that denied: the tenant's rate, then its cap on requests in flight.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { parseList } from 'structured-headers';
import { apiURL, call, signup } from './lib.mjs';

let tenant; // limited to 1 a second, burst 5
let busy; // a high rate, but one request in flight at a time
const answers = []; // every answer of this script, for the field checks

async function send(method, path, opts) {
  const res = await call(method, path, opts);
  answers.push({ what: `${method} ${path} → ${res.status}`, headers: res.headers, status: res.status, json: res.json });
  return res;
}

/** A List of Items as [{name, params}] where each Item is a String naming a policy. */
function policies(field, value) {
  return parseList(value).map(([name, params], i) => {
    assert.equal(typeof name, 'string', `${field} member ${i} names its policy with a String: ${value}`);
    return { name, params: Object.fromEntries(params) };
  });
}

function check(a) {
  const policy = a.headers.get('ratelimit-policy');
  const state = a.headers.get('ratelimit');
  if (!policy && !state) return null;
  assert.ok(policy && state, `${a.what}: RateLimit and RateLimit-Policy come together`);
  const ps = policies('RateLimit-Policy', policy);
  for (const p of ps) {
    assert.ok(Number.isInteger(p.params.q) && p.params.q > 0, `${a.what}: q of ${p.name}: ${policy}`);
    if (p.params.w !== undefined) assert.ok(Number.isInteger(p.params.w) && p.params.w > 0, `${a.what}: w of ${p.name}`);
  }
  const [s, ...more] = policies('RateLimit', state);
  assert.equal(more.length, 0, `${a.what}: RateLimit describes one policy: ${state}`);
  assert.ok(ps.some((p) => p.name === s.name), `${a.what}: RateLimit's ${s.name} is among RateLimit-Policy's: ${policy}`);
  assert.ok(Number.isInteger(s.params.r) && s.params.r >= 0, `${a.what}: r: ${state}`);
  if (s.params.t !== undefined) assert.ok(Number.isInteger(s.params.t) && s.params.t >= 0, `${a.what}: t: ${state}`);
  return { policies: ps, state: s };
}

before(async () => {
  tenant = await signup('ratelimit', { requests_per_second: 1, burst: 5, max_concurrent: 1 });
  busy = await signup('ratelimit', { requests_per_second: 1000, burst: 1000, max_concurrent: 1 });
});

test('a 429 from the tenant\'s rate names "tenant" in its body and its RateLimit field', async () => {
  let denied;
  for (let i = 0; i < 20 && !denied; i++) {
    const res = await send('GET', '/v1/me', { token: tenant.token });
    if (res.status === 429) denied = answers.at(-1);
    else assert.equal(res.status, 200);
  }
  assert.ok(denied, 'a burst of 5 at 1 a second was not denied within 20 requests');
  assert.equal(denied.json.code, 'rate_limited');
  assert.equal(denied.json.policy, 'tenant');
  assert.ok(Number(denied.headers.get('retry-after')) >= 1);
  const { policies: ps, state } = check(denied);
  assert.deepEqual(ps.find((p) => p.name === 'tenant').params, { q: 5, w: 5 });
  assert.deepEqual(ps.find((p) => p.name === 'tenant.concurrency').params, { q: 1, qu: 'concurrent-requests' });
  assert.equal(state.name, 'tenant');
  assert.equal(state.params.r, 0);
});

/**
 * Holds one POST /v1/projects in flight (its body arrives only when release is called) while
 * GET /v1/me is sent until one is denied. Answers {denied, held} (held: the POST's status).
 */
async function whileOneIsInFlight(token, pauseMs) {
  const body = JSON.stringify({ name: 'held in flight' });
  const req = http.request(new URL('/v1/projects', apiURL), {
    agent: false, // a connection of its own, whatever became of an earlier attempt's
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  });
  let held;
  const answered = new Promise((resolve, reject) => {
    req.on('response', (res) => {
      held = res.statusCode;
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
  });
  req.write(body.slice(0, 5));
  await new Promise((r) => setTimeout(r, pauseMs)); // let it in before any other request
  let denied;
  for (let i = 0; i < 100 && !denied && held === undefined; i++) {
    const res = await send('GET', '/v1/me', { token });
    if (res.status === 429) denied = answers.at(-1);
    else await new Promise((r) => setTimeout(r, 20)); // the held request is not in yet
  }
  req.end(body.slice(5));
  await answered;
  return { denied, held };
}

test('a 429 from the cap on requests in flight names "tenant.concurrency"', async () => {
  // The held request is itself denied if it comes in after a GET (a busy machine): try again
  // after the denial's Retry-After, letting it in for longer.
  const runs = [];
  for (let i = 0; i < 5; i++) {
    runs.push(await whileOneIsInFlight(busy.token, 300 * 2 ** i));
    if (runs.at(-1).held !== 429 && runs.at(-1).denied) break;
    await new Promise((r) => setTimeout(r, 1100));
  }
  const { denied, held } = runs.at(-1);
  const tries = JSON.stringify(runs.map((r) => ({ held: r.held, denied: r.denied?.status })));
  assert.equal(held, 201, tries);
  assert.ok(denied, `no 429 while another request was in flight: ${tries}`);
  assert.equal(denied.json.policy, 'tenant.concurrency');
  const { policies: ps, state } = check(denied);
  assert.deepEqual(ps.find((p) => p.name === 'tenant.concurrency').params, { q: 1, qu: 'concurrent-requests' });
  assert.equal(state.name, 'tenant.concurrency');
  assert.deepEqual(state.params, { r: 0 });
  // With nothing in flight, the next request passes.
  assert.equal((await send('GET', '/v1/me', { token: busy.token })).status, 200);
});

test('every RateLimit and RateLimit-Policy field parses as a Structured Field', async () => {
  await send('POST', '/v1/projects', { token: busy.token, body: { name: 'fields' } });
  await send('GET', '/v1/projects', { token: busy.token });
  await send('POST', '/v1/auth/token', { body: { grant_type: 'password', tenant: tenant.slug, email: tenant.email, password: tenant.password } });
  await send('POST', '/v1/auth/token', { body: { grant_type: 'password', tenant: tenant.slug, email: tenant.email, password: 'wrong password' } });
  await send('POST', '/ofrep/v1/evaluate/flags', { token: busy.token, body: {} });
  await send('GET', '/v1/me', { token: 'not-a-token' });
  let withFields = 0;
  for (const a of answers) if (check(a)) withFields++;
  const tenantAnswers = answers.filter((a) => !a.what.includes('/v1/auth/') && a.status !== 401);
  for (const a of tenantAnswers) assert.ok(a.headers.get('ratelimit'), `${a.what} has RateLimit`);
  assert.ok(withFields >= tenantAnswers.length);
});
