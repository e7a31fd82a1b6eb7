'use strict';
// Steady load and realtime clients through nginx while the caller restarts
// or kills taskapi instances (docker/test-nginx.sh ROLLING=1, bin/scale-test).
//
//   node docker/rolling.js BASE STOP_FILE REPORT_FILE
//
// Until STOP_FILE exists: WRITERS loops each POST a task and GET the list,
// recording every answer (status, or the network error); CLIENTS Socket.IO
// clients on /socket.io/ stay joined to the project (re-joining after every
// reconnect) and record the task:created events they get. Then it checks:
// every acknowledged write (201) reads back (writes lost = 0), and every
// client — reconnected however often — receives the event of one last write.
// Writes the report as JSON to REPORT_FILE and prints it.
const fs = require('node:fs');
const { io } = require('socket.io-client');

const [BASE, STOP, REPORT] = process.argv.slice(2);
const WRITERS = Number(process.env.WRITERS || 6);
const CLIENTS = Number(process.env.CLIENTS || 4);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function call(method, path, token, body) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(BASE + '/api/v1' + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15000),
  });
  const text = await res.text();
  let data = null;
  try { data = JSON.parse(text).data; } catch { /* not JSON */ }
  return { status: res.status, data }; // data: the envelope's `data`
}

async function main() {
  const email = `rolling-${process.pid}-${Date.now()}@example.test`;
  const password = 'rolling password';
  let r = await call('POST', '/auth/register', null, { email, password, name: 'Rolling' });
  if (r.status !== 201) throw new Error(`register: ${r.status}`);
  r = await call('POST', '/auth/login', null, { email, password });
  if (r.status !== 200) throw new Error(`login: ${r.status}`);
  const token = r.data.accessToken;
  r = await call('POST', '/projects', token, { name: 'rolling restart' });
  if (r.status !== 201) throw new Error(`project: ${r.status}`);
  const projectId = r.data.id;

  const clients = [];
  for (let i = 0; i < CLIENTS; i++) {
    const c = { seen: new Set(), connects: 0, joins: 0, joinFailures: 0 };
    c.socket = io(BASE, {
      path: '/socket.io/', auth: { token }, transports: ['websocket'], forceNew: true,
      reconnectionDelay: 100, reconnectionDelayMax: 1000, timeout: 5000,
    });
    c.socket.on('connect', async () => {
      c.connects++;
      try {
        const ack = await c.socket.timeout(5000).emitWithAck('join:project', { projectId });
        if (ack && ack.ok) c.joins++; else c.joinFailures++;
      } catch { c.joinFailures++; }
    });
    c.socket.on('task:created', (d) => { if (d && d.task) c.seen.add(d.task.id); });
    clients.push(c);
  }

  const stats = { requests: 0, byStatus: {}, networkErrors: 0, errors: [] };
  const acknowledged = [];
  const note = (what, status) => {
    stats.requests++;
    stats.byStatus[status] = (stats.byStatus[status] || 0) + 1;
    if (!(status >= 200 && status < 300) && stats.errors.length < 20) stats.errors.push(`${what} ${status}`);
  };
  let n = 0;
  const writer = async (w) => {
    while (!fs.existsSync(STOP)) {
      const title = `w${w} #${n++}`;
      try {
        const res = await call('POST', `/projects/${projectId}/tasks`, token, { title });
        note('POST', res.status);
        if (res.status === 201) acknowledged.push(res.data.id);
      } catch (e) {
        stats.networkErrors++;
        note('POST', `network: ${e.cause?.code || e.name}`);
      }
      try {
        note('GET', (await call('GET', `/projects/${projectId}/tasks?limit=20`, token)).status);
      } catch (e) {
        stats.networkErrors++;
        note('GET', `network: ${e.cause?.code || e.name}`);
      }
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));

  // every acknowledged write reads back
  let lost = 0;
  for (const id of acknowledged) {
    const res = await call('GET', `/tasks/${id}`, token);
    if (res.status !== 200) lost++;
  }
  // every client is connected, joined and receiving again
  await sleep(1500);
  const last = await call('POST', `/projects/${projectId}/tasks`, token, { title: 'after the restarts' });
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline && !clients.every((c) => c.seen.has(last.data?.id))) await sleep(100);
  const report = {
    requests: stats.requests,
    byStatus: stats.byStatus,
    failed: stats.requests - Object.entries(stats.byStatus)
      .filter(([s]) => Number(s) >= 200 && Number(s) < 300).reduce((a, [, v]) => a + v, 0),
    networkErrors: stats.networkErrors,
    firstErrors: stats.errors,
    acknowledgedWrites: acknowledged.length,
    writesLost: lost,
    clients: clients.map((c) => ({
      connects: c.connects, joins: c.joins, joinFailures: c.joinFailures,
      eventsReceived: c.seen.size, receivesAfterRestarts: c.seen.has(last.data?.id),
    })),
  };
  for (const c of clients) c.socket.close();
  fs.writeFileSync(REPORT, JSON.stringify(report, null, 2) + '\n');
  console.log(JSON.stringify(report));
}

main().catch((e) => { console.error(e); process.exit(1); });
