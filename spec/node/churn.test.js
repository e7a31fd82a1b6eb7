'use strict';
// Many clients at once, and clients that vanish mid-conversation (while a
// join check is in flight, right after connecting, mid-handshake): the
// server keeps serving everyone else and every remaining subscriber gets
// every event exactly once. Run against the sanitizer build, this is also
// the leak check of the connection paths.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const rt = require('./support/realtime');

const skip = rt.missingEnv();

describe('many and vanishing clients', { skip, timeout: 90000 }, () => {
  let owner;
  let project;
  const open = [];

  before(async () => {
    owner = await rt.newUser('churn');
    project = await rt.createProject(owner);
  });

  after(() => {
    for (const c of open) c.close();
  });

  it('200 subscribers (native and Socket.IO) each get every event once; 100 that vanished do not matter', async () => {
    const room = `project:${project.id}`;
    const quitters = [];
    for (let i = 0; i < 100; i++) {
      // half leave while their join is being checked, half right after ready
      quitters.push(rt.Native.ready(owner).then((c) => {
        if (i % 2) c.send({ type: 'join', room });
        c.close();
      }));
    }
    const natives = [];
    const sios = [];
    for (let i = 0; i < 100; i++) {
      natives.push(rt.Native.ready(owner).then(async (c) => {
        open.push(c);
        const m = await c.join(room);
        assert.equal(m.type, 'joined');
        return c;
      }));
      sios.push(rt.sioConnect(owner.token).then(async (s) => {
        open.push(s);
        assert.deepEqual(await s.join(project.id), { ok: true });
        return s;
      }));
    }
    await Promise.all(quitters);
    const ns = await Promise.all(natives);
    const ss = await Promise.all(sios);

    const tasks = [];
    for (let i = 0; i < 5; i++) tasks.push(await rt.createTask(owner, project.id, { title: `churn ${i}` }));
    for (const t of tasks) {
      await Promise.all(ns.map((c) => c.event('task:created', (m) => m.data.task.id === t.id, 10000)));
      await Promise.all(ss.map((s) => s.event('task:created', (x) => x.task.id === t.id, 10000)));
    }
    await Promise.all(ns.map((c) => c.noEvent('task:created', () => true, 200)));
    await Promise.all(ss.map((s) => s.noEvent('task:created', () => true, 10)));
  });

  it('half-open TCP connections and broken handshakes do not disturb the server', async () => {
    const url = new URL(rt.A.ws);
    const socks = [];
    for (let i = 0; i < 20; i++) {
      const s = net.connect(Number(url.port), url.hostname);
      s.on('error', () => {});
      if (i % 3 === 0) s.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'); // never finished
      if (i % 3 === 1) s.write('garbage\r\n\r\n');
      socks.push(s);
    }
    await rt.sleep(200);
    for (const s of socks) s.destroy();
    const c = await rt.Native.ready(owner);
    open.push(c);
    c.send({ type: 'ping' });
    assert.deepEqual(await c.take(), { type: 'pong' });
  });
});
