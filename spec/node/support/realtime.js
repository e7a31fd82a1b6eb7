'use strict';
// Shared helpers for the realtime specs (node --test spec/node/): a small REST
// client for the live server, and recording clients for the native /ws
// protocol (ws) and Socket.IO (socket.io-client) that let a test wait for the
// next matching message or prove that none arrives.
//
// Environment:
//   TASKAPI_URL        http://127.0.0.1:PORT of the server (required)
//   TASKAPI_WS_URL     ws://127.0.0.1:WS_PORT of the same server (required)
//   TASKAPI_URL_B, TASKAPI_WS_URL_B   a second instance on the same database
//                      and Redis (the two-instance spec is skipped without)
//   JWT_SECRET         the servers' secret, to forge an expired token (optional)
//   JWT_KEY_ID         its kid (default k1)
//   TASKAPI_SECRETS_FILE  where the passwords and tokens used are appended,
//                      one a line, for bin/test's final check that no server
//                      log holds any of them (optional)
const crypto = require('node:crypto');
const fs = require('node:fs');
const WebSocket = require('ws');
const { io } = require('socket.io-client');

const A = {
  http: (process.env.TASKAPI_URL || '').replace(/\/+$/, ''),
  ws: (process.env.TASKAPI_WS_URL || '').replace(/\/+$/, ''),
};
const B = {
  http: (process.env.TASKAPI_URL_B || '').replace(/\/+$/, ''),
  ws: (process.env.TASKAPI_WS_URL_B || '').replace(/\/+$/, ''),
};

// A reason to skip the whole file, or false.
function missingEnv() {
  if (!A.http || !A.ws) {
    return 'TASKAPI_URL and TASKAPI_WS_URL must point at a running taskapi (bin/test sets them)';
  }
  return false;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- REST --------------------------------------------------------------------

async function api(method, path, { token, body, base = A.http, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined) h['content-type'] = 'application/json';
  const res = await fetch(base + (path.startsWith('/api/') || path.startsWith('/health') ? path : `/api/v1${path}`), {
    method,
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (_) {
    json = null;
  }
  return { status: res.status, body: json, text, headers: res.headers };
}

// Like api(), but fails the test unless the status is `want`.
async function ok(want, method, path, opts) {
  const r = await api(method, path, opts);
  if (r.status !== want) {
    throw new Error(`${method} ${path}: expected ${want}, got ${r.status} ${r.text}`);
  }
  return r.body;
}

let seq = 0;
function uniqueEmail(tag = 'rt') {
  seq += 1;
  return `${tag}-${process.pid}-${Date.now()}-${seq}@example.test`;
}

// Registers and logs in a fresh user: {id, email, token, refreshToken, name}.
async function newUser(tag = 'rt', base = A.http) {
  const email = uniqueEmail(tag);
  const password = 'correct horse battery';
  const name = `${tag} user ${seq}`;
  await ok(201, 'POST', '/auth/register', { body: { email, password, name }, base });
  return login(email, password, base, name);
}

// Appends values that must never reach a server log to TASKAPI_SECRETS_FILE.
function rememberSecrets(...values) {
  const file = process.env.TASKAPI_SECRETS_FILE;
  if (!file) return;
  fs.appendFileSync(file, values.filter((v) => typeof v === 'string' && v.length >= 8).map((v) => `${v}\n`).join(''));
}

async function login(email, password = 'correct horse battery', base = A.http, name) {
  const b = await ok(200, 'POST', '/auth/login', { body: { email, password }, base });
  rememberSecrets(password, b.data.accessToken, b.data.refreshToken);
  return {
    id: b.data.user.id,
    email,
    password,
    name: name || b.data.user.name,
    token: b.data.accessToken,
    refreshToken: b.data.refreshToken,
  };
}

async function createProject(owner, fields = {}, base = A.http) {
  const b = await ok(201, 'POST', '/projects', {
    token: owner.token,
    body: { name: `realtime ${uniqueEmail('p')}`, ...fields },
    base,
  });
  return b.data;
}

async function addMember(owner, projectId, user, role = 'member', base = A.http) {
  const b = await ok(201, 'POST', `/projects/${projectId}/members`, {
    token: owner.token,
    body: { userId: user.id, role },
    base,
  });
  return b.data;
}

async function createTask(user, projectId, fields = {}, base = A.http) {
  const b = await ok(201, 'POST', `/projects/${projectId}/tasks`, {
    token: user.token,
    body: { title: 'a task', ...fields },
    base,
  });
  return b.data;
}

// An HS256 access token signed like the server's, with any claims.
function forgeToken(claims) {
  const secret = process.env.JWT_SECRET;
  if (!secret) return null;
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = b64({ alg: 'HS256', typ: 'JWT', kid: process.env.JWT_KEY_ID || 'k1' });
  const body = b64(claims);
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

// ---- a recording inbox ---------------------------------------------------------

// Messages in arrival order; take() removes and returns the first one that
// matches, waiting up to `ms` for it.
class Inbox {
  constructor(label) {
    this.label = label;
    this.items = [];
    this.waiters = [];
  }

  push(item) {
    for (let i = 0; i < this.waiters.length; i++) {
      const w = this.waiters[i];
      if (w.pred(item)) {
        this.waiters.splice(i, 1);
        clearTimeout(w.timer);
        w.resolve(item);
        return;
      }
    }
    this.items.push(item);
  }

  take(pred = () => true, ms = 5000, what = 'a message') {
    const i = this.items.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.items.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        const seen = this.items.map((x) => JSON.stringify(x).slice(0, 160)).join('\n  ');
        reject(new Error(`${this.label}: no ${what} within ${ms} ms; unconsumed:\n  ${seen || '(none)'}`));
      }, ms);
      this.waiters.push(w);
    });
  }

  // Resolves after `ms` if nothing matching arrived (or was already there).
  async none(pred, ms = 500, what = 'message') {
    await sleep(ms);
    const hit = this.items.find(pred);
    if (hit) throw new Error(`${this.label}: unexpected ${what}: ${JSON.stringify(hit).slice(0, 300)}`);
  }
}

// ---- native /ws ----------------------------------------------------------------

class Native {
  // Opens ws(s)://.../ws[?token=]; resolves once the socket is open.
  static open({ token, base = A.ws, path = '/ws', headers, label = 'native' } = {}) {
    const url = `${base}${path}${token !== undefined ? `?token=${encodeURIComponent(token)}` : ''}`;
    const c = new Native(new WebSocket(url, { headers }), label);
    return new Promise((resolve, reject) => {
      c.ws.once('open', () => resolve(c));
      c.ws.once('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => {
          const err = new Error(`upgrade refused: ${res.statusCode}`);
          err.status = res.statusCode;
          err.body = body;
          reject(err);
        });
      });
      c.ws.once('error', reject);
    });
  }

  // Opens and authenticates with ?token=, waiting for "ready".
  static async ready(user, opts = {}) {
    const c = await Native.open({ token: user.token, ...opts });
    const m = await c.take((x) => x.type === 'ready', 5000, 'ready');
    if (m.userId !== user.id) throw new Error(`ready for ${m.userId}, expected ${user.id}`);
    return c;
  }

  constructor(ws, label) {
    this.ws = ws;
    this.inbox = new Inbox(label);
    this.raw = [];
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    ws.on('error', () => {});
    ws.on('message', (data) => {
      const text = data.toString();
      this.raw.push(text);
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (_) {
        msg = { unparsable: text };
      }
      this.inbox.push(msg);
    });
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  take(pred, ms, what) {
    return this.inbox.take(pred, ms, what);
  }

  event(name, pred = () => true, ms = 5000) {
    return this.take((m) => m.type === 'event' && m.event === name && pred(m), ms, `event ${name}`);
  }

  noEvent(name, pred = () => true, ms = 500) {
    return this.inbox.none((m) => m.type === 'event' && m.event === name && pred(m), ms, `event ${name}`);
  }

  async join(room) {
    this.send({ type: 'join', room });
    return this.take((m) => (m.type === 'joined' || m.type === 'error') && (m.room === room || m.room === undefined),
      5000, `answer to join ${room}`);
  }

  close() {
    this.ws.terminate();
  }
}

// ---- Socket.IO ------------------------------------------------------------------

// Connects with auth {token}; resolves with {socket, inbox} once connected,
// rejects with the connect_error.
function sioConnect(token, { base = A.ws, label = 'sio', auth, query, reconnection = false } = {}) {
  const socket = io(base.replace(/^ws/, 'http'), {
    auth: auth !== undefined ? auth : token !== undefined ? { token } : undefined,
    query,
    transports: ['websocket'],
    reconnection,
    forceNew: true,
    timeout: 5000,
  });
  const inbox = new Inbox(label);
  socket.onAny((event, ...args) => inbox.push({ event, args }));
  const disconnected = new Promise((resolve) => socket.on('disconnect', (reason) => resolve(reason)));
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve({
      socket,
      inbox,
      disconnected,
      event: (name, pred = () => true, ms = 5000) =>
        inbox.take((m) => m.event === name && pred(m.args[0]), ms, `event ${name}`).then((m) => m.args[0]),
      noEvent: (name, pred = () => true, ms = 500) =>
        inbox.none((m) => m.event === name && pred(m.args[0]), ms, `event ${name}`),
      join: (projectId) => socket.timeout(5000).emitWithAck('join:project', { projectId }),
      leave: (projectId) => socket.timeout(5000).emitWithAck('leave:project', { projectId }),
      close: () => socket.close(),
    }));
    socket.once('connect_error', (err) => {
      socket.close();
      reject(err);
    });
  });
}

// A raw Engine.IO websocket (no socket.io-client), for framing details:
// {ws, send(text), next(pred, ms) -> text, closed}.
function rawEngine({ base = A.ws, query = 'EIO=4&transport=websocket', headers } = {}) {
  const ws = new WebSocket(`${base}/socket.io/?${query}`, { headers });
  const inbox = new Inbox('engine.io');
  ws.on('message', (data) => inbox.push(data.toString()));
  ws.on('error', () => {});
  const c = {
    ws,
    inbox,
    send: (text) => ws.send(text),
    next: (pred = () => true, ms = 5000, what = 'a packet') => inbox.take(pred, ms, what),
    closed: new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))),
    close: () => ws.terminate(),
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(c));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        const err = new Error(`upgrade refused: ${res.statusCode}`);
        err.status = res.statusCode;
        err.body = body;
        reject(err);
      });
    });
    ws.once('error', reject);
  });
}

module.exports = {
  A,
  B,
  missingEnv,
  sleep,
  api,
  ok,
  uniqueEmail,
  newUser,
  login,
  createProject,
  addMember,
  createTask,
  forgeToken,
  Inbox,
  Native,
  sioConnect,
  rawEngine,
};
