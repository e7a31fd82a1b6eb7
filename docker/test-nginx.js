'use strict';
// Client side of docker/test-nginx.sh (run by it; needs NODE_PATH=spec/node/node_modules).
//
//   node test-nginx.js e2e     checks taskapi through nginx at $NGINX_URL:
//                              register + login, native /ws ready, the Origin check,
//                              Socket.IO join + task:created after a REST POST, on two
//                              clients that nginx's least_conn puts on different instances
//   node test-nginx.js echo PORT...   an upstream that answers every request (and every
//                              WebSocket upgrade, with 400) with the headers it received
//
// Prints one `ok - …` / `not ok - …` line per check; exits 1 if any failed.
const http = require('node:http');
const WebSocket = require('ws');
const { io } = require('socket.io-client');

let failed = 0;
function ok(cond, name, detail) {
  if (cond) {
    console.log(`ok - ${name}`);
  } else {
    failed += 1;
    console.log(`not ok - ${name}${detail !== undefined ? `: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}` : ''}`);
  }
  return cond;
}

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

// ---- echo upstream ------------------------------------------------------------

function echo(ports) {
  for (const port of ports) {
    const server = http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ port: Number(port), method: req.method, url: req.url, headers: req.headers }));
    });
    server.on('upgrade', (req, socket) => {
      const body = JSON.stringify({ port: Number(port), method: req.method, url: req.url, headers: req.headers, upgrade: true });
      socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    });
    server.listen(Number(port), '127.0.0.1');
  }
}

// ---- end to end through nginx --------------------------------------------------

const BASE = (process.env.NGINX_URL || '').replace(/\/+$/, '');
const WSBASE = BASE.replace(/^http/, 'ws');

async function api(method, path, { token, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined) h['content-type'] = 'application/json';
  const res = await fetch(BASE + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  return { status: res.status, body: json, text, headers: res.headers };
}

// Opens /ws; resolves {ws, first message} or {status} when the upgrade is refused.
function nativeOpen(query, headers) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${WSBASE}/ws${query}`, { headers });
    const msgs = [];
    const waiters = [];
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      const w = waiters.findIndex((x) => x.pred(m));
      if (w >= 0) waiters.splice(w, 1)[0].resolve(m); else msgs.push(m);
    });
    const take = (pred, ms = 5000) => {
      const i = msgs.findIndex(pred);
      if (i >= 0) return Promise.resolve(msgs.splice(i, 1)[0]);
      return withTimeout(new Promise((r) => waiters.push({ pred, resolve: r })), ms, 'native message');
    };
    ws.once('open', () => resolve({ ws, take }));
    ws.once('unexpected-response', (req, res) => { res.resume(); resolve({ status: res.statusCode }); });
    ws.once('error', reject);
  });
}

function sioOpen(token) {
  const socket = io(BASE, {
    path: '/socket.io/', auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true, timeout: 5000,
  });
  const events = [];
  const waiters = [];
  socket.onAny((name, data) => {
    const w = waiters.findIndex((x) => x.name === name && x.pred(data));
    if (w >= 0) waiters.splice(w, 1)[0].resolve(data); else events.push({ name, data });
  });
  const event = (name, pred = () => true, ms = 5000) => {
    const i = events.findIndex((e) => e.name === name && pred(e.data));
    if (i >= 0) return Promise.resolve(events.splice(i, 1)[0].data);
    return withTimeout(new Promise((r) => waiters.push({ name, pred, resolve: r })), ms, `socket.io ${name}`);
  };
  return withTimeout(new Promise((resolve, reject) => {
    socket.once('connect', () => resolve({ socket, event }));
    socket.once('connect_error', (e) => { socket.close(); reject(e); });
  }), 8000, 'socket.io connect');
}

async function e2e() {
  const closers = [];
  try {
    // REST: register + login through nginx
    const email = `dock-${process.pid}-${Date.now()}@example.test`;
    const password = 'correct horse battery';
    const reg = await api('POST', '/api/v1/auth/register', { body: { email, password, name: 'Dock Tester' } });
    ok(reg.status === 201 && reg.body.data.user.email === email, 'POST /api/v1/auth/register through nginx: 201 with the user', reg.text);
    const login = await api('POST', '/api/v1/auth/login', { body: { email, password } });
    ok(login.status === 200 && typeof login.body.data.accessToken === 'string', 'POST /api/v1/auth/login through nginx: 200 with an accessToken', login.text);
    const token = login.body.data.accessToken;
    const userId = login.body.data.user.id;
    const me = await api('GET', '/api/v1/auth/me', { token });
    ok(me.status === 200 && me.body.data.id === userId, 'GET /api/v1/auth/me with the bearer token through nginx', me.text);

    // native WebSocket: ?token= -> {"type":"ready"}
    const n1 = await nativeOpen(`?token=${encodeURIComponent(token)}`);
    if (n1.ws) closers.push(() => n1.ws.terminate());
    const ready = n1.ws && await n1.take((m) => m.type === 'ready');
    ok(ready && ready.type === 'ready' && ready.userId === userId, 'native /ws?token=… through nginx answers {"type":"ready","userId"}', ready || n1);

    // Origin passes through: the allowed origin (CORS_ORIGINS) connects, another gets 403
    if (process.env.ALLOWED_ORIGIN) {
      const n2 = await nativeOpen(`?token=${encodeURIComponent(token)}`, { origin: process.env.ALLOWED_ORIGIN });
      if (n2.ws) closers.push(() => n2.ws.terminate());
      const r2 = n2.ws && await n2.take((m) => m.type === 'ready');
      ok(r2 && r2.type === 'ready', `/ws with Origin ${process.env.ALLOWED_ORIGIN} (in CORS_ORIGINS) is accepted`, r2 || n2);
      const n3 = await nativeOpen(`?token=${encodeURIComponent(token)}`, { origin: 'https://evil.example' });
      if (n3.ws) closers.push(() => n3.ws.terminate());
      ok(n3.status === 403, '/ws with a foreign Origin is refused with 403 (nginx passes Origin through)', n3.status);
    }

    // a bad token closes with 4401 through nginx
    const bad = await nativeOpen('?token=not-a-token');
    const badClose = bad.ws ? await withTimeout(new Promise((r) => bad.ws.on('close', (code) => r(code))), 5000, 'close 4401') : bad.status;
    ok(badClose === 4401, 'native /ws with a bad token is closed with 4401 through nginx', badClose);

    // Socket.IO: two clients; with least_conn they land on different instances
    const project = await api('POST', '/api/v1/projects', { token, body: { name: 'dock nginx check' } });
    ok(project.status === 201, 'POST /api/v1/projects through nginx: 201', project.text);
    const projectId = project.body.data.id;
    const clients = [];
    for (let i = 0; i < 2; i++) {
      const c = await sioOpen(token);
      closers.push(() => c.socket.close());
      clients.push(c);
      const ack = await c.socket.timeout(5000).emitWithAck('join:project', { projectId });
      ok(ack && ack.ok === true, `socket.io client ${i + 1} (path /socket.io/ on the nginx origin) joins the project: {ok: true}`, ack);
    }
    const joined = n1.ws && (n1.ws.send(JSON.stringify({ type: 'join', room: `project:${projectId}` })),
    await n1.take((m) => m.type === 'joined' || m.type === 'error'));
    ok(joined && joined.type === 'joined', 'native client joins project:<id> through nginx', joined);

    // Two REST POSTs (round robin: one per instance); every client gets each task:created
    for (let k = 1; k <= 2; k++) {
      const t = await api('POST', `/api/v1/projects/${projectId}/tasks`, { token, body: { title: `through nginx ${k}` } });
      ok(t.status === 201, `POST /api/v1/projects/:id/tasks #${k} through nginx: 201`, t.text);
      const id = t.body && t.body.data && t.body.data.id;
      for (let i = 0; i < clients.length; i++) {
        try {
          const d = await clients[i].event('task:created', (x) => x && x.task && x.task.id === id);
          ok(d.task.title === `through nginx ${k}`, `socket.io client ${i + 1} receives task:created for task #${k}`, d);
        } catch (e) {
          ok(false, `socket.io client ${i + 1} receives task:created for task #${k}`, e.message);
        }
      }
      try {
        const m = await n1.take((x) => x.type === 'event' && x.event === 'task:created' && x.data.task.id === id);
        ok(m.room === `project:${projectId}`, `native client receives task:created for task #${k}`, m);
      } catch (e) {
        ok(false, `native client receives task:created for task #${k}`, e.message);
      }
    }

    // long-polling is refused by taskapi (400), which shows /socket.io/ plain GETs reach WS_PORT
    const poll = await fetch(`${BASE}/socket.io/?EIO=4&transport=polling`);
    await poll.text();
    ok(poll.status === 400, 'GET /socket.io/?EIO=4&transport=polling through nginx answers 400 (polling refused)', poll.status);
  } catch (e) {
    ok(false, 'end-to-end checks ran to the end', e.stack || String(e));
  } finally {
    for (const c of closers) c();
  }
  // let nginx log the closed WebSockets before the shell reads the log
  await new Promise((r) => setTimeout(r, 300));
  process.exit(failed ? 1 : 0);
}

const mode = process.argv[2];
if (mode === 'echo') {
  echo(process.argv.slice(3));
} else if (mode === 'e2e') {
  if (!BASE) {
    console.error('NGINX_URL is required');
    process.exit(2);
  }
  e2e();
} else {
  console.error('usage: node test-nginx.js e2e | echo PORT...');
  process.exit(2);
}
