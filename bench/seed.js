#!/usr/bin/env node
// Seeds one server with the benchmark data set, through its public API only,
// so that taskapi and the Express peer hold the same data (same users, project,
// members, tasks, comments; only ids and timestamps differ).
//
//   node bench/seed.js BASE_URL OUT.json [TASKS]
//
// BASE_URL is the server root (http://127.0.0.1:18900). The rate limits of the
// server must be raised (RATE_LIMIT_PER_MIN, AUTH_RATE_LIMIT_PER_MIN). Writes
// OUT.json ({base, token, userId, projectId, taskIds, members, searchQuery})
// and OUT.json's name with `.ids` instead of `.json` (one task id a line, for
// the wrk scripts). Exits 1 on the first unexpected answer.
'use strict';
const fs = require('fs');

const [base, out, tasksArg] = process.argv.slice(2);
if (!base || !out) {
  console.error('usage: node bench/seed.js BASE_URL OUT.json [TASKS]');
  process.exit(2);
}
const TASKS = Number(tasksArg || 1000);
const CONCURRENCY = 8;
const PASSWORD = 'bench password 0123';
const SEARCH_QUERY = 'migration'; // in 1 task subject of 10, and in comments

// ---- deterministic content ------------------------------------------------
const SUBJECTS = ['login page', 'database migration', 'search index', 'billing report', 'email template',
  'mobile layout', 'cache layer', 'api client', 'user settings', 'audit log'];
const VERBS = ['fix', 'refactor', 'document', 'test', 'review', 'optimize', 'design', 'deploy'];
const WORDS = ['the', 'a', 'quickly', 'customer', 'server', 'query', 'timeout', 'release', 'screen', 'button',
  'invoice', 'token', 'session', 'latency', 'memory', 'report', 'export', 'import', 'retry', 'queue', 'worker',
  'sprint', 'backlog', 'regression', 'incident', 'feedback', 'draft', 'schema', 'index', 'metric'];
const TAGS = ['backend', 'frontend', 'bug', 'feature', 'ops', 'docs', 'ux', 'security'];
const STATUSES = ['todo', 'in_progress', 'in_review', 'done', 'todo', 'cancelled', 'todo'];
const PRIORITIES = ['low', 'medium', 'high', 'urgent', 'medium'];

let seed = 42;
function rnd(n) { // 32-bit LCG (exact integer arithmetic): the same sequence for every server
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return (seed >>> 16) % n;
}
function sentence(words) {
  const w = [];
  for (let i = 0; i < words; i++) w.push(WORDS[rnd(WORDS.length)]);
  return w.join(' ');
}

function taskBody(i, assignees) {
  const subject = SUBJECTS[i % SUBJECTS.length];
  const tags = [];
  const ntags = rnd(4);
  for (let k = 0; k < ntags; k++) {
    const t = TAGS[rnd(TAGS.length)];
    if (!tags.includes(t)) tags.push(t);
  }
  const body = {
    title: `${VERBS[i % VERBS.length]} ${subject} #${i}`,
    description: `${sentence(12)} ${subject}. ${sentence(20)}.`,
    status: STATUSES[i % STATUSES.length],
    priority: PRIORITIES[i % PRIORITIES.length],
    tags,
    assigneeId: i % 4 === 3 ? null : assignees[i % assignees.length],
  };
  if (i % 3 === 0) body.dueDate = `2027-${String(1 + (i % 12)).padStart(2, '0')}-${String(1 + (i % 28)).padStart(2, '0')}`;
  return body;
}

// ---- HTTP -------------------------------------------------------------------
async function call(method, path, { token, body, expect }) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (res.status !== expect) {
    throw new Error(`${method} ${path}: expected ${expect}, got ${res.status}: ${text.slice(0, 300)}`);
  }
  return text ? JSON.parse(text) : null;
}

async function pool(n, fn) { // runs fn(0..n-1), CONCURRENCY at a time
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      await fn(i);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

async function main() {
  const people = [
    { key: 'owner', email: 'bench-owner@example.com', name: 'Bench Owner' },
    { key: 'alice', email: 'alice@example.com', name: 'Alice Member', role: 'member' },
    { key: 'bob', email: 'bob@example.com', name: 'Bob Admin', role: 'admin' },
    { key: 'carol', email: 'carol@example.com', name: 'Carol Viewer', role: 'viewer' },
  ];
  const members = {};
  for (const p of people) {
    const r = await call('POST', '/api/v1/auth/register', { body: { email: p.email, password: PASSWORD, name: p.name }, expect: 201 });
    members[p.key] = r.data.user.id;
  }
  const login = await call('POST', '/api/v1/auth/login', { body: { email: people[0].email, password: PASSWORD }, expect: 200 });
  const token = login.data.accessToken;

  const project = await call('POST', '/api/v1/projects', {
    token,
    body: { name: 'Benchmark project', description: 'Seeded by bench/seed.js', visibility: 'private' },
    expect: 201,
  });
  const projectId = project.data.id;
  for (const p of people.slice(1)) {
    await call('POST', `/api/v1/projects/${projectId}/members`, { token, body: { email: p.email, role: p.role }, expect: 201 });
  }

  const assignees = [members.owner, members.alice, members.bob];
  const bodies = [];
  for (let i = 0; i < TASKS; i++) bodies.push(taskBody(i, assignees));
  const taskIds = new Array(TASKS);
  await pool(TASKS, async (i) => {
    const r = await call('POST', `/api/v1/projects/${projectId}/tasks`, { token, body: bodies[i], expect: 201 });
    taskIds[i] = r.data.id;
  });

  // Comments: one on every other task, a second one with a mention on every 10th.
  const comments = [];
  for (let i = 0; i < TASKS; i += 2) {
    comments.push({ task: i, content: `Looked at the ${SUBJECTS[(i / 2) % SUBJECTS.length]}: ${sentence(15)}.` });
    if (i % 10 === 0) comments.push({ task: i, content: `@alice@example.com please check the ${SUBJECTS[i % SUBJECTS.length]} part.` });
  }
  await pool(comments.length, async (k) => {
    const c = comments[k];
    await call('POST', `/api/v1/tasks/${taskIds[c.task]}/comments`, { token, body: { content: c.content }, expect: 201 });
  });

  const result = { base, token, userId: members.owner, projectId, members, taskIds, comments: comments.length, searchQuery: SEARCH_QUERY };
  fs.writeFileSync(out, JSON.stringify(result, null, 1));
  fs.writeFileSync(out.replace(/\.json$/, '') + '.ids', taskIds.join('\n') + '\n');
  console.log(`seeded ${base}: 4 users, 1 project, ${TASKS} tasks, ${comments.length} comments`);
}

main().catch((err) => {
  console.error(`seed: ${err.message}`);
  process.exit(1);
});
