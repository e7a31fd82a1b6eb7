#!/usr/bin/env node
// Sanity check before the benchmark: both servers, seeded by bench/seed.js,
// answer the benchmarked requests with the same status, the same JSON shape
// (keys and value types, recursively) and the same seeded values (ids and
// timestamps aside), so wrk measures equivalent work on both.
//
//   node bench/check.js SEED-A.json SEED-B.json
//
// Prints one line per check and the differences; exits 1 if any.
// Writes one task on each server (POST then PATCH, the same on both).
'use strict';
const fs = require('fs');

const [fa, fb] = process.argv.slice(2);
if (!fa || !fb) {
  console.error('usage: node bench/check.js SEED-A.json SEED-B.json');
  process.exit(2);
}
const A = JSON.parse(fs.readFileSync(fa, 'utf8'));
const B = JSON.parse(fs.readFileSync(fb, 'utf8'));
let failures = 0;

async function get(seed, method, path, body) {
  const headers = { authorization: `Bearer ${seed.token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(seed.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch (_) { /* reported as a shape difference */ }
  return { status: res.status, json, etag: res.headers.get('etag'), bytes: Buffer.byteLength(text) };
}

const kind = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

// Shape of a JSON value: keys and types; arrays by the shape of their first item.
function shape(v) {
  if (Array.isArray(v)) return v.length ? [shape(v[0])] : [];
  if (v && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v).sort()) o[k] = shape(v[k]);
    return o;
  }
  return kind(v);
}

// Differences between two shapes, as "path: a vs b" strings. null and another
// type are compatible (a nullable field that happens to be null in one).
function diff(a, b, path = '$') {
  const out = [];
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length && b.length) out.push(...diff(a[0], b[0], `${path}[0]`));
    return out;
  }
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (!(k in a)) out.push(`${path}.${k}: missing in A`);
      else if (!(k in b)) out.push(`${path}.${k}: missing in B`);
      else out.push(...diff(a[k], b[k], `${path}.${k}`));
    }
    return out;
  }
  const ka = Array.isArray(a) ? 'array' : typeof a === 'object' ? 'object' : a;
  const kb = Array.isArray(b) ? 'array' : typeof b === 'object' ? 'object' : b;
  if (ka !== kb && ka !== 'null' && kb !== 'null') out.push(`${path}: ${ka} vs ${kb}`);
  return out;
}

function report(name, problems, note = '') {
  if (problems.length) {
    failures++;
    console.log(`  DIFF ${name}`);
    for (const p of problems) console.log(`       ${p}`);
  } else {
    console.log(`  same ${name}${note ? ` (${note})` : ''}`);
  }
}

// Compares one request on both servers: status, shape, plus extra checks.
async function compare(name, pathOf, { method = 'GET', body, values } = {}) {
  const ra = await get(A, method, pathOf(A), body);
  const rb = await get(B, method, pathOf(B), body);
  const problems = [];
  if (ra.status !== rb.status) problems.push(`status ${ra.status} vs ${rb.status}`);
  if (ra.status >= 300) problems.push(`status ${ra.status} (A) is not a success`);
  problems.push(...diff(shape(ra.json), shape(rb.json)));
  if (values) problems.push(...values(ra, rb));
  report(name, problems, `status ${ra.status}, ${ra.bytes} vs ${rb.bytes} body bytes`);
  return [ra, rb];
}

// The seeded fields of a task that must be equal on both servers.
const SEEDED = ['title', 'description', 'status', 'priority', 'tags', 'dueDate', 'version'];
function sameTask(ta, tb, seedA, seedB) {
  const out = [];
  for (const f of SEEDED) {
    if (JSON.stringify(ta[f]) !== JSON.stringify(tb[f])) out.push(`${f}: ${JSON.stringify(ta[f])} vs ${JSON.stringify(tb[f])}`);
  }
  if ((ta.completedAt === null) !== (tb.completedAt === null)) out.push('completedAt: null in one only');
  const who = (seed, id) => Object.keys(seed.members).find((k) => seed.members[k] === id) || id;
  if (who(seedA, ta.assigneeId) !== who(seedB, tb.assigneeId)) out.push(`assignee ${who(seedA, ta.assigneeId)} vs ${who(seedB, tb.assigneeId)}`);
  return out;
}

async function main() {
  console.log(`sanity check: A = ${A.base}, B = ${B.base}`);
  await compare('GET /health/live', () => '/health/live');
  await compare('GET /api/v1/auth/me', () => '/api/v1/auth/me', {
    values: (a, b) => (a.json.data.email === b.json.data.email ? [] : ['email differs']),
  });
  for (const i of [0, 1, 3, 500, 999]) {
    await compare(`GET /api/v1/tasks/:id (seeded task ${i})`, (s) => `/api/v1/tasks/${s.taskIds[i]}`, {
      values: (a, b) => [
        ...sameTask(a.json.data, b.json.data, A, B),
        ...(a.etag && b.etag ? [] : [`ETag ${a.etag} vs ${b.etag}`]),
      ],
    });
  }
  await compare('GET /api/v1/tasks?projectId&limit=20', (s) => `/api/v1/tasks?projectId=${s.projectId}&limit=20`, {
    values: (a, b) => {
      const out = [];
      if (a.json.data.length !== 20 || b.json.data.length !== 20) out.push(`items ${a.json.data.length} vs ${b.json.data.length}`);
      if (!a.json.meta.nextCursor || !b.json.meta.nextCursor) out.push('nextCursor missing');
      return out;
    },
  });
  // Walk every page: the same number of tasks and the same set of titles.
  const titles = [];
  for (const s of [A, B]) {
    const seen = [];
    let cursor = null;
    do {
      const r = await get(s, 'GET', `/api/v1/tasks?projectId=${s.projectId}&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      if (r.status !== 200) throw new Error(`${s.base}: list page answered ${r.status}`);
      for (const t of r.json.data) seen.push(t.title);
      cursor = r.json.meta.nextCursor;
    } while (cursor);
    titles.push(seen.sort());
  }
  report('all pages of GET /api/v1/tasks?projectId', JSON.stringify(titles[0]) === JSON.stringify(titles[1])
    ? [] : [`${titles[0].length} vs ${titles[1].length} tasks, or different titles`], `${titles[0].length} tasks each`);

  await compare(`GET /api/v1/search?q=${A.searchQuery}`, (s) => `/api/v1/search?q=${s.searchQuery}`, {
    values: (a, b) => {
      const out = [];
      if (a.json.data.length !== b.json.data.length) out.push(`hits ${a.json.data.length} vs ${b.json.data.length}`);
      const types = (r) => r.json.data.map((h) => h.type).sort().join(',');
      if (types(a) !== types(b)) out.push(`hit types ${types(a)} vs ${types(b)}`);
      if (!a.json.data.every((h) => h.snippet.includes('<mark>')) || !b.json.data.every((h) => h.snippet.includes('<mark>'))) {
        out.push('a snippet without <mark>');
      }
      return out;
    },
  });
  // Total hits: walk the search pages (limit 100).
  const totals = [];
  for (const s of [A, B]) {
    let n = 0;
    let cursor = null;
    do {
      const r = await get(s, 'GET', `/api/v1/search?q=${s.searchQuery}&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      if (r.status !== 200) throw new Error(`${s.base}: search page answered ${r.status}`);
      n += r.json.data.length;
      cursor = r.json.meta.nextCursor;
    } while (cursor);
    totals.push(n);
  }
  report(`all search hits for q=${A.searchQuery}`, totals[0] === totals[1] ? [] : [`${totals[0]} vs ${totals[1]}`], `${totals[0]} hits each`);

  const post = { title: 'sanity write', description: 'created by bench/check.js', priority: 'high', tags: ['bench', 'load'] };
  const [ca, cb] = await compare('POST /api/v1/projects/:id/tasks', (s) => `/api/v1/projects/${s.projectId}/tasks`, {
    method: 'POST', body: post,
  });
  const ids = new Map([[A, ca.json.data.id], [B, cb.json.data.id]]);
  await compare('PATCH /api/v1/tasks/:id (no If-Match)', (s) => `/api/v1/tasks/${ids.get(s)}`, {
    method: 'PATCH',
    body: { title: 'sanity write, patched' },
    values: (a, b) => (a.json.data.version === 2 && b.json.data.version === 2 ? [] : ['version after PATCH is not 2']),
  });
  await compare('DELETE the written task', (s) => `/api/v1/tasks/${ids.get(s)}`, { method: 'DELETE' });

  console.log(failures ? `sanity check: ${failures} difference(s)` : 'sanity check: both servers answer the same shapes and data');
  process.exit(failures ? 1 : 0);
}

main().catch((err) => {
  console.error(`check: ${err.message}`);
  process.exit(1);
});
