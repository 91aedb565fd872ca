// A typed client made from the description alone: openapi-typescript turns openapi.yaml into
// generated/api.d.ts (run.sh), openapi-fetch calls the service with those types, and tsc
// checks this file before it runs. It fails to compile if the description cannot express a
// call a user makes (usage `data`, object flag values), and fails at run time if the service
// answers other than the description says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import createClient from 'openapi-fetch';
import type { paths, components } from '../generated/api.js';

const baseUrl = process.env.INTEROP_API_URL!;
const adminToken = process.env.INTEROP_ADMIN_TOKEN!;
const suffix = randomBytes(4).toString('hex');

type FlagValue = components['schemas']['FlagValue'];

// Password hashing runs under a concurrency bound: a 503 server_busy says when to retry.
async function retried<T extends { response: Response }>(call: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    const res = await call();
    if (res.response.status !== 503 || i === 30) return res;
    await new Promise((r) => setTimeout(r, 1000 * Number(res.response.headers.get('retry-after') ?? 1)));
  }
}

test('a typed session: signup, token, projects, usage with data, flags', async () => {
  const api = createClient<paths>({ baseUrl });
  const admin = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${adminToken}` } });

  const slug = `typed-${suffix}`;
  const signup = await retried(() => api.POST('/v1/signup', {
    body: { tenant_name: 'Typed Ltd', tenant_slug: slug, email: `owner@${slug}.example.com`, password: 'correct horse battery' },
  }));
  assert.equal(signup.response.status, 201, JSON.stringify(signup.error));
  assert.ok(signup.data);
  assert.equal(signup.data.token_type, 'Bearer');
  assert.equal(signup.data.tenant.slug, slug);

  const token = await retried(() => api.POST('/v1/auth/token', {
    body: { grant_type: 'password', tenant: slug, email: `owner@${slug}.example.com`, password: 'correct horse battery' },
  }));
  assert.equal(token.response.status, 200, JSON.stringify(token.error));
  assert.ok(token.data && token.data.expires_in > 0 && token.data.expires_in <= 900);
  const wrong = await retried(() => api.POST('/v1/auth/token', {
    body: { grant_type: 'password', tenant: slug, email: `owner@${slug}.example.com`, password: 'not the password' },
  }));
  assert.equal(wrong.response.status, 401);
  assert.equal(wrong.error?.code, 'invalid_credentials');

  const me = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token.data.access_token}` } });
  const created = await me.POST('/v1/projects', { body: { name: 'Typed project', description: 'made by openapi-fetch' } });
  assert.equal(created.response.status, 201, JSON.stringify(created.error));
  const id: string = created.data!.id;
  const patched = await me.PATCH('/v1/projects/{id}', { params: { path: { id } }, body: { name: 'Renamed' } });
  assert.equal(patched.data?.name, 'Renamed');
  const list = await me.GET('/v1/projects', { params: { query: { limit: 10 } } });
  assert.deepEqual(list.data?.data.map((p) => p.id), [id]);
  const gone = await me.GET('/v1/projects/{id}', { params: { path: { id: '0190a000-0000-7000-8000-000000000000' } } });
  assert.equal(gone.response.status, 404);
  assert.equal(gone.error?.code, 'not_found');

  // Usage: an open `data` object, summed by a meter reading $.units per $.region.
  const meter = `typed_units_${suffix}`;
  const put = await admin.PUT('/v1/admin/meters/{key}', {
    params: { path: { key: meter } },
    body: { event_type: `com.example.typed.${suffix}`, aggregation: 'sum', value_property: '$.units', group_by: { region: '$.region' } },
  });
  assert.equal(put.response.status, 201, JSON.stringify(put.error));
  // Sum meters answer on 15-minute boundaries: the quarter hour that holds the events.
  const quarter = 15 * 60_000;
  const from = new Date(Math.floor(Date.now() / quarter) * quarter - quarter);
  const to = new Date(from.getTime() + 3 * quarter);
  const time = new Date(Date.now() - 1000).toISOString();
  const ingest = await me.POST('/v1/usage/events', {
    body: [
      { specversion: '1.0', id: `e1-${suffix}`, source: 'typed', type: `com.example.typed.${suffix}`, time, data: { units: 3, region: 'eu' } },
      { specversion: '1.0', id: `e2-${suffix}`, source: 'typed', type: `com.example.typed.${suffix}`, time, data: { units: '1.5', region: 'us' } },
    ],
  });
  assert.equal(ingest.response.status, 200, JSON.stringify(ingest.error));
  assert.deepEqual(ingest.data, { accepted: 2, duplicates: 0 });
  const usage = await me.GET('/v1/meters/{key}/usage', {
    params: {
      path: { key: meter },
      query: { from: from.toISOString(), to: to.toISOString(), group_by: 'region' },
    },
  });
  assert.equal(usage.response.status, 200, JSON.stringify(usage.error));
  const byRegion = Object.fromEntries(usage.data!.data.map((d) => [d.group.region, d.value]));
  assert.deepEqual(byRegion, { eu: 3, us: 1.5 });

  // Flags: an object flag's value arrives whole and typed as FlagValue.
  const flag = `typed-theme-${suffix}`;
  const fput = await admin.PUT('/v1/admin/flags/{key}', {
    params: { path: { key: flag } },
    body: { type: 'object', variants: { dark: { mode: 'dark', contrast: 7 } }, default_variant: 'dark', enabled: true },
  });
  assert.equal(fput.response.status, 201, JSON.stringify(fput.error));
  const flags = await me.GET('/v1/flags', {});
  const theme = flags.data?.data.find((f) => f.key === flag);
  const value: FlagValue | undefined = theme?.value;
  assert.deepEqual(value, { mode: 'dark', contrast: 7 });
  const one = await me.GET('/v1/flags/{key}', { params: { path: { key: flag } } });
  assert.equal(one.data?.reason, 'STATIC');

  // The event log reads back an open `data` object.
  const events = await me.GET('/v1/events', { params: { query: { type: 'project.updated' } } });
  const data: { [key: string]: unknown } | undefined = events.data?.data[0]?.data;
  assert.equal((data as { name?: string } | undefined)?.name, 'Renamed');
});
