'use strict';
// The links in the verification and password-reset mails open the web
// client's landing pages, which finish the job. The test server has no
// SMTP_URL, so each mail is an .eml file in TASKAPI_MAIL_DIR (bin/test sets
// it); the links are read from there, never from the log.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { chromium } = require('playwright-core');

const BASE = (process.env.TASKAPI_URL || '').replace(/\/+$/, '');
const MAIL_DIR = process.env.TASKAPI_MAIL_DIR;
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const TIMEOUT = 20000;

// Quoted-printable (RFC 2045) to text: soft line breaks and =XX escapes.
const unQP = (s) => s.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));

// The link to `path` (e.g. "/app/#/verify-email?token=") in the newest mail
// to `email`, once its .eml file is written.
async function mailLink(email, path) {
  const esc = (s) => s.replace(/[.*+?^${}()|[\]\\#/]/g, '\\$&');
  const re = new RegExp(`https?://[^\\s"<]*${esc(path)}[\\w-]+`);
  for (const deadline = Date.now() + TIMEOUT; Date.now() < deadline;) {
    const names = fs.existsSync(MAIL_DIR) ? fs.readdirSync(MAIL_DIR) : [];
    const mails = names.filter((f) => f.endsWith('.eml'))
      .map((f) => fs.readFileSync(`${MAIL_DIR}/${f}`, 'utf8'))
      .filter((m) => m.includes(`To: ${email}`) || m.includes(`<${email}>`))
      // The raw text first: decoding a 7bit body as quoted-printable turns
      // "token=24qc..." into "token$qc..." (a token starting with two hex
      // digits, about one in sixteen, made this spec fail now and then).
      .map((m) => m.match(re) || (/quoted-printable/i.test(m) && unQP(m).match(re))).filter(Boolean);
    if (mails.length) return mails[mails.length - 1][0];
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no mail with ${path} to ${email} in ${MAIL_DIR}\n${serverLogAbout(email)}`);
}

// When a mail does not come: what the server log (TASKAPI_LOG) says about the
// recipient and the job runner, so a failed run explains itself.
function serverLogAbout(email) {
  const log = process.env.TASKAPI_LOG;
  if (!log || !fs.existsSync(log)) return '(no TASKAPI_LOG to show)';
  const lines = fs.readFileSync(log, 'utf8').split('\n')
    .filter((l) => l.includes(email) || /jobs:|mail:|forgot-password/.test(l));
  return `server log, ${lines.length} lines about the mail or jobs (last 40):\n` + lines.slice(-40).join('\n');
}

describe('mail links land on the web client', { skip: (!BASE || !MAIL_DIR) && 'TASKAPI_URL and TASKAPI_MAIL_DIR are needed' }, () => {
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
    const link = await mailLink(email, '/app/#/verify-email?token=');
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
    const link = await mailLink(email, '/app/#/reset-password?token=');
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
