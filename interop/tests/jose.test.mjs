// jose, unmodified, verifying the service's access tokens against its JWKS
// (GET /.well-known/jwks.json): EdDSA, a kid that is the key's RFC 7638 thumbprint, iss, aud,
// exp; and across a signing-key rotation, where replica B (run.sh) signs with a new key and
// still serves and accepts the old one.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createRemoteJWKSet, jwtVerify, decodeProtectedHeader, calculateJwkThumbprint, errors } from 'jose';
import { apiURL, rotatedApiURL, must, call, signup } from './lib.mjs';

const expected = { issuer: 'saasbase', audience: 'saasbase-api', algorithms: ['EdDSA'], requiredClaims: ['exp', 'iat', 'jti', 'sub', 'tid'] };
const jwksA = createRemoteJWKSet(new URL('/.well-known/jwks.json', apiURL));
const jwksB = createRemoteJWKSet(new URL('/.well-known/jwks.json', rotatedApiURL));
let tenant;

before(async () => {
  tenant = await signup('jose');
});

async function keysOf(base) {
  return (await must(200, 'GET', '/.well-known/jwks.json', { base })).json.keys;
}

test('the JWKS verifies an access token: EdDSA, kid, iss, aud, exp', async () => {
  const { payload, protectedHeader } = await jwtVerify(tenant.token, jwksA, expected);
  assert.equal(protectedHeader.alg, 'EdDSA');
  assert.equal(payload.tid, tenant.tenant.id);
  assert.equal(payload.sub, tenant.user.id);
  assert.equal(payload.role, 'owner');
  assert.ok(payload.exp - payload.iat <= 15 * 60, 'access tokens live at most 15 minutes');
  const [key] = (await keysOf(apiURL)).filter((k) => k.kid === protectedHeader.kid);
  assert.ok(key, 'the token\'s kid is in the JWKS');
  assert.deepEqual([key.kty, key.crv], ['OKP', 'Ed25519']);
  assert.equal(await calculateJwkThumbprint(key), protectedHeader.kid, 'kid is the RFC 7638 thumbprint');
});

test('a wrong audience or issuer, or a time past exp, does not verify', async () => {
  await assert.rejects(jwtVerify(tenant.token, jwksA, { ...expected, audience: 'someone-else' }), errors.JWTClaimValidationFailed);
  await assert.rejects(jwtVerify(tenant.token, jwksA, { ...expected, issuer: 'someone-else' }), errors.JWTClaimValidationFailed);
  const { payload } = await jwtVerify(tenant.token, jwksA, expected);
  await assert.rejects(jwtVerify(tenant.token, jwksA, { ...expected, currentDate: new Date((payload.exp + 1) * 1000) }), errors.JWTExpired);
});

test('across a key rotation: old tokens still verify and are accepted, new ones carry the new kid', async () => {
  const oldKid = decodeProtectedHeader(tenant.token).kid;
  const kidsB = (await keysOf(rotatedApiURL)).map((k) => k.kid);
  assert.ok(kidsB.includes(oldKid), 'the rotated replica still publishes the previous key');
  assert.equal(kidsB.length, 2);

  // A token issued before the rotation verifies against the new JWKS, and the rotated
  // replica accepts it.
  await jwtVerify(tenant.token, jwksB, expected);
  await must(200, 'GET', '/v1/me', { token: tenant.token, base: rotatedApiURL });

  // A token issued after the rotation is signed with the new key.
  const { json } = await must(200, 'POST', '/v1/auth/token', {
    base: rotatedApiURL, body: { grant_type: 'password', tenant: tenant.slug, email: tenant.email, password: tenant.password },
  });
  const { protectedHeader, payload } = await jwtVerify(json.access_token, jwksB, expected);
  assert.notEqual(protectedHeader.kid, oldKid);
  assert.ok(kidsB.includes(protectedHeader.kid));
  assert.equal(payload.tid, tenant.tenant.id);
  await must(200, 'GET', '/v1/me', { token: json.access_token, base: rotatedApiURL });

  // The replica that has not rotated neither publishes nor accepts the new key.
  await assert.rejects(jwtVerify(json.access_token, jwksA, expected), errors.JWKSNoMatchingKey);
  assert.equal((await call('GET', '/v1/me', { token: json.access_token })).status, 401);
});
