// End-to-end test of the wa-server dashboard in headless Chromium (playwright-core).
//
//   node run.mjs <base-url> <app-token> <screenshot-dir>
//
// or the environment: WA_BASE_URL, WA_APP_TOKEN, WA_SCREENSHOT_DIR; WA_TEST_CHROMIUM names the
// Chromium binary (default /usr/bin/chromium). The server must run the sandbox provider
// (WA_PROVIDER=sandbox): the QR is "scanned" through its /sandbox route. Every request of the
// page must stay on the server's origin; anything else fails the test.
//
// Exit code 0 when every step passed; 1 with the failing step, a screenshot `failure.png`
// and the page's console otherwise.

import { mkdirSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [argBase, argToken, argShots] = process.argv.slice(2);
const base = (argBase || process.env.WA_BASE_URL || '').replace(/\/+$/, '');
const token = argToken || process.env.WA_APP_TOKEN || '';
const shots = argShots || process.env.WA_SCREENSHOT_DIR || path.resolve('screenshots');
const executablePath = process.env.WA_TEST_CHROMIUM || '/usr/bin/chromium';
const STEP_TIMEOUT = 20_000;
const TOTAL_TIMEOUT = 180_000;

function usage(msg) {
  console.error(`dashboard e2e: ${msg}\nusage: node run.mjs <base-url> <app-token> <screenshot-dir>`);
  process.exit(2);
}
if (!base) usage('the server base URL is missing (argument 1 or WA_BASE_URL)');
if (!token) usage('the App token is missing (argument 2 or WA_APP_TOKEN)');
if (!existsSync(executablePath)) {
  usage(`Chromium not found at ${executablePath}: apt-get install chromium, or set WA_TEST_CHROMIUM`);
}
mkdirSync(shots, { recursive: true });

const origin = new URL(base).origin;
const consoleLines = [];
const problems = [];
let shotNo = 0;
let currentStep = 'start';

const log = (msg) => console.log(`[dashboard e2e] ${msg}`);

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

/** Calls the server from node (the sandbox's control routes). */
async function serverCall(method, p, body) {
  const res = await fetch(`${base}${p}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch (_) { json = null; }
  return { status: res.status, json, text };
}

const watchdog = setTimeout(() => {
  console.error(`[dashboard e2e] FAILED: the whole run took over ${TOTAL_TIMEOUT / 1000} s (step: ${currentStep})`);
  process.exit(1);
}, TOTAL_TIMEOUT);

const userDataDir = mkdtempSync(path.join(tmpdir(), 'wa-dashboard-chromium-'));
let context;
let page;

async function shot(name) {
  shotNo += 1;
  const file = path.join(shots, `${String(shotNo).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log(`  screenshot ${file}`);
}

async function step(name, fn) {
  currentStep = name;
  log(`step: ${name}`);
  await fn();
}

/** The text of an element, once it matches `re`. */
async function waitText(locator, re, what) {
  try {
    await locator.filter({ hasText: re }).first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  } catch (e) {
    const now = (await locator.count()) ? await locator.first().innerText().catch(() => '?') : '(absent)';
    throw new Error(`${what}: expected ${re}, shows ${JSON.stringify(now)}`);
  }
  return locator.first().innerText();
}

async function waitStatus(status) {
  const el = page.getByTestId('device-status');
  try {
    await page.locator(`[data-testid="device-status"][data-status="${status}"]`)
      .waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  } catch (e) {
    throw new Error(`the device never showed status ${status} (shows ${JSON.stringify(await el.innerText().catch(() => '?'))})`);
  }
}

/** The error box `testid` shows `code` and a request id; returns the request id shown. */
async function expectError(testid, code) {
  const box = page.getByTestId(testid);
  await box.waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  const shown = await box.getByTestId('error-code').innerText();
  assert(shown === code, `${testid} shows code ${JSON.stringify(shown)}, expected ${code}`);
  const message = await box.getByTestId('error-message').innerText();
  assert(message.trim().length > 0, `${testid} shows no message`);
  const rid = (await box.getByTestId('error-request-id').innerText()).trim();
  assert(/^[A-Za-z0-9._:-]{1,128}$/.test(rid), `${testid} shows no request_id (${JSON.stringify(rid)})`);
  return { rid, message };
}

async function main() {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1360, height: 900 },
    deviceScaleFactor: 1,
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  context.setDefaultTimeout(STEP_TIMEOUT);
  // Nothing leaves the machine: every request of the page goes to the server under test.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/`) || url.startsWith('data:')) return route.continue();
    problems.push(`request outside the server: ${url}`);
    return route.abort();
  });
  page = context.pages()[0] || await context.newPage();
  page.on('console', (msg) => {
    const line = `${msg.type()}: ${msg.text()}`;
    consoleLines.push(line);
    // Error answers of the API log "Failed to load resource"; anything else (CSP violation,
    // script error) is a defect.
    if (msg.type() === 'error' && !/Failed to load resource: the server responded with a status of/.test(msg.text())) {
      problems.push(`console ${line}`);
    }
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));

  await step('open the dashboard', async () => {
    const res = await page.goto(`${base}/`);
    assert(res && res.status() === 200, `GET / answered ${res && res.status()}`);
    const csp = res.headers()['content-security-policy'] || '';
    assert(csp.includes("script-src 'self'"), `GET / has no CSP: ${JSON.stringify(csp)}`);
    await page.getByLabel('App token', { exact: true }).waitFor({ state: 'visible' });
    assert((await page.title()).includes('wa-server'), 'the page title names wa-server');
    await shot('sign-in');
  });

  await step('a wrong token shows invalid_api_key with its request_id', async () => {
    await page.getByLabel('App token', { exact: true }).fill('wa_not-a-real-token');
    await page.getByTestId('sign-in').click();
    await expectError('signin-error', 'invalid_api_key');
    assert(await page.getByTestId('device-list').isHidden(), 'signed in with a wrong token');
    await shot('sign-in-error');
  });

  await step('sign in with the App token', async () => {
    await page.getByLabel('App token', { exact: true }).fill(token);
    await page.getByTestId('sign-in').click();
    await page.getByTestId('device-list').waitFor({ state: 'attached' });
    await page.locator('#app-view').waitFor({ state: 'visible' });
    const stored = await page.evaluate(() => Object.values(sessionStorage));
    assert(stored.includes(token), 'the token is kept in sessionStorage');
    await shot('signed-in');
  });

  let deviceId;
  await step('create a device and show its QR', async () => {
    await page.getByLabel('New device', { exact: true }).fill('Dashboard e2e');
    await page.getByTestId('create-device').click();
    await waitText(page.getByTestId('device-title'), /Dashboard e2e/, 'device title');
    await waitStatus('qr_generated');
    deviceId = (await page.getByTestId('device-id').innerText()).trim();
    assert(/^[0-9a-f-]{36}$/.test(deviceId), `device id on the page: ${JSON.stringify(deviceId)}`);
    const qr = page.getByTestId('qr-image');
    await qr.waitFor({ state: 'visible' });
    const src = await qr.getAttribute('src');
    assert(src && src.startsWith('data:image/png;base64,'), 'the QR is a PNG data URL');
    const loaded = await qr.evaluate((img) => img.complete && img.naturalWidth > 0);
    assert(loaded, 'the QR image is rendered');
    await waitText(page.getByTestId('qr-countdown'), /Expires in \d+/, 'QR countdown');
    await page.locator(`[data-testid="device-item"][data-device-id="${deviceId}"]`).waitFor();
    await shot('device-qr');
  });

  await step('scan the QR through the sandbox; the device turns connected on screen', async () => {
    const r = await serverCall('POST', `/sandbox/devices/${deviceId}/scan`, { wa_number: '15551230001' });
    assert(r.status === 200, `sandbox scan answered ${r.status}: ${r.text}`);
    await waitStatus('connected');
    await page.locator(`[data-testid="device-item"][data-device-id="${deviceId}"][data-status="connected"]`).waitFor();
    await waitText(page.getByTestId('device-number'), /\+15551230001/, 'WhatsApp number');
    assert(await page.locator('#link-panel').isHidden(), 'the QR is hidden once connected');
    await shot('device-connected');
  });

  await step('send a text message; it is listed as sent', async () => {
    const text = 'Hello from the dashboard e2e test';
    await page.getByLabel('Recipient', { exact: true }).fill('+15550001111');
    await page.getByLabel('Type', { exact: true }).selectOption('text');
    await page.getByLabel('Text', { exact: true }).fill(text);
    await page.getByTestId('send-submit').click();
    await page.getByTestId('send-result').waitFor({ state: 'visible' });
    const id = (await page.getByTestId('sent-message-id').innerText()).trim();
    assert(id.length > 0, 'the sent message id is shown');
    const row = page.locator(`[data-testid="message-row"][data-message-id="${id}"]`);
    await row.waitFor({ state: 'visible' });
    await waitText(row.getByTestId('message-status'), /^sent$|^delivered$|^read$/, 'message status');
    assert((await row.getAttribute('data-status')) === 'sent', 'the message is sent');
    assert((await row.innerText()).includes(text), 'the row shows the text');
    assert((await row.getAttribute('data-direction')) === 'outbound', 'the row is outbound');
    await shot('message-sent');
  });

  await step('a received message is marked read, reacted to and replied to from its row', async () => {
    const r = await serverCall('POST', `/sandbox/devices/${deviceId}/inbound`, { from: '15550001111', text: 'Ping from a peer' });
    assert(r.status === 200, `sandbox inbound answered ${r.status}: ${r.text}`);
    const id = JSON.parse(r.text).data.message.message_id;
    const row = () => page.locator(`[data-testid="message-row"][data-message-id="${id}"]`);
    await row().waitFor({ state: 'visible', timeout: 30_000 });
    assert((await row().getAttribute('data-direction')) === 'inbound', 'the row is inbound');
    await row().getByTestId('mark-read').click();
    await page.locator(`[data-testid="message-row"][data-message-id="${id}"][data-status="read"]`).waitFor();
    assert(await row().getByTestId('mark-read').count() === 0, 'no second mark read');
    await row().getByTestId('react').click();
    const reacted = async () => JSON.parse((await serverCall('GET', `/sandbox/devices/${deviceId}/sent`)).text)
      .data.sent.some((s) => s.type === 'reaction' && s.target_message_id === id);
    for (let i = 0; !(await reacted()); i += 1) {
      assert(i < 100, 'the reaction never reached WhatsApp');
      await new Promise((done) => setTimeout(done, 100));
    }
    await row().getByTestId('reply').click();
    await waitText(page.getByTestId('send-reply-id'), new RegExp(id), 'the quoted message');
    await page.getByLabel('Type', { exact: true }).selectOption('text');
    await page.getByLabel('Text', { exact: true }).fill('Pong');
    await page.getByTestId('send-submit').click();
    await page.getByTestId('send-result').waitFor({ state: 'visible' });
    assert(await page.getByTestId('send-reply').isHidden(), 'the quote is cleared after the send');
    const sent = JSON.parse((await serverCall('GET', `/sandbox/devices/${deviceId}/sent`)).text).data.sent;
    const kinds = sent.filter((s) => s.target_message_id === id || (s.reply_to && s.reply_to.message_id === id)).map((s) => s.type);
    assert(JSON.stringify(kinds) === JSON.stringify(['read', 'reaction', 'text']), `WhatsApp received ${JSON.stringify(kinds)}`);
    assert(await page.getByTestId('messages-error').isHidden(), 'no error shown');
    await shot('message-actions');
  });

  await step("a group's members are listed with their roles", async () => {
    await page.getByTestId('load-groups').click();
    const team = page.locator('[data-testid="group"][data-jid="120363000000000001@g.us"]');
    await team.waitFor({ state: 'visible', timeout: 30_000 });
    await team.click();
    const members = page.getByTestId('group-member');
    await members.first().waitFor({ state: 'visible' });
    assert(await members.count() === 3, `the group lists ${await members.count()} members`);
    assert((await members.first().getAttribute('data-role')) === 'creator', 'the device created it');
    await waitText(page.getByTestId('group-subject'), /Sandbox team \(3\)/, 'the group subject');
    assert(await page.getByTestId('groups-error').isHidden(), 'no error shown');
    await shot('group-members');
  });

  await step('an invalid recipient shows validation_error with the request_id', async () => {
    await page.getByLabel('Recipient', { exact: true }).fill('not-a-number');
    const answer = page.waitForResponse((r) => r.url().endsWith(`/devices/${deviceId}/messages`)
      && r.request().method() === 'POST');
    await page.getByTestId('send-submit').click();
    const res = await answer;
    assert(res.status() === 400, `the invalid send answered ${res.status()}`);
    const { rid } = await expectError('send-error', 'validation_error');
    assert(rid === res.headers()['x-request-id'], `the page shows request_id ${rid}, the server sent ${res.headers()['x-request-id']}`);
    const body = await res.json();
    assert(body.request_id === rid, 'the request_id shown is the envelope\'s');
    await waitText(page.getByTestId('send-error'), /field: to/, 'error details');
    assert((await page.getByLabel('Recipient', { exact: true }).getAttribute('aria-invalid')) === 'true', 'the recipient field is marked invalid');
    assert(await page.getByTestId('send-result').isHidden(), 'no success shown with an error');
    await shot('send-error');
  });

  await step('webhook deliveries are listed; a failed or skipped one is replayed', async () => {
    const replay = page.locator('[data-testid="delivery-row"]:has([data-testid="replay"])');
    await replay.first().waitFor({ state: 'visible', timeout: 30_000 });
    const id = await replay.first().getAttribute('data-delivery-id');
    const before = await replay.first().getAttribute('data-status');
    await page.locator(`[data-testid="delivery-row"][data-delivery-id="${id}"] [data-testid="replay"]`).click();
    await page.getByTestId('deliveries-result').waitFor({ state: 'visible' });
    assert(await page.getByTestId('deliveries-error').isHidden(), 'replay showed an error');
    await waitText(page.getByTestId('deliveries-result'), new RegExp(id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'replay result');
    log(`  replayed delivery ${id} (was ${before})`);
    await shot('deliveries');
  });

  await step('disconnect and reconnect the device', async () => {
    await page.getByTestId('disconnect').click();
    await waitStatus('disconnected');
    await page.getByTestId('reconnect').waitFor({ state: 'visible' });
    await page.locator('[data-testid="reconnect"]:enabled').waitFor();
    await page.getByTestId('reconnect').click();
    await waitStatus('connected');
  });

  await step('link another device by pair code', async () => {
    await page.getByLabel('New device', { exact: true }).fill('Pair by code');
    await page.getByTestId('create-device').click();
    await waitText(page.getByTestId('device-title'), /Pair by code/, 'device title');
    await page.getByLabel('Phone number of the WhatsApp account', { exact: true }).fill('+15551230002');
    await page.getByTestId('pair-submit').click();
    const pairBox = page.getByTestId('pair-error');
    const code = page.getByTestId('pair-code');
    await Promise.race([
      code.waitFor({ state: 'visible' }),
      pairBox.waitFor({ state: 'visible' }).then(async () => {
        throw new Error(`pair code refused: ${await pairBox.innerText()}`);
      }),
    ]);
    assert((await code.innerText()).trim().length >= 4, 'a pair code is shown');
    await waitText(page.getByTestId('pair-expiry'), /valid for/, 'pair code expiry');
    await shot('pair-code');
  });

  await step('destroy the device after confirming', async () => {
    let asked = '';
    page.once('dialog', (d) => { asked = d.message(); d.accept(); });
    await page.getByTestId('destroy').click();
    await waitStatus('destroyed');
    assert(asked.includes('Pair by code'), `the confirmation names the device: ${JSON.stringify(asked)}`);
    assert(await page.getByTestId('destroy').isDisabled(), 'a destroyed device has no actions');
    await shot('device-destroyed');
  });

  await step('sign out', async () => {
    await page.getByTestId('sign-out').click();
    await page.getByLabel('App token', { exact: true }).waitFor({ state: 'visible' });
    const stored = await page.evaluate(() => Object.values(sessionStorage));
    assert(!stored.includes(token), 'sign-out forgets the token');
  });

  assert(problems.length === 0, `the page had problems:\n  ${problems.join('\n  ')}`);
}

let failed = false;
try {
  await main();
  log(`all steps passed; screenshots in ${shots}`);
} catch (e) {
  failed = true;
  console.error(`[dashboard e2e] FAILED at step "${currentStep}": ${e && e.message ? e.message : e}`);
  if (page) {
    const file = path.join(shots, 'failure.png');
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    console.error(`[dashboard e2e] screenshot of the failure: ${file}`);
  }
  if (problems.length) console.error(`[dashboard e2e] page problems:\n  ${problems.join('\n  ')}`);
  if (consoleLines.length) console.error(`[dashboard e2e] page console:\n  ${consoleLines.join('\n  ')}`);
} finally {
  clearTimeout(watchdog);
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
