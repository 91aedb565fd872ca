// The OpenAPI description under the two linters people run on it: Redocly's recommended
// rules (openapi/redocly.yaml, with the findings kept on purpose in
// openapi/.redocly.lint-ignore.yaml) and Spectral's spectral:oas (openapi/.spectral.yaml).
// Neither may report an error or a warning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const bin = (name) => path.join(here, '..', 'node_modules', '.bin', name);
const openapi = path.join(here, '..', '..', 'openapi');
const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' };

test('@redocly/cli lint (recommended): no errors, no warnings', async () => {
  const { stdout } = await run(bin('redocly'), ['lint', '--config', path.join(openapi, 'redocly.yaml'), path.join(openapi, 'openapi.yaml'), '--format=json'], { env, maxBuffer: 64 << 20 })
    .catch((e) => e); // exits non-zero on errors; the report says which
  const report = JSON.parse(stdout);
  const problems = report.problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location?.[0]?.pointer}`);
  assert.deepEqual(problems, []);
  assert.deepEqual([report.totals.errors, report.totals.warnings], [0, 0]);
});

test('spectral lint (spectral:oas): no errors, no warnings', async () => {
  const res = await run(bin('spectral'), ['lint', '-r', path.join(openapi, '.spectral.yaml'), path.join(openapi, 'openapi.yaml'),
    '--fail-severity=warn', '--format=json', '--quiet'], { env, maxBuffer: 64 << 20 }).catch((e) => e);
  const results = JSON.parse(res.stdout || '[]').filter((r) => r.severity <= 1); // 0 error, 1 warning
  assert.deepEqual(results.map((r) => `${r.code}: ${r.message} at ${r.path.join('.')}`), []);
  assert.equal(res.code ?? 0, 0, res.stderr);
});
