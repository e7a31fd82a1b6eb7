'use strict';
// The links in the verification and password-reset mails open the web
// client's landing pages, which finish the job. Mails go to the server log
// until SMTP lands, so the links are read from TASKAPI_LOG (bin/test sets it).
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { chromium } = require('playwright-core');

const BASE = (process.env.TASKAPI_URL || '').replace(/\/+$/, '');
const LOG = process.env.TASKAPI_LOG;
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const TIMEOUT = 20000;

// The link of the newest mail with `template` to `email`, once it is logged.
async function mailLink(email, template) {
  const re = new RegExp(`to="${email.replace(/[.+]/g, '\\$&')}" template=${template} .*link=(\\S+)`, 'g');
  for (const deadline = Date.now() + TIMEOUT; Date.now() < deadline;) {
    const hits = [...fs.readFileSync(LOG, 'utf8').matchAll(re)];
    if (hits.length) return hits[hits.length - 1][1];
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no ${template} mail to ${email} in ${LOG}`);
}

describe('mail links land on the web client', { skip: (!BASE || !LOG) && 'TASKAPI_URL and TASKAPI_LOG are needed' }, () => {
  let browser, page;
  const email = `mail-${process.pid}-${Date.now()}@example.test`;

  before(async () => {
    browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ARGS });
    page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(TIMEOUT);
  });
  after(async () => { await browser?.close(); });

  it('the verification link verifies the address', async () => {
    const res = await fetch(BASE + '/api/v1/auth/register', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: 'first password', name: 'Mia Mail' }),
    });
    assert.equal(res.status, 201);
    const link = await mailLink(email, 'verify_email');
    assert.ok(link.startsWith(BASE + '/app/#/verify-email?token='), link);
    await page.goto(link);
    await page.getByText('Your email address is verified.').waitFor();
    await page.reload(); // a used token: the page says so
    await page.getByText('This link is invalid or has expired.').waitFor();
  });

  it('the reset link sets a new password', async () => {
    await page.goto(BASE + '/app/#/forgot');
    await page.getByLabel('Email').fill(email);
    await page.getByRole('button', { name: 'Send reset link' }).click();
    await page.getByText('a mail with a reset link is on its way').waitFor();
    const link = await mailLink(email, 'reset_password');
    assert.ok(link.startsWith(BASE + '/app/#/reset-password?token='), link);
    await page.goto(link);
    await page.getByLabel('New password').fill('second password');
    await page.getByRole('button', { name: 'Set password' }).click();
    await page.getByText('Your password was changed').waitFor();
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill('second password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Projects', exact: true }).waitFor();
  });
});
