'use strict';
// Socket.IO v4 at /socket.io/ over the websocket transport (API.md §8): the
// stock socket.io-client connects with auth {token}, joins with an ack,
// leaves, and receives events; plus the Engine.IO v4 / Socket.IO v5 framing
// seen on a raw socket, and what is refused (polling, other EIO versions).
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const rt = require('./support/realtime');

const skip = rt.missingEnv();

describe('Socket.IO', { skip, timeout: 60000 }, () => {
  let owner;
  let project;
  const open = [];
  const track = (c) => {
    open.push(c);
    return c;
  };

  before(async () => {
    owner = await rt.newUser('sio');
    project = await rt.createProject(owner);
  });

  after(() => {
    for (const c of open) c.close();
  });

  describe('socket.io-client@4 with transports: ["websocket"]', () => {
    it('connects with auth {token}', async () => {
      const s = track(await rt.sioConnect(owner.token));
      assert.equal(s.socket.connected, true);
      assert.equal(typeof s.socket.id, 'string');
      assert.ok(s.socket.id.length >= 10);
    });

    it('a bad token gets connect_error "unauthorized" with data.code', async () => {
      const err = await rt.sioConnect('garbage').then(() => null, (e) => e);
      assert.ok(err, 'must not connect');
      assert.equal(err.message, 'unauthorized');
      assert.deepEqual(err.data, { code: 'unauthorized' });
    });

    it('no token at all gets connect_error', async () => {
      const err = await rt.sioConnect(undefined).then(() => null, (e) => e);
      assert.ok(err);
      assert.equal(err.message, 'unauthorized');
    });

    it('a logged-out token gets connect_error', async () => {
      const u = await rt.newUser('sio-out');
      await rt.ok(204, 'POST', '/auth/logout', { token: u.token, body: {} });
      const err = await rt.sioConnect(u.token).then(() => null, (e) => e);
      assert.equal(err && err.message, 'unauthorized');
    });

    it('emit("join:project", {projectId}, ack) -> {ok: true}', async () => {
      const s = track(await rt.sioConnect(owner.token));
      assert.deepEqual(await s.join(project.id), { ok: true });
    });

    it('a project that does not exist -> {ok: false, error: "not_found"}', async () => {
      const s = track(await rt.sioConnect(owner.token));
      assert.deepEqual(await s.join('00000000-0000-4000-8000-000000000000'), { ok: false, error: 'not_found' });
      assert.deepEqual(await s.join('not-a-uuid'), { ok: false, error: 'not_found' });
    });

    it('a private project of someone else -> not_found; a public one may be joined by any user', async () => {
      const stranger = await rt.newUser('sio-stranger');
      const s = track(await rt.sioConnect(stranger.token));
      assert.deepEqual(await s.join(project.id), { ok: false, error: 'not_found' });
      const pub = await rt.createProject(owner, { visibility: 'public' });
      assert.deepEqual(await s.join(pub.id), { ok: true });
      const task = await rt.createTask(owner, pub.id, { title: 'public news' });
      const data = await s.event('task:created');
      assert.equal(data.task.id, task.id);
    });

    it('a join without a projectId string -> {ok: false, error: "validation_failed"}', async () => {
      const s = track(await rt.sioConnect(owner.token));
      const ack = (...args) => s.socket.timeout(5000).emitWithAck('join:project', ...args);
      assert.deepEqual(await ack({}), { ok: false, error: 'validation_failed' });
      assert.deepEqual(await ack({ projectId: 7 }), { ok: false, error: 'validation_failed' });
      assert.deepEqual(await ack('just a string'), { ok: false, error: 'validation_failed' });
    });

    it('an unknown event with an ack -> {ok: false, error: "validation_failed"}', async () => {
      const s = track(await rt.sioConnect(owner.token));
      assert.deepEqual(await s.socket.timeout(5000).emitWithAck('subscribe', { room: 'x' }),
        { ok: false, error: 'validation_failed' });
    });

    it('events arrive as socket.on("task:created", ({task}) => ...) with the data object as the one argument', async () => {
      const s = track(await rt.sioConnect(owner.token));
      assert.deepEqual(await s.join(project.id), { ok: true });
      const task = await rt.createTask(owner, project.id, { title: 'to socket.io' });
      const m = await s.inbox.take((x) => x.event === 'task:created', 5000, 'task:created');
      assert.equal(m.args.length, 1);
      assert.deepEqual(m.args[0], { task });
    });

    it('leave:project -> {ok: true}, then no more events from it', async () => {
      const s = track(await rt.sioConnect(owner.token));
      assert.deepEqual(await s.join(project.id), { ok: true });
      assert.deepEqual(await s.leave(project.id), { ok: true });
      await rt.createTask(owner, project.id, { title: 'unheard' });
      await s.noEvent('task:created');
    });

    it('the user room needs no join: notification:created arrives', async () => {
      const member = await rt.newUser('sio-member');
      await rt.addMember(owner, project.id, member, 'member');
      const s = track(await rt.sioConnect(member.token));
      await rt.createTask(owner, project.id, { title: 'yours', assigneeId: member.id });
      const data = await s.event('notification:created');
      assert.equal(data.notification.type, 'task_assigned');
    });

    it('a ?token= query is accepted when auth carries none', async () => {
      const s = track(await rt.sioConnect(undefined, { query: { token: owner.token } }));
      assert.deepEqual(await s.join(project.id), { ok: true });
    });
  });

  describe('Engine.IO v4 / Socket.IO v5 framing', () => {
    it('opens with 0{sid, upgrades: [], pingInterval: 25000, pingTimeout: 20000, maxPayload: 65536 (WS_MAX_MESSAGE)}', async () => {
      const e = track(await rt.rawEngine());
      const open = await e.next();
      assert.equal(open[0], '0');
      const o = JSON.parse(open.slice(1));
      assert.deepEqual(Object.keys(o).sort(), ['maxPayload', 'pingInterval', 'pingTimeout', 'sid', 'upgrades']);
      assert.equal(typeof o.sid, 'string');
      assert.deepEqual(o.upgrades, []);
      assert.equal(o.pingInterval, 25000);
      assert.equal(o.pingTimeout, 20000);
      assert.equal(o.maxPayload, 65536);
    });

    it('CONNECT 40{"token"} -> 40{"sid"}; EVENT with ack id 421[...] -> ACK 431[...]', async () => {
      const e = track(await rt.rawEngine());
      await e.next((p) => p[0] === '0');
      e.send(`40${JSON.stringify({ token: owner.token })}`);
      const connected = await e.next();
      assert.match(connected, /^40\{"sid":"[^"]+"\}$/);
      e.send(`421${JSON.stringify(['join:project', { projectId: project.id }])}`);
      assert.equal(await e.next(), '431[{"ok":true}]');
      e.send(`4217${JSON.stringify(['join:project', { projectId: '00000000-0000-4000-8000-000000000000' }])}`);
      assert.equal(await e.next(), '4317[{"ok":false,"error":"not_found"}]');
      const task = await rt.createTask(owner, project.id, { title: 'raw' });
      const ev = await e.next((p) => p.startsWith('42'));
      assert.deepEqual(JSON.parse(ev.slice(2)), ['task:created', { task }]);
    });

    it('CONNECT with a bad token -> 44{"message":"unauthorized","data":{"code":"unauthorized"}}', async () => {
      const e = track(await rt.rawEngine());
      await e.next((p) => p[0] === '0');
      e.send('40{"token":"nope"}');
      const p = await e.next();
      assert.equal(p.slice(0, 2), '44');
      assert.deepEqual(JSON.parse(p.slice(2)), { message: 'unauthorized', data: { code: 'unauthorized' } });
      // the engine stays open: a CONNECT with a good token still works
      e.send(`40${JSON.stringify({ token: owner.token })}`);
      assert.match(await e.next(), /^40\{"sid":/);
    });

    it('a namespace other than "/" -> 44/ns,{"message":"Invalid namespace"}', async () => {
      const e = track(await rt.rawEngine());
      await e.next((p) => p[0] === '0');
      e.send(`40/admin,${JSON.stringify({ token: owner.token })}`);
      assert.equal(await e.next(), '44/admin,{"message":"Invalid namespace"}');
    });

    it('a client ping "2probe" gets "3probe"', async () => {
      const e = track(await rt.rawEngine());
      await e.next((p) => p[0] === '0');
      e.send('2probe');
      assert.equal(await e.next(), '3probe');
    });

    it('events before CONNECT are ignored; DISCONNECT 41 leaves every room', async () => {
      const e = track(await rt.rawEngine());
      await e.next((p) => p[0] === '0');
      e.send(`421${JSON.stringify(['join:project', { projectId: project.id }])}`);
      await e.inbox.none(() => true, 300, 'answer before CONNECT');
      e.send(`40${JSON.stringify({ token: owner.token })}`);
      await e.next((p) => p.startsWith('40'));
      e.send(`422${JSON.stringify(['join:project', { projectId: project.id }])}`);
      assert.equal(await e.next(), '432[{"ok":true}]');
      e.send('41');
      await rt.sleep(100);
      await rt.createTask(owner, project.id, { title: 'after 41' });
      await e.inbox.none((p) => p.startsWith('42'), 500, 'event after DISCONNECT');
    });

    it('an unparsable EVENT closes the connection (protocol error)', async () => {
      const e = track(await rt.rawEngine());
      await e.next((p) => p[0] === '0');
      e.send(`40${JSON.stringify({ token: owner.token })}`);
      await e.next((p) => p.startsWith('40'));
      e.send('42[oops');
      assert.equal((await e.closed).code, 1002);
    });

    it('without a successful CONNECT the engine is closed after 10 s', async () => {
      const e = track(await rt.rawEngine());
      const t0 = Date.now();
      assert.equal((await e.closed).code, 4401);
      assert.ok(Date.now() - t0 >= 9000);
    });

    it('long-polling (transport=polling) answers HTTP 400 with the error shape', async () => {
      const r = await fetch(`${rt.A.ws.replace(/^ws/, 'http')}/socket.io/?EIO=4&transport=polling`);
      assert.equal(r.status, 400);
      const b = await r.json();
      assert.equal(b.error.code, 'invalid_parameter');
      assert.match(b.error.message, /websocket/);
    });

    it('an upgrade with EIO=3 or transport=polling is refused with 400', async () => {
      for (const query of ['EIO=3&transport=websocket', 'EIO=4&transport=polling', 'transport=websocket']) {
        const err = await rt.rawEngine({ query }).then(() => null, (x) => x);
        assert.equal(err && err.status, 400, query);
        assert.equal(JSON.parse(err.body).error.code, 'invalid_parameter', query);
      }
    });

    it('a disallowed Origin is refused with 403', async () => {
      const err = await rt.rawEngine({ headers: { Origin: 'https://evil.example' } }).then(() => null, (x) => x);
      assert.equal(err && err.status, 403);
    });
  });
});
