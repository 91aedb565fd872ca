// What every script needs to reach the service that run.sh started: its URLs, the operator
// token, a tenant of its own, and a plain fetch wrapper for the set-up calls that are not the
// subject of the script (the subject always goes through its standard's own client).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these scripts with make interop (interop/run.sh)`);
  return v;
}

export const apiURL = env('INTEROP_API_URL');
/** Replica B: the same service after a signing-key rotation (run.sh). */
export const rotatedApiURL = env('INTEROP_ROTATED_API_URL');
export const adminToken = env('INTEROP_ADMIN_TOKEN');

/** A name no other script or run uses: flags and meters are platform-wide. */
export function unique(prefix) {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/**
 * One HTTP call. body: an object (sent as JSON), a string or a Buffer (sent as is).
 * Answers {status, headers, text, json}. Password hashing runs under a concurrency bound: when
 * every script signs up at once, some are told 503 server_busy with Retry-After, and retry
 * then, as a client should.
 */
export async function call(method, path, opts = {}) {
  for (let i = 0; ; i++) {
    const res = await once(method, path, opts);
    if (res.status !== 503 || res.json?.code !== 'server_busy' || i === 30) return res;
    await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get('retry-after') || 1)));
  }
}

async function once(method, path, { token, body, headers = {}, base = apiURL } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let payload = body;
  if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
    payload = JSON.stringify(body);
    h['content-type'] ??= 'application/json';
  }
  const res = await fetch(new URL(path, base), { method, headers: h, body: payload });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/**
 * call, asserting the status. For these set-up calls a 429 is retried after its Retry-After
 * (a fail-closed limit, such as payments', answers 429 while Redis is slow to answer).
 */
export async function must(status, method, path, opts) {
  let res = await call(method, path, opts);
  for (let i = 0; i < 10 && res.status === 429 && status !== 429; i++) {
    await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get('retry-after') || 1)));
    res = await call(method, path, opts);
  }
  assert.equal(res.status, status, `${method} ${path}: ${res.status} ${res.text}`);
  return res;
}

/**
 * A new tenant with its owner: {tenant, user, token, refresh, slug, email, password}. Unless
 * rateLimit is null, the operator gives it rateLimit (default: far above what a script sends),
 * since the free plan's 10 requests a second would otherwise answer part of a script with 429s.
 */
export async function signup(prefix, rateLimit = { requests_per_second: 1000, burst: 2000, max_concurrent: 200 }) {
  const slug = unique(prefix);
  const email = `owner@${slug}.example.com`;
  const password = 'correct horse battery';
  const { json } = await must(201, 'POST', '/v1/signup', {
    body: { tenant_name: `Interop ${slug}`, tenant_slug: slug, email, password },
  });
  if (rateLimit) {
    await must(200, 'PATCH', `/v1/admin/tenants/${json.tenant.id}`, { token: adminToken, body: { rate_limit: rateLimit } });
  }
  return { tenant: json.tenant, user: json.user, token: json.access_token, refresh: json.refresh_token, slug, email, password };
}

/** Polls fn until it answers something truthy, failing after timeoutMs. */
export async function eventually(what, fn, timeoutMs = 20000, everyMs = 100) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      throw new Error(`${what}: not within ${timeoutMs} ms${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
