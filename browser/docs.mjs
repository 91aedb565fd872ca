// Opens the API reference page in Debian's chromium and checks what a reader sees.
//
//   node docs.mjs <page url> <operations.json> <screenshot.png>
//
// operations.json lists the description's operations ({operationId, summary, method, path}),
// written by the Go test that runs this (cmd/api TestDocsPageInBrowser). The page must load
// with no console error, no failed request and no request to another origin, and show every
// operation under its summary. Prints one JSON line of what it found; exits 1 on a failure.
import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [pageURL, opsFile, screenshot] = process.argv.slice(2);
if (!screenshot) {
  console.error('usage: node docs.mjs <page url> <operations.json> <screenshot.png>');
  process.exit(2);
}
const operations = JSON.parse(readFileSync(opsFile, 'utf8'));
const origin = new URL(pageURL).origin;
const problems = [];

// A fresh profile each run: nothing cached or remembered from an earlier one.
const profile = mkdtempSync(join(tmpdir(), 'saasbase-docs-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  viewport: { width: 1280, height: 900 },
});
try {
  const page = context.pages()[0] ?? await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
  page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`));
  page.on('request', (req) => {
    const u = req.url();
    if (!u.startsWith(origin + '/') && !u.startsWith('data:') && !u.startsWith('blob:')) {
      problems.push(`request to another origin: ${u}`);
    }
  });
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`${res.status()} for ${res.url()}`);
  });

  const res = await page.goto(pageURL, { waitUntil: 'load', timeout: 60000 });
  if (!res || res.status() !== 200) problems.push(`GET ${pageURL}: ${res?.status()}`);
  // Redoc replaces its loading state with the rendered description once it has parsed it.
  await page.waitForSelector('.api-content h1', { timeout: 90000 });

  // Every operation: Redoc gives its section the id operation/<operationId> and its heading
  // the summary; the side menu lists the same summaries.
  const shown = await page.evaluate((ops) => ops.map((op) => {
    const section = document.getElementById(`operation/${op.operationId}`);
    const heading = section?.querySelector('h2')?.textContent?.trim() ?? null;
    const inMenu = [...document.querySelectorAll('.menu-content li[data-item-id]')]
      .some((li) => li.getAttribute('data-item-id').endsWith(`/operation/${op.operationId}`));
    return { ...op, heading, inMenu };
  }), operations);
  for (const op of shown) {
    if (op.heading === null) problems.push(`${op.method} ${op.path} (${op.operationId}) is not on the page`);
    else if (op.heading !== op.summary) problems.push(`${op.operationId}: heading "${op.heading}", want "${op.summary}"`);
    if (!op.inMenu) problems.push(`${op.operationId} is not in the side menu`);
  }
  const title = await page.locator('.api-content h1').first().textContent();
  await page.screenshot({ path: screenshot });
  console.log(JSON.stringify({ title, operations: shown.length, shown: shown.filter((o) => o.heading === o.summary).length, problems }));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(problems.length === 0 ? 0 : 1);
