'use strict';
// The web client at /app/ in a real browser: Debian's chromium, headless,
// driven by playwright-core. Two browser contexts are two people (one at
// desktop width, one at phone width) who sign up, share a project and watch
// each other's changes arrive live; then the 412 path and a removal.
// Screenshots of the board and the task detail go to TASKAPI_ARTIFACTS
// (default var/test/browser/).
//
// Environment: TASKAPI_URL (required; bin/test sets it), CHROMIUM
// (default /usr/bin/chromium), TASKAPI_ARTIFACTS.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');

const BASE = (process.env.TASKAPI_URL || '').replace(/\/+$/, '');
const ART = process.env.TASKAPI_ARTIFACTS || path.resolve(__dirname, '../../var/test/browser');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const TIMEOUT = 20000; // generous: CI is a loaded 2-core machine

const uniq = `${process.pid}-${Date.now()}`;
const people = {
  ann: { name: 'Ann Archer', email: `ann-${uniq}@example.test`, password: 'correct horse ann' },
  bob: { name: 'Bob Baker', email: `bob-${uniq}@example.test`, password: 'correct horse bob' },
};

describe('web client: two people on one live board', { skip: !BASE && 'TASKAPI_URL is not set' }, () => {
  let browser, ann, bob, projectId, taskId;
  const problems = []; // page errors and CSP violations, from both pages

  async function person(viewport) {
    const ctx = await browser.newContext({ viewport });
    const page = await ctx.newPage();
    page.setDefaultTimeout(TIMEOUT);
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) problems.push(m.text());
    });
    await page.goto(BASE + '/app/');
    await page.locator('body[data-ready="1"]').waitFor();
    return page;
  }

  const card = (page, status, id = taskId) => page.locator(`.column[data-status="${status}"] #task-${id}`);
  const joined = (page) => page.locator(`body[data-joined="project:${projectId}"]`).waitFor();

  before(async () => {
    fs.mkdirSync(ART, { recursive: true });
    browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ARGS });
    ann = await person({ width: 1280, height: 800 });
    bob = await person({ width: 390, height: 844 }); // a phone
  });

  after(async () => {
    await browser?.close();
  });

  it('signs up both people through the sign-up page', async () => {
    for (const [page, p] of [[ann, people.ann], [bob, people.bob]]) {
      await page.getByRole('link', { name: 'Create an account' }).click();
      await page.getByLabel('Name').fill(p.name);
      await page.getByLabel('Email').fill(p.email);
      await page.getByLabel('Password (8 characters or more)').fill(p.password);
      await page.getByRole('button', { name: 'Sign up' }).click();
      await page.getByRole('heading', { name: 'Projects', exact: true }).waitFor();
      assert.equal(await page.locator('#who').textContent(), p.name);
      await page.locator('body[data-live="on"]').waitFor(); // the realtime socket is up
    }
  });

  it('Ann creates a project and invites Bob by email', async () => {
    await ann.getByLabel('Project name').fill('Launch');
    await ann.getByRole('button', { name: 'Create project' }).click();
    await ann.locator('#board-title', { hasText: 'Launch' }).waitFor();
    projectId = ann.url().split('#/projects/')[1];
    assert.match(projectId, /^[0-9a-f-]{36}$/);
    await ann.getByRole('link', { name: 'Settings & members' }).click();
    await ann.getByLabel('Email').fill(people.bob.email);
    await ann.getByRole('button', { name: 'Add member' }).click();
    await ann.locator('table.members td', { hasText: people.bob.email }).waitFor();
    await ann.getByRole('link', { name: '← Board' }).click();
    await joined(ann);

    await bob.reload(); // the session survives a reload (refresh token in sessionStorage)
    await bob.getByRole('link', { name: 'Launch' }).click();
    await joined(bob);
  });

  it('a task Ann creates appears on Bob\'s board live', async () => {
    await ann.getByLabel('New task').fill('Write the launch post');
    await ann.getByRole('button', { name: 'Add task' }).click();
    const created = ann.locator('.column[data-status="todo"] .card', { hasText: 'Write the launch post' });
    await created.waitFor();
    taskId = (await created.getAttribute('id')).slice('task-'.length);
    await card(bob, 'todo').waitFor();
  });

  it('Bob drags the card to In progress; Ann sees it move', async () => {
    await bob.dragAndDrop(`#task-${taskId}`, '.column[data-status="in_progress"]');
    await card(bob, 'in_progress').waitFor();
    await card(ann, 'in_progress').waitFor();
    assert.equal(await card(ann, 'in_progress').getAttribute('data-version'), '2');
  });

  it('Ann moves it with the keyboard (Alt+→); Bob sees it move', async () => {
    await ann.locator(`#task-${taskId}`).focus();
    await ann.keyboard.press('Alt+ArrowRight');
    await card(ann, 'in_review').waitFor();
    await card(bob, 'in_review').waitFor();
    // focus stays on the moved card, so a second press moves it on
    assert.equal(await ann.evaluate(() => document.activeElement?.id), `task-${taskId}`);
  });

  it('two moves at once: the one that lost gets the 412, shown with the fresh card', async () => {
    // Ann's move (In review -> In progress) is held on its way until Bob's
    // (In review -> Done) has landed, so it reaches the server with a stale If-Match.
    let held = false;
    await ann.route(`**/api/v1/tasks/${taskId}`, async (route) => {
      if (route.request().method() !== 'PATCH') return route.continue();
      held = true;
      await bob.locator(`#task-${taskId}`).focus();
      await bob.keyboard.press('Alt+ArrowRight');
      await card(bob, 'done').waitFor();
      await route.continue();
    });
    await ann.locator(`#task-${taskId}`).focus();
    await ann.keyboard.press('Alt+ArrowLeft');
    await ann.locator('#banner', { hasText: 'was changed by someone else' }).waitFor();
    await ann.unroute(`**/api/v1/tasks/${taskId}`);
    assert.ok(held, 'the PATCH went through the hold');
    await card(ann, 'done').locator('.conflict-note', { hasText: 'Changed by someone else' }).waitFor();
    await card(bob, 'done').waitFor(); // Bob's move stands
    assert.equal(await card(ann, 'done').getAttribute('data-version'), '4');
  });

  it('Ann mentions Bob in a comment: Bob\'s bell rings and the comment shows live', async () => {
    await ann.locator(`#task-${taskId} .title`).click();
    await ann.getByRole('dialog').waitFor();
    await ann.getByLabel('Comment (mention someone with @their-email)').fill(`@${people.bob.email} can you review?`);
    await ann.getByRole('button', { name: 'Comment', exact: true }).click();
    await ann.locator('#comments li', { hasText: 'can you review?' }).waitFor();
    await bob.locator('#bell-count', { hasText: '1' }).waitFor();

    await bob.locator(`#task-${taskId} .title`).click();
    const mention = bob.locator('#comments .mention', { hasText: '@' + people.bob.name });
    await mention.waitFor();
    await bob.getByLabel('Comment (mention someone with @their-email)').fill('Looks good to me');
    await bob.getByRole('button', { name: 'Comment', exact: true }).click();
    await ann.locator('#comments li', { hasText: 'Looks good to me' }).waitFor(); // live, dialog open
    await ann.locator('#task-dialog').screenshot({ path: path.join(ART, 'task-detail.png') });
    await bob.getByRole('button', { name: 'Close' }).click();

    await bob.locator('#bell').click();
    await bob.locator('#notif-panel li', { hasText: 'mentioned you' }).waitFor();
    await bob.getByRole('button', { name: 'Mark all as read' }).click();
    await bob.locator('#bell-count', { hasText: '0' }).waitFor();
    await bob.locator('#bell').click();
  });

  it('a stale edit in the task detail gets the 412 path too: "changed by someone else" with the fresh card', async () => {
    // Ann has the detail open and starts editing; Bob moves the card meanwhile.
    await ann.getByLabel('Title').fill('Write the launch post (v2)');
    await bob.locator(`#task-${taskId}`).focus();
    await bob.keyboard.press('Alt+ArrowLeft');
    await card(bob, 'in_review').waitFor();
    await card(ann, 'in_review').waitFor(); // the board behind the dialog is live
    await ann.locator('#detail-note', { hasText: 'Someone else changed this task' }).waitFor();
    await ann.getByRole('button', { name: 'Save' }).click();
    await ann.locator('#detail-note', { hasText: 'Changed by someone else' }).waitFor();
    await ann.locator('#banner', { hasText: 'was changed by someone else' }).waitFor();
    assert.equal(await ann.getByLabel('Status').inputValue(), 'in_review'); // the fresh version
    assert.equal(await ann.getByLabel('Title').inputValue(), 'Write the launch post');
    await ann.locator(`#task-${taskId} .conflict-note`).waitFor();
    await ann.getByRole('button', { name: 'Close' }).click();
    await ann.getByLabel('New task').fill('Plan the demo');
    await ann.getByRole('button', { name: 'Add task' }).click();
    await card(bob, 'todo', await ann.locator('.card', { hasText: 'Plan the demo' }).getAttribute('data-id'))
      .waitFor();
    await ann.screenshot({ path: path.join(ART, 'board.png') });
  });

  it('search shows snippets with only <mark> as markup', async () => {
    await ann.getByLabel('New task').fill('<img src=x onerror=alert(1)> launch checklist');
    await ann.getByRole('button', { name: 'Add task' }).click();
    await ann.locator('.card', { hasText: 'launch checklist' }).waitFor();
    await ann.getByLabel('Search tasks, comments and projects').fill('checklist');
    await ann.keyboard.press('Enter');
    const snippet = ann.locator('.result .snippet', { hasText: 'checklist' }).first();
    await snippet.waitFor();
    assert.ok(await snippet.locator('mark').count() >= 1, 'the hit is marked');
    assert.equal(await snippet.locator('img').count(), 0, 'no element but <mark>');
    assert.match(await snippet.textContent(), /<img src=x/);
    await ann.getByRole('link', { name: /launch checklist/ }).first().click();
    await ann.getByRole('dialog').waitFor();
    await ann.getByRole('button', { name: 'Close' }).click();
  });

  it('a member removed from the project has the board emptied at once', async () => {
    assert.ok(await bob.locator('#board .card').count() >= 2);
    await ann.getByRole('link', { name: 'Settings & members' }).click();
    await ann.getByRole('button', { name: 'Remove ' + people.bob.name }).click();
    await ann.locator('table.members td', { hasText: people.bob.email }).waitFor({ state: 'detached' });
    await bob.locator('#banner', { hasText: 'You were removed from this project' }).waitFor();
    assert.equal(await bob.locator('#board .card').count(), 0);
  });

  it('signs out: the session is gone and the sign-in page shows', async () => {
    await bob.getByRole('button', { name: 'Sign out' }).click();
    await bob.getByRole('heading', { name: 'Sign in', exact: true }).waitFor();
    await bob.reload();
    await bob.getByRole('heading', { name: 'Sign in', exact: true }).waitFor();
    // and signing in again works
    await bob.getByLabel('Email').fill(people.bob.email);
    await bob.getByLabel('Password').fill(people.bob.password);
    await bob.getByRole('button', { name: 'Sign in' }).click();
    await bob.getByRole('heading', { name: 'Projects', exact: true }).waitFor();
  });

  it('raised no page errors and no CSP violations', () => {
    assert.deepEqual(problems, []);
  });
});
