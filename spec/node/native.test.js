'use strict';
// The native WebSocket protocol at /ws (API.md §8, §10): authentication by
// query or first message, ready, join/leave/ping, error codes, the event
// envelope, the user room, and the limits (Origin, sizes, binary frames).
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const rt = require('./support/realtime');

const skip = rt.missingEnv();

describe('native /ws', { skip, timeout: 180000 }, () => {
  let owner;
  let project;
  const open = [];
  const track = (c) => {
    open.push(c);
    return c;
  };

  before(async () => {
    owner = await rt.newUser('native');
    project = await rt.createProject(owner);
  });

  after(() => {
    for (const c of open) c.close();
  });

  describe('authentication', () => {
    it('?token= authenticates at once and the server says {"type":"ready","userId"}', async () => {
      const c = track(await rt.Native.open({ token: owner.token }));
      const m = await c.take();
      assert.deepEqual(m, { type: 'ready', userId: owner.id });
    });

    it('{"type":"auth","token"} as the first message authenticates', async () => {
      const c = track(await rt.Native.open());
      c.send({ type: 'auth', token: owner.token });
      assert.deepEqual(await c.take(), { type: 'ready', userId: owner.id });
      c.send({ type: 'ping' });
      assert.deepEqual(await c.take(), { type: 'pong' });
    });

    it('a bad ?token= is closed with 4401', async () => {
      const c = track(await rt.Native.open({ token: 'not-a-jwt' }));
      const { code } = await c.closed;
      assert.equal(code, 4401);
      assert.equal(c.raw.length, 0, 'nothing is sent before the close');
    });

    it('a bad token in the auth message is closed with 4401', async () => {
      const c = track(await rt.Native.open());
      c.send({ type: 'auth', token: `${owner.token}x` });
      assert.equal((await c.closed).code, 4401);
    });

    it('an auth message without a token is closed with 4401', async () => {
      const c = track(await rt.Native.open());
      c.send({ type: 'auth' });
      assert.equal((await c.closed).code, 4401);
    });

    it('any other first message is closed with 4401', async () => {
      const c = track(await rt.Native.open());
      c.send({ type: 'join', room: `project:${project.id}` });
      assert.equal((await c.closed).code, 4401);
    });

    it('a first message that is not JSON is closed with 4401', async () => {
      const c = track(await rt.Native.open());
      c.send('hello');
      assert.equal((await c.closed).code, 4401);
    });

    it('an expired token is closed with 4401', async (t) => {
      const now = Math.floor(Date.now() / 1000);
      const token = rt.forgeToken({ sub: owner.id, role: 'user', jti: crypto.randomUUID(), iat: now - 1000, exp: now - 10 });
      if (!token) return t.skip('JWT_SECRET is not set');
      // the same forger makes a valid token, so a 4401 here is the expiry
      const fresh = rt.forgeToken({ sub: owner.id, role: 'user', jti: crypto.randomUUID(), iat: now, exp: now + 60 });
      const good = track(await rt.Native.open({ token: fresh }));
      assert.deepEqual(await good.take(), { type: 'ready', userId: owner.id });
      const c = track(await rt.Native.open({ token }));
      assert.equal((await c.closed).code, 4401);
    });

    it('a revoked (logged out) token cannot connect: 4401', async () => {
      const u = await rt.newUser('native-out');
      await rt.ok(204, 'POST', '/auth/logout', { token: u.token, body: {} });
      const c = track(await rt.Native.open({ token: u.token }));
      assert.equal((await c.closed).code, 4401);
    });

    it('a second auth message after ready is refused with error code "conflict"', async () => {
      const c = track(await rt.Native.ready(owner));
      c.send({ type: 'auth', token: owner.token });
      const m = await c.take();
      assert.equal(m.type, 'error');
      assert.equal(m.code, 'conflict');
      assert.equal(typeof m.message, 'string');
    });
  });

  describe('messages', () => {
    let c;
    before(async () => {
      c = track(await rt.Native.ready(owner));
    });

    it('ping -> pong', async () => {
      c.send({ type: 'ping' });
      assert.deepEqual(await c.take(), { type: 'pong' });
    });

    it('join a project the user may read -> {"type":"joined","room"}', async () => {
      const m = await c.join(`project:${project.id}`);
      assert.deepEqual(m, { type: 'joined', room: `project:${project.id}` });
    });

    it('joining a room twice answers joined again', async () => {
      assert.equal((await c.join(`project:${project.id}`)).type, 'joined');
    });

    it('a project that does not exist -> error not_found', async () => {
      const m = await c.join('project:00000000-0000-4000-8000-000000000000');
      assert.equal(m.type, 'error');
      assert.equal(m.code, 'not_found');
      assert.equal(typeof m.message, 'string');
    });

    it('a malformed project id -> error not_found (never a server error)', async () => {
      for (const room of ['project:nope', "project:' OR 1=1 --", 'project:']) {
        const m = await c.join(room);
        assert.equal(m.code, 'not_found', room);
      }
    });

    it("another user's room and unknown room kinds -> not_found", async () => {
      const other = await rt.newUser('native-other');
      assert.equal((await c.join(`user:${other.id}`)).code, 'not_found');
      assert.equal((await c.join('admin:everything')).code, 'not_found');
      assert.equal((await c.join('lobby')).code, 'not_found');
    });

    it('joining its own user room is allowed', async () => {
      assert.deepEqual(await c.join(`user:${owner.id}`), { type: 'joined', room: `user:${owner.id}` });
    });

    it('a join without a room string -> error validation_failed', async () => {
      c.send({ type: 'join' });
      assert.equal((await c.take()).code, 'validation_failed');
      c.send({ type: 'join', room: 42 });
      assert.equal((await c.take()).code, 'validation_failed');
      c.send({ type: 'leave', room: '' });
      assert.equal((await c.take()).code, 'validation_failed');
    });

    it('an unknown type -> error validation_failed; the connection stays usable', async () => {
      c.send({ type: 'subscribe', room: 'x' });
      assert.equal((await c.take()).code, 'validation_failed');
      c.send({ room: 'x' });
      assert.equal((await c.take()).code, 'validation_failed');
      c.send({ type: 'ping' });
      assert.deepEqual(await c.take(), { type: 'pong' });
    });

    it('text that is not a JSON object -> error invalid_json', async () => {
      for (const bad of ['{', 'null', '[1,2]', '"join"', '{"type":"ping"} trailing']) {
        c.send(bad);
        const m = await c.take();
        assert.equal(m.type, 'error', bad);
        assert.equal(m.code, 'invalid_json', bad);
      }
    });

    it('events arrive as {"type":"event","event","room","data"}', async () => {
      const task = await rt.createTask(owner, project.id, { title: 'envelope' });
      const m = await c.event('task:created', (x) => x.data.task.id === task.id);
      assert.deepEqual(Object.keys(m).sort(), ['data', 'event', 'room', 'type']);
      assert.equal(m.room, `project:${project.id}`);
      assert.deepEqual(m.data, { task });
    });

    it('leave -> {"type":"left","room"}, and no more events from that room', async () => {
      c.send({ type: 'leave', room: `project:${project.id}` });
      assert.deepEqual(await c.take(), { type: 'left', room: `project:${project.id}` });
      await rt.createTask(owner, project.id, { title: 'after leave' });
      await c.noEvent('task:created');
    });

    it('leaving a room it is not in still answers left', async () => {
      c.send({ type: 'leave', room: 'project:00000000-0000-4000-8000-000000000000' });
      assert.equal((await c.take()).type, 'left');
    });

    it('messages are answered in order, also behind a join check', async () => {
      c.send({ type: 'join', room: `project:${project.id}` });
      c.send({ type: 'ping' });
      c.send({ type: 'leave', room: `project:${project.id}` });
      c.send({ type: 'ping' });
      const got = [];
      for (let i = 0; i < 4; i++) got.push((await c.take()).type);
      assert.deepEqual(got, ['joined', 'pong', 'left', 'pong']);
    });
  });

  describe('the user room', () => {
    it('every connection is in user:<id> from the start (notification:created arrives unasked)', async () => {
      const member = await rt.newUser('native-member');
      await rt.addMember(owner, project.id, member, 'member');
      const c = track(await rt.Native.ready(member));
      const task = await rt.createTask(owner, project.id, { title: 'for you', assigneeId: member.id });
      const m = await c.event('notification:created');
      assert.equal(m.room, `user:${member.id}`);
      assert.equal(m.data.notification.type, 'task_assigned');
      assert.equal(JSON.stringify(m.data.notification).includes(task.id), true);
    });
  });

  describe('transport limits', () => {
    it('a disallowed Origin is refused with 403 before the upgrade', async () => {
      const err = await rt.Native.open({ token: owner.token, headers: { Origin: 'https://evil.example' } })
        .then(() => null, (e) => e);
      assert.ok(err, 'the upgrade must fail');
      assert.equal(err.status, 403);
      assert.equal(JSON.parse(err.body).error.code, 'forbidden');
    });

    it('no Origin header (a non-browser client) is allowed', async () => {
      const c = track(await rt.Native.ready(owner));
      c.send({ type: 'ping' });
      assert.deepEqual(await c.take(), { type: 'pong' });
    });

    it('an upgrade on an unknown path answers 404 not_found', async () => {
      const err = await rt.Native.open({ token: owner.token, path: '/nope' }).then(() => null, (e) => e);
      assert.equal(err && err.status, 404);
      assert.equal(JSON.parse(err.body).error.code, 'not_found');
    });

    it('plain HTTP GET /ws answers 400 with the error shape', async () => {
      const r = await fetch(`${rt.A.ws.replace(/^ws/, 'http')}/ws`);
      assert.equal(r.status, 400);
      const b = await r.json();
      assert.equal(b.error.code, 'invalid_parameter');
      assert.equal(typeof b.error.message, 'string');
    });

    it('a message over 64 KiB is closed with 1009', async () => {
      const c = track(await rt.Native.ready(owner));
      c.send({ type: 'ping', pad: 'x'.repeat(70 * 1024) });
      assert.equal((await c.closed).code, 1009);
    });

    it('a binary frame is closed with 1003', async () => {
      const c = track(await rt.Native.ready(owner));
      c.ws.send(Buffer.from([1, 2, 3]));
      assert.equal((await c.closed).code, 1003);
    });

    it('fragmented messages are joined', async () => {
      const c = track(await rt.Native.ready(owner));
      const text = JSON.stringify({ type: 'ping' });
      c.ws.send(text.slice(0, 5), { fin: false });
      c.ws.send(text.slice(5), { fin: true });
      assert.deepEqual(await c.take(), { type: 'pong' });
    });

    it('a client that stops reading is disconnected (1008) instead of buffering without bound', async () => {
      const slow = track(await rt.Native.ready(owner));
      assert.equal((await slow.join(`project:${project.id}`)).type, 'joined');
      const fast = track(await rt.Native.ready(owner));
      assert.equal((await fast.join(`project:${project.id}`)).type, 'joined');
      // The server's count of clients it closed for a full queue: the flood
      // stops as soon as it moves, so the paused client resumes while the
      // server still holds its close frame (a client paused much longer
      // is dropped without one, 1006, as it should be; on a loaded machine
      // the 250 writes below can take that long).
      const overflows = async () => {
        const text = await (await fetch(`${rt.A.http}/metrics`)).text();
        const m = text.match(/^taskapi_websocket_overflow_disconnects_total (\d+)$/m);
        assert.ok(m, 'no overflow counter on /metrics');
        return Number(m[1]);
      };
      const before = await overflows();
      slow.ws._socket.pause(); // TCP back-pressure: the server's queue for it grows
      const description = 'x'.repeat(50000);
      // ~50 kB per event: kernel buffers fill first, then the 1 MiB queue bound.
      for (let i = 0; i < 250; i++) {
        await rt.createTask(owner, project.id, { title: `flood ${i}`, description });
        if (i % 5 === 4 && (await overflows()) > before) break;
      }
      slow.ws._socket.resume();
      const { code } = await Promise.race([slow.closed, rt.sleep(15000).then(() => ({ code: 'none' }))]);
      assert.equal(code, 1008);
      // the server and the other subscriber are fine
      fast.send({ type: 'ping' });
      await fast.take((m) => m.type === 'pong', 10000, 'pong');
      const h = await rt.api('GET', '/health');
      assert.equal(h.status, 200);
    });
  });
});

// Kept apart so the 10 s wait runs alongside the other files.
describe('native /ws auth deadline', { skip, timeout: 30000 }, () => {
  it('a connection that does not authenticate within 10 s is closed with 4401', async () => {
    const t0 = Date.now();
    const c = await rt.Native.open();
    const { code } = await c.closed;
    const waited = Date.now() - t0;
    assert.equal(code, 4401);
    assert.ok(waited >= 9000 && waited < 15000, `closed after ${waited} ms`);
  });
});
