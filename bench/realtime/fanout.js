#!/usr/bin/env node
// Realtime benchmark of one running taskapi through its Socket.IO endpoint
// (API.md §8): fan-out latency to many subscribers, memory per idle
// connection, and a soak. bench/realtime/run.sh starts the servers and calls
// this; it can also run against any live server:
//
//   node bench/realtime/fanout.js fanout OUT.json     N clients, ROUNDS task writes at RATE/s
//   node bench/realtime/fanout.js soak OUT.json       N clients, SOAK_RATE writes/s for SOAK_SECS
//   node bench/realtime/fanout.js table A.json ...    markdown rows of earlier results
//
// Environment (defaults in brackets):
//   TASKAPI_URL       http://127.0.0.1:PORT of the server (required)
//   TASKAPI_WS_URL    ws://127.0.0.1:WS_PORT of the same server (required)
//   TASKAPI_PID       its pid, for VmRSS/CPU from /proc (optional; no memory figures without)
//   CLIENTS [1000]    Socket.IO connections, all joined to one project room
//   USERS [10]        distinct users (owner + members) the connections are spread over
//   CHILDREN [4]      child processes holding the connections (CLIENTS / CHILDREN each)
//   ROUNDS [200]      fanout: measured task writes; WARMUP [10] more before them, not counted
//   RATE [20]         fanout: task writes per second (a fixed schedule, not closed-loop)
//   SOAK_SECS [600]   soak: duration;  SOAK_RATE [10] writes/s;  SAMPLE_SECS [10] RSS sample period
//   GRACE_MS [5000]   wait after the last write before counting what is missing
//   LABEL             a name for this run in the output (e.g. "no Redis")
//   CLIENT [socket.io-client]  or raw: a minimal hand-framed client on `ws`, for comparison only
//   DISTURBED_PCT [10]  exit 3 when other jobs took more than this % of one core during the rounds
//   OURS_RE [rtbench|redis-server]  command lines counted as this benchmark's (private PostgreSQL, Redis)
//   CHILD_NODE_ARGS   extra node flags for the children (e.g. --cpu-prof --cpu-prof-dir=/tmp/prof)
//
// Method. The parent process does the REST calls (one POST per round, on a
// steady schedule) and nothing else heavy; the connections live in CHILDREN
// forked processes so that parsing 1000 copies of each event does not sit on
// the measurer's event loop. Every process timestamps with
// process.hrtime.bigint(), i.e. CLOCK_MONOTONIC, which on Linux is one
// system-wide clock: a child's receive time and the parent's "REST response
// arrived" time are directly comparable (ns resolution, no clock offset). A
// child keeps, per task id, how many of its sockets got `task:created` and the
// first/last receive time, and reports one IPC message per task once all its
// sockets have it (the rest at the end). Per round: last = max(children's
// last) - response time, first = min(children's first) - response time.
// Negative values mean the event reached the client before the REST answer
// (the event is published at commit, the answer is written afterwards).
// Children also report their event-loop delay (perf_hooks) so that client-side
// saturation is visible rather than silently included.
'use strict';
const fs = require('node:fs');
const { fork } = require('node:child_process');
const { monitorEventLoopDelay } = require('node:perf_hooks');

const now = () => process.hrtime.bigint(); // ns, CLOCK_MONOTONIC
const ms = (ns) => Number(ns) / 1e6;
const sleep = (t) => new Promise((r) => setTimeout(r, t));
const env = (k, d) => (process.env[k] === undefined || process.env[k] === '' ? d : process.env[k]);
const num = (k, d) => {
  const v = Number(env(k, d));
  if (!Number.isFinite(v) || v < 0) throw new Error(`${k} must be a non-negative number`);
  return v;
};

// ============================================================ child process ===

function child() {
  const { io } = require('socket.io-client');
  const sockets = [];
  const seen = new Map(); // task id -> {n, first, last}
  let expected = 0;
  let disconnects = 0;
  const disconnectReasons = {};
  let unknownEvents = 0;
  const eld = monitorEventLoopDelay({ resolution: 1 }); // samples every 1 ms; lag = interval - 1 ms

  const send = (m) => process.send(m);
  const lag = (ns) => Math.max(0, Math.round((ns / 1e6 - 1) * 100) / 100); // ms beyond the 1 ms period

  function onCreated(data) {
    onCreatedId(data && data.task && data.task.id, now());
  }

  function onCreatedId(id, t) {
    if (!id) {
      unknownEvents += 1;
      return;
    }
    let e = seen.get(id);
    if (!e) {
      e = { n: 0, first: t, last: t, reported: false };
      seen.set(id, e);
    }
    e.n += 1;
    e.last = t;
    if (e.n === expected && !e.reported) {
      e.reported = true;
      send({ type: 'done', id, n: e.n, first: e.first.toString(), last: e.last.toString() });
    }
  }

  async function connectOne(url, token, projectId) {
    const socket = io(url, {
      auth: { token },
      transports: ['websocket'],
      forceNew: true, // one Engine.IO connection per client, never multiplexed
      reconnection: false,
      timeout: 30000,
    });
    await new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', (err) => reject(new Error(`connect_error: ${err.message}`)));
    });
    socket.on('disconnect', (reason) => {
      disconnects += 1;
      disconnectReasons[reason] = (disconnectReasons[reason] || 0) + 1;
    });
    socket.on('task:created', onCreated);
    const ack = await socket.timeout(30000).emitWithAck('join:project', { projectId });
    if (!ack || ack.ok !== true) throw new Error(`join refused: ${JSON.stringify(ack)}`);
    sockets.push(socket);
  }

  // CLIENT=raw: the same Socket.IO endpoint through `ws` with the Engine.IO /
  // Socket.IO framing done by hand and no JSON parsing of events (the task id
  // is cut out of the text), to show how much of the latency is the stock
  // client's own work. Not what an application uses; a comparison only.
  function connectRaw(url, token, projectId) {
    const WebSocket = require('ws');
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`);
    let stage = 'open';
    return new Promise((resolve, reject) => {
      ws.on('error', reject);
      ws.on('close', () => {
        if (stage !== 'closing') {
          disconnects += 1;
          disconnectReasons['raw close'] = (disconnectReasons['raw close'] || 0) + 1;
        }
        reject(new Error(`closed in stage ${stage}`));
      });
      ws.on('message', (buf) => {
        const t = now();
        const text = buf.toString();
        if (stage === 'joined') {
          if (text.startsWith('42["task:created"')) {
            const i = text.indexOf('"id":"');
            onCreatedId(i < 0 ? null : text.slice(i + 6, text.indexOf('"', i + 6)), t);
          } else if (text === '2') {
            ws.send('3');
          }
        } else if (text === '2') {
          ws.send('3');
        } else if (stage === 'open' && text[0] === '0') {
          stage = 'connect';
          ws.send(`40${JSON.stringify({ token })}`);
        } else if (stage === 'connect' && text.startsWith('40')) {
          stage = 'join';
          ws.send(`420${JSON.stringify(['join:project', { projectId }])}`);
        } else if (stage === 'join' && text.startsWith('430')) {
          const ack = JSON.parse(text.slice(3))[0];
          if (!ack || ack.ok !== true) reject(new Error(`join refused: ${text}`));
          stage = 'joined';
          sockets.push({ connected: true, ws, close: () => { stage = 'closing'; ws.close(); } });
          resolve();
        } else if (text.startsWith('44')) {
          reject(new Error(`connect_error: ${text}`));
        }
      });
    });
  }

  process.on('message', async (m) => {
    if (m.cmd === 'connect') {
      const t0 = now();
      let next = 0;
      const errors = [];
      const worker = async () => {
        while (next < m.tokens.length) {
          const i = next++;
          try {
            await (m.client === 'raw' ? connectRaw : connectOne)(m.url, m.tokens[i], m.projectId);
          } catch (e) {
            errors.push(String(e.message || e));
          }
        }
      };
      await Promise.all(Array.from({ length: m.concurrency }, worker));
      expected = sockets.length;
      eld.enable();
      send({ type: 'ready', connected: sockets.length, errors: errors.slice(0, 5), nerrors: errors.length,
        ms: ms(now() - t0) });
    } else if (m.cmd === 'resetLoop') {
      eld.reset();
    } else if (m.cmd === 'report') {
      const incomplete = [];
      for (const [id, e] of seen) {
        if (!e.reported) incomplete.push({ id, n: e.n, first: e.first.toString(), last: e.last.toString() });
      }
      let dups = 0;
      for (const e of seen.values()) if (e.n > expected) dups += e.n - expected;
      const open = sockets.filter((s) => s.connected).length;
      send({
        type: 'report', incomplete, dups, unknownEvents, disconnects, disconnectReasons, open, expected,
        loop: { p50: lag(eld.percentile(50)), p99: lag(eld.percentile(99)), max: lag(eld.max) },
        cpu: process.cpuUsage(),
      });
    } else if (m.cmd === 'close') {
      for (const s of sockets) s.close();
      await sleep(200);
      process.exit(0);
    }
  });
  process.on('disconnect', () => process.exit(0));
}

// =========================================================== parent process ===

function cfg() {
  const c = {
    http: env('TASKAPI_URL', '').replace(/\/+$/, ''),
    ws: env('TASKAPI_WS_URL', '').replace(/\/+$/, '').replace(/^ws/, 'http'),
    pid: env('TASKAPI_PID', ''),
    clients: num('CLIENTS', 1000),
    users: Math.max(1, num('USERS', 10)),
    children: Math.max(1, num('CHILDREN', 4)),
    rounds: num('ROUNDS', 200),
    warmup: num('WARMUP', 10),
    rate: num('RATE', 20),
    soakSecs: num('SOAK_SECS', 600),
    soakRate: num('SOAK_RATE', 10),
    sampleSecs: num('SAMPLE_SECS', 10),
    graceMs: num('GRACE_MS', 5000),
    label: env('LABEL', ''),
    client: env('CLIENT', 'socket.io-client'),
    disturbedPct: num('DISTURBED_PCT', 10),
  };
  if (!c.http || !c.ws) throw new Error('TASKAPI_URL and TASKAPI_WS_URL must point at a running taskapi');
  return c;
}

// ---- REST --------------------------------------------------------------------

let BASE = '';
async function call(method, p, { token, body, expect } = {}) {
  const h = {};
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined) h['content-type'] = 'application/json';
  const res = await fetch(`${BASE}/api/v1${p}`, {
    method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (expect && res.status !== expect) {
    throw new Error(`${method} ${p}: expected ${expect}, got ${res.status}: ${text.slice(0, 300)}`);
  }
  return text ? JSON.parse(text) : null;
}

async function setup(c) {
  const tag = `rtbench-${process.pid}-${Date.now()}`;
  const password = 'bench password 0123';
  const users = [];
  for (let i = 0; i < c.users; i++) {
    const email = `${tag}-${i}@example.test`;
    await call('POST', '/auth/register', { body: { email, password, name: `rtbench ${i}` }, expect: 201 });
    const b = await call('POST', '/auth/login', { body: { email, password }, expect: 200 });
    users.push({ id: b.data.user.id, token: b.data.accessToken });
  }
  const owner = users[0];
  const project = (await call('POST', '/projects', {
    token: owner.token, body: { name: `rtbench ${tag}` }, expect: 201,
  })).data;
  for (const u of users.slice(1)) {
    await call('POST', `/projects/${project.id}/members`, {
      token: owner.token, body: { userId: u.id, role: 'member' }, expect: 201,
    });
  }
  return { owner, users, project };
}

// ---- /proc -------------------------------------------------------------------

function procStatus(pid) {
  if (!pid) return null;
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => {
      const m = s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm'));
      return m ? Number(m[1]) : null;
    };
    const th = s.match(/^Threads:\s+(\d+)/m);
    return { rssKb: kb('VmRSS'), anonKb: kb('RssAnon'), fileKb: kb('RssFile'), threads: th ? Number(th[1]) : null };
  } catch (_) {
    return null;
  }
}

// utime + stime of the process, seconds.
function procCpu(pid) {
  if (!pid) return null;
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // fields 14, 15 (USER_HZ = 100)
  } catch (_) {
    return null;
  }
}

// ---- who else uses the CPU ---------------------------------------------------------
// The machine is shared. Machine-wide busy time comes from /proc/stat (it
// includes processes that started and ended meanwhile); "ours" is taskapi,
// this process, its children and every process whose command line matches
// OURS_RE (the private PostgreSQL's backends show the database name, and the
// private redis-server). other = machine - ours, in % of one core.

function machineBusy() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / 100; // user nice system irq softirq steal, seconds
}

function processes() {
  const m = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      m.set(Number(d), { cpu: (Number(f[11]) + Number(f[12])) / 100, cmd: cmd || st.slice(st.indexOf('('), st.lastIndexOf(')') + 1) });
    } catch (_) {
      // gone meanwhile
    }
  }
  return m;
}

class CpuWatch {
  constructor(ours) {
    this.ours = ours; // pids
    this.re = new RegExp(env('OURS_RE', 'rtbench|redis-server'));
    this.t0 = performance.now();
    this.m0 = machineBusy();
    this.p0 = processes();
  }

  stop() {
    const secs = (performance.now() - this.t0) / 1000;
    const machine = machineBusy() - this.m0;
    const p1 = processes();
    let ours = 0;
    const others = [];
    for (const [pid, e] of p1) {
      const d = e.cpu - (this.p0.has(pid) ? this.p0.get(pid).cpu : 0);
      if (d <= 0) continue;
      if (this.ours.includes(pid) || this.re.test(e.cmd)) ours += d;
      else others.push({ cmd: e.cmd.slice(0, 80), pct: Math.round((d / secs) * 1000) / 10 });
    }
    others.sort((a, b) => b.pct - a.pct);
    const pct = (x) => Math.round((x / secs) * 1000) / 10;
    return { machinePct: pct(machine), oursPct: pct(ours), otherPct: Math.max(0, pct(machine - ours)),
      topOthers: others.slice(0, 4) };
  }
}

async function metrics() {
  try {
    const res = await fetch(`${BASE}/metrics`);
    const text = await res.text();
    const out = {};
    for (const line of text.split('\n')) {
      if (/^taskapi_(websocket|events|redis)/.test(line)) {
        const i = line.lastIndexOf(' ');
        out[line.slice(0, i)] = Number(line.slice(i + 1));
      }
    }
    return out;
  } catch (_) {
    return {};
  }
}

// ---- statistics ----------------------------------------------------------------

function pct(sorted, p) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function summary(values) {
  const s = values.filter((v) => v !== null && Number.isFinite(v)).sort((a, b) => a - b);
  const r3 = (v) => (v === null ? null : Math.round(v * 1000) / 1000);
  return {
    n: s.length,
    p50: r3(pct(s, 50)), p90: r3(pct(s, 90)), p99: r3(pct(s, 99)), max: r3(s.length ? s[s.length - 1] : null),
    mean: r3(s.length ? s.reduce((a, b) => a + b, 0) / s.length : null),
  };
}

// Least-squares slope of y over x.
function slope(xs, ys) {
  const n = xs.length;
  if (n < 2) return null;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  return sxx ? sxy / sxx : null;
}

// ---- the children ----------------------------------------------------------------

class Fleet {
  constructor(n, client) {
    this.client = client;
    this.kids = [];
    this.done = new Map(); // task id -> [{n, first, last}, ...] one per child that completed it
    for (let i = 0; i < n; i++) {
      const execArgv = env('CHILD_NODE_ARGS', '').split(' ').filter(Boolean); // e.g. --cpu-prof
      const k = fork(__filename, ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
      k.waiters = [];
      k.on('message', (m) => {
        if (m.type === 'done') {
          let l = this.done.get(m.id);
          if (!l) {
            l = [];
            this.done.set(m.id, l);
          }
          l.push({ child: i, n: m.n, first: BigInt(m.first), last: BigInt(m.last) });
          if (this.onDone) this.onDone(m.id, l.length);
        } else {
          const w = k.waiters.findIndex((x) => x.type === m.type);
          if (w >= 0) k.waiters.splice(w, 1)[0].resolve(m);
        }
      });
      k.on('exit', (code) => {
        if (code && !this.closing) console.error(`fanout: child ${i} exited with ${code}`);
      });
      this.kids.push(k);
    }
  }

  ask(k, msg, type) {
    return new Promise((resolve) => {
      k.waiters.push({ type, resolve });
      k.send(msg);
    });
  }

  async connect(url, tokens, projectId) {
    const per = this.kids.map(() => []);
    tokens.forEach((t, i) => per[i % this.kids.length].push(t));
    const res = await Promise.all(this.kids.map((k, i) => this.ask(k,
      { cmd: 'connect', url, tokens: per[i], projectId, concurrency: 16, client: this.client }, 'ready')));
    this.expected = res.map((r) => r.connected);
    return res;
  }

  pids() {
    return this.kids.map((k) => k.pid);
  }

  resetLoop() {
    for (const k of this.kids) k.send({ cmd: 'resetLoop' });
  }

  report() {
    return Promise.all(this.kids.map((k) => this.ask(k, { cmd: 'report' }, 'report')));
  }

  async close() {
    this.closing = true;
    for (const k of this.kids) k.send({ cmd: 'close' });
    await Promise.all(this.kids.map((k) => new Promise((r) => (k.exitCode !== null ? r() : k.once('exit', r)))));
  }
}

// ---- rounds ----------------------------------------------------------------------

// Writes `count` tasks at `rate`/s on a fixed schedule (a late write does not
// shift the next ones), calling onRound for each; resolves when all answered.
async function writeTasks(ctx, count, rate, prefix, onSent) {
  const interval = 1000 / rate;
  const t0 = performance.now();
  const pending = [];
  for (let i = 0; i < count; i++) {
    const wait = t0 + i * interval - performance.now();
    if (wait > 0) await sleep(wait);
    const round = { i, sent: now() };
    pending.push(call('POST', `/projects/${ctx.project.id}/tasks`, {
      token: ctx.owner.token, body: { title: `${prefix} ${i}`, priority: 'medium' }, expect: 201,
    }).then((b) => {
      round.resp = now();
      round.id = b.data.id;
      if (onSent) onSent(round);
      return round;
    }, (e) => {
      round.error = String(e.message || e);
      return round;
    }));
  }
  return Promise.all(pending);
}

// Waits until every round's task reached every child, or graceMs passed.
async function settle(fleet, rounds, graceMs) {
  const deadline = Date.now() + graceMs;
  const complete = () => rounds.every((r) => !r.id || (fleet.done.get(r.id) || []).length === fleet.kids.length);
  while (!complete() && Date.now() < deadline) await sleep(20);
}

// Per round: [sent (s after the first write), REST ms, response->first ms,
// response->last ms] and, with perChild, [child, first, last] of each child.
function latencies(fleet, rounds, perChild) {
  const last = [];
  const first = [];
  const fromSent = [];
  const rest = [];
  const table = [];
  const r2 = (v) => Math.round(v * 100) / 100;
  let incompleteRounds = 0;
  const t0 = rounds.length ? rounds[0].sent : 0n;
  for (const r of rounds) {
    if (!r.id) continue;
    rest.push(ms(r.resp - r.sent));
    const row = [r2(ms(r.sent - t0) / 1000), r2(ms(r.resp - r.sent)), null, null];
    table.push(row);
    const l = fleet.done.get(r.id) || [];
    if (l.length === 0) {
      incompleteRounds += 1;
      continue;
    }
    let f = l[0].first;
    let z = l[0].last;
    for (const e of l) {
      if (e.first < f) f = e.first;
      if (e.last > z) z = e.last;
    }
    first.push(ms(f - r.resp));
    row[2] = r2(ms(f - r.resp));
    if (perChild) {
      row.push(l.map((e) => [e.child, r2(ms(e.first - r.resp)), r2(ms(e.last - r.resp))]).sort((a, b) => a[0] - b[0]));
    }
    if (l.length === fleet.kids.length) {
      last.push(ms(z - r.resp));
      fromSent.push(ms(z - r.sent));
      row[3] = r2(ms(z - r.resp));
    } else {
      incompleteRounds += 1;
    }
  }
  return { last, first, fromSent, rest, incompleteRounds, table };
}

// Missed and duplicate deliveries over `rounds`, from the children's reports.
function deliveries(fleet, rounds, reports) {
  const partial = new Map();
  reports.forEach((rep) => {
    for (const e of rep.incomplete) partial.set(e.id, (partial.get(e.id) || 0) + e.n);
  });
  const want = fleet.expected.reduce((a, b) => a + b, 0);
  let got = 0;
  let expected = 0;
  for (const r of rounds) {
    if (!r.id) continue;
    expected += want;
    const l = fleet.done.get(r.id) || [];
    got += l.reduce((a, e) => a + e.n, 0) + (partial.get(r.id) || 0);
  }
  return { expected, delivered: got, missed: expected - got, duplicates: reports.reduce((a, r) => a + r.dups, 0) };
}

function clientSide(reports) {
  return {
    disconnects: reports.reduce((a, r) => a + r.disconnects, 0),
    disconnectReasons: reports.reduce((acc, r) => {
      for (const [k, v] of Object.entries(r.disconnectReasons)) acc[k] = (acc[k] || 0) + v;
      return acc;
    }, {}),
    stillOpen: reports.reduce((a, r) => a + r.open, 0),
    unknownEvents: reports.reduce((a, r) => a + r.unknownEvents, 0),
    childLoopDelayMs: reports.map((r) => ({ p50: r.loop.p50, p99: r.loop.p99, max: r.loop.max })),
    childCpuSec: reports.map((r) => Math.round((r.cpu.user + r.cpu.system) / 1e4) / 100),
  };
}

// ---- modes -------------------------------------------------------------------------

async function prepare(c) {
  BASE = c.http;
  const ctx = await setup(c);
  const tokens = Array.from({ length: c.clients }, (_, i) => ctx.users[i % ctx.users.length].token);
  await sleep(1000);
  const before = procStatus(c.pid);
  const fleet = new Fleet(c.children, c.client);
  const t0 = now();
  const ready = await fleet.connect(c.ws, tokens, ctx.project.id);
  const connectMs = ms(now() - t0);
  const connected = ready.reduce((a, r) => a + r.connected, 0);
  const errors = ready.flatMap((r) => r.errors);
  console.log(`connected and joined ${connected}/${c.clients} clients in ${(connectMs / 1000).toFixed(1)} s` +
    ` over ${c.children} children${errors.length ? `; errors: ${errors.join(' | ')}` : ''}`);
  await sleep(3000); // let the server settle (handshake buffers, first heartbeats)
  const after = procStatus(c.pid);
  const memory = before && after ? {
    beforeKb: before.rssKb, afterKb: after.rssKb,
    perConnKb: connected ? Math.round(((after.rssKb - before.rssKb) / connected) * 100) / 100 : null,
    anonBeforeKb: before.anonKb, anonAfterKb: after.anonKb, threads: after.threads,
  } : null;
  if (memory) {
    console.log(`taskapi VmRSS ${memory.beforeKb} kB before, ${memory.afterKb} kB with ${connected} idle joined ` +
      `clients: ${memory.perConnKb} kB per connection`);
  }
  return { ctx, fleet, connected, connectMs, connectErrors: ready.reduce((a, r) => a + r.nerrors, 0), memory };
}

async function fanout(c, out) {
  const p = await prepare(c);
  const { ctx, fleet } = p;
  if (c.warmup) {
    const w = await writeTasks(ctx, c.warmup, c.rate, 'warm-up');
    await settle(fleet, w, c.graceMs);
  }
  fleet.resetLoop();
  const m0 = await metrics();
  const cpu0 = procCpu(c.pid);
  const watch = new CpuWatch([Number(c.pid), process.pid, ...fleet.pids()]);
  const t0 = now();
  const rounds = await writeTasks(ctx, c.rounds, c.rate, 'fan-out');
  const writeSecs = ms(now() - t0) / 1000;
  await settle(fleet, rounds, c.graceMs);
  const cpu1 = procCpu(c.pid);
  const machine = watch.stop();
  const m1 = await metrics();
  const reports = await fleet.report();
  const lat = latencies(fleet, rounds, true);
  const result = {
    mode: 'fanout', label: c.label, date: new Date().toISOString(), clientLib: c.client,
    clients: c.clients, connected: p.connected, users: c.users, children: c.children,
    rounds: c.rounds, warmup: c.warmup, rate: c.rate,
    writeErrors: rounds.filter((r) => r.error).map((r) => r.error).slice(0, 20),
    writeErrorCount: rounds.filter((r) => r.error).length,
    connectSecs: Math.round(p.connectMs) / 1000, connectErrors: p.connectErrors,
    memory: p.memory,
    lastMs: summary(lat.last), firstMs: summary(lat.first), lastFromRequestMs: summary(lat.fromSent),
    restMs: summary(lat.rest), incompleteRounds: lat.incompleteRounds,
    ...deliveries(fleet, rounds, reports),
    client: clientSide(reports),
    serverCpuPct: cpu0 !== null && cpu1 !== null ? Math.round(((cpu1 - cpu0) / writeSecs) * 1000) / 10 : null,
    cpu: machine, disturbed: machine.otherPct > c.disturbedPct,
    metricsDelta: Object.fromEntries(Object.keys(m1).map((k) => [k, m1[k] - (m0[k] || 0)]).filter(([, v]) => v)),
    loadavg: fs.readFileSync('/proc/loadavg', 'utf8').trim(),
    perRound: lat.table, // [sent s, REST ms, first ms, last ms, [[child, first, last], ...]]
  };
  await fleet.close();
  if (result.memory) {
    await sleep(3000); // the server notices the closes
    result.memory.afterCloseKb = (procStatus(c.pid) || {}).rssKb;
  }
  print(result);
  if (out) fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

async function soak(c, out) {
  const p = await prepare(c);
  const { ctx, fleet } = p;
  const samplesFile = out ? out.replace(/\.json$/, '') + '.samples.jsonl' : null;
  if (samplesFile) fs.writeFileSync(samplesFile, '');
  const samples = [];
  const start = Date.now();
  const sample = () => {
    const st = procStatus(c.pid);
    if (!st) return;
    const s = { t: Math.round((Date.now() - start) / 100) / 10, rssKb: st.rssKb, anonKb: st.anonKb, cpuSec: procCpu(c.pid) };
    samples.push(s);
    if (samplesFile) fs.appendFileSync(samplesFile, `${JSON.stringify(s)}\n`);
    console.log(`  t=${String(s.t).padStart(6)} s  VmRSS ${s.rssKb} kB  RssAnon ${s.anonKb} kB  cpu ${s.cpuSec} s`);
  };
  sample();
  const watch = new CpuWatch([Number(c.pid), process.pid, ...fleet.pids()]);
  const timer = setInterval(sample, c.sampleSecs * 1000);
  const count = Math.round(c.soakSecs * c.soakRate);
  const rounds = await writeTasks(ctx, count, c.soakRate, 'soak');
  await settle(fleet, rounds, c.graceMs);
  clearInterval(timer);
  const machine = watch.stop();
  sample();
  const reports = await fleet.report();
  const lat = latencies(fleet, rounds);
  const xs = samples.map((s) => s.t / 60);
  const ys = samples.map((s) => s.rssKb);
  const half = samples.filter((s) => s.t >= c.soakSecs / 2);
  const rss = ys.length ? {
    firstKb: ys[0], lastKb: ys[ys.length - 1], maxKb: Math.max(...ys), minKb: Math.min(...ys),
    slopeKbPerMin: Math.round(slope(xs, ys) * 10) / 10,
    secondHalfSlopeKbPerMin: Math.round(slope(half.map((s) => s.t / 60), half.map((s) => s.rssKb)) * 10) / 10,
    samples: samples.length,
  } : null;
  const result = {
    mode: 'soak', label: c.label, date: new Date().toISOString(), clientLib: c.client,
    clients: c.clients, connected: p.connected, users: c.users, children: c.children,
    secs: c.soakSecs, rate: c.soakRate, writes: count,
    writeErrors: rounds.filter((r) => r.error).map((r) => r.error).slice(0, 20),
    writeErrorCount: rounds.filter((r) => r.error).length,
    memory: p.memory, rss, cpu: machine,
    lastMs: summary(lat.last), firstMs: summary(lat.first), incompleteRounds: lat.incompleteRounds,
    ...deliveries(fleet, rounds, reports),
    client: clientSide(reports),
    loadavg: fs.readFileSync('/proc/loadavg', 'utf8').trim(),
    samples,
    perRound: lat.table, // [sent s, REST ms, first ms, last ms]
  };
  await fleet.close();
  print(result);
  if (out) fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

function print(r) {
  const f = (s) => `p50 ${s.p50} / p90 ${s.p90} / p99 ${s.p99} / max ${s.max} ms (n=${s.n})`;
  console.log(`\n== ${r.mode}${r.label ? ` (${r.label})` : ''}: ${r.connected} ${r.clientLib} clients, ` +
    `${r.mode === 'fanout' ? `${r.rounds} rounds at ${r.rate}/s` : `${r.secs} s at ${r.rate}/s`}`);
  console.log(`  response -> last client : ${f(r.lastMs)}`);
  console.log(`  response -> first client: ${f(r.firstMs)}`);
  if (r.lastFromRequestMs) console.log(`  request  -> last client : ${f(r.lastFromRequestMs)}`);
  if (r.restMs) console.log(`  REST POST latency       : ${f(r.restMs)}`);
  console.log(`  deliveries: ${r.delivered}/${r.expected}, missed ${r.missed}, duplicates ${r.duplicates}, ` +
    `disconnects ${r.client.disconnects} ${JSON.stringify(r.client.disconnectReasons)}, still open ${r.client.stillOpen}`);
  console.log(`  child event-loop lag p99 (ms): ${r.client.childLoopDelayMs.map((x) => x.p99.toFixed(1)).join(', ')}; ` +
    `max: ${r.client.childLoopDelayMs.map((x) => x.max.toFixed(1)).join(', ')}`);
  if (r.memory) {
    console.log(`  taskapi VmRSS: ${r.memory.beforeKb} kB -> ${r.memory.afterKb} kB, ${r.memory.perConnKb} kB/connection` +
      `${r.memory.afterCloseKb ? `; ${r.memory.afterCloseKb} kB 3 s after all clients closed` : ''}`);
  }
  if (r.rss) {
    console.log(`  soak VmRSS: first ${r.rss.firstKb} kB, last ${r.rss.lastKb} kB, max ${r.rss.maxKb} kB, ` +
      `slope ${r.rss.slopeKbPerMin} kB/min (second half ${r.rss.secondHalfSlopeKbPerMin} kB/min)`);
  }
  if (r.serverCpuPct !== undefined) console.log(`  taskapi CPU during the rounds: ${r.serverCpuPct}% of one core`);
  if (r.cpu) {
    console.log(`  machine CPU during the ${r.mode === 'fanout' ? 'rounds' : 'soak'}: ${r.cpu.machinePct}% of one core ` +
      `(${r.cpu.oursPct}% this benchmark, ${r.cpu.otherPct}% other jobs${r.cpu.topOthers.length ? `: ` +
      r.cpu.topOthers.map((o) => `${o.cmd.slice(0, 40)} ${o.pct}%`).join(', ') : ''})` +
      `${r.disturbed ? ' -- DISTURBED by other jobs' : ''}`);
  }
  console.log(`  loadavg: ${r.loadavg}`);
}

function table(files) {
  const rs = files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));
  const fan = rs.filter((r) => r.mode === 'fanout');
  if (fan.length) {
    console.log('| run | clients | rounds @ rate | last p50 | p90 | p99 | max | first p50 | first p99 | missed | ' +
      'disconnects | RSS before → after | per conn | other jobs\' CPU |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of fan) {
      const m = r.memory || {};
      const who = `${r.label || ''}${r.clientLib && r.clientLib !== 'socket.io-client' ? ` (${r.clientLib} clients)` : ''}`;
      console.log(`| ${who} | ${r.connected} | ${r.rounds} @ ${r.rate}/s | ` +
        `${r.lastMs.p50} | ${r.lastMs.p90} | ${r.lastMs.p99} | ${r.lastMs.max} | ${r.firstMs.p50} | ${r.firstMs.p99} | ` +
        `${r.missed} | ${r.client.disconnects} | ${m.beforeKb} → ${m.afterKb} kB | ${m.perConnKb} kB | ` +
        `${r.cpu ? `${r.cpu.otherPct}%` : '?'} |`);
    }
  }
  const so = rs.filter((r) => r.mode === 'soak');
  if (so.length) {
    console.log('\n| soak | clients | writes | RSS first | last | max | slope (kB/min) | 2nd-half slope | ' +
      'last p99 | missed | disconnects |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|');
    for (const r of so) {
      console.log(`| ${r.label} | ${r.connected} | ${r.writes} in ${r.secs} s | ${r.rss.firstKb} kB | ${r.rss.lastKb} kB | ` +
        `${r.rss.maxKb} kB | ${r.rss.slopeKbPerMin} | ${r.rss.secondHalfSlopeKbPerMin} | ${r.lastMs.p99} ms | ` +
        `${r.missed} | ${r.client.disconnects} |`);
    }
  }
}

async function main() {
  const [mode, ...rest] = process.argv.slice(2);
  if (mode === 'table') return table(rest);
  if (mode !== 'fanout' && mode !== 'soak') {
    console.error('usage: fanout.js fanout|soak [OUT.json] | table FILE.json...');
    process.exit(2);
  }
  const c = cfg();
  const r = mode === 'fanout' ? await fanout(c, rest[0]) : await soak(c, rest[0]);
  const bad = r.missed || r.duplicates || r.client.disconnects || r.writeErrors.length || r.connected < c.clients;
  process.exit(bad ? 1 : r.disturbed ? 3 : 0);
}

if (process.argv[2] === '--child') {
  child();
} else {
  main().catch((e) => {
    console.error(`fanout: ${e.stack || e}`);
    process.exit(1);
  });
}
