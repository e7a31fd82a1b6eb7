'use strict';
// Two instances of taskapi on one database and one Redis (API.md §8: "An
// event reaches every subscriber connected to any instance"): events, kicks
// and revocations made on one instance take effect on the other. Needs
// TASKAPI_URL_B and TASKAPI_WS_URL_B (and REDIS_URL on both servers).
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const rt = require('./support/realtime');

const skip = rt.missingEnv() ||
  (!rt.B.http || !rt.B.ws ? 'TASKAPI_URL_B / TASKAPI_WS_URL_B are not set (no second instance)' : false);

describe('two instances sharing Redis', { skip, timeout: 60000 }, () => {
  let owner;
  let member;
  let project;
  const open = [];
  const track = (c) => {
    open.push(c);
    return c;
  };

  before(async () => {
    owner = await rt.newUser('multi-owner');
    member = await rt.newUser('multi-member');
    project = await rt.createProject(owner);
    await rt.addMember(owner, project.id, member, 'member');
  });

  after(() => {
    for (const c of open) c.close();
  });

  it('/health on both says checks.redis "ok"', async () => {
    for (const base of [rt.A.http, rt.B.http]) {
      const h = await rt.api('GET', '/health', { base });
      assert.equal(h.status, 200, base);
      assert.equal(h.body.checks.redis, 'ok', base);
    }
  });

  it('a client on A receives the event caused by a REST call on B (native and Socket.IO)', async () => {
    const n = track(await rt.Native.ready(member, { base: rt.A.ws }));
    assert.equal((await n.join(`project:${project.id}`)).type, 'joined');
    const s = track(await rt.sioConnect(member.token, { base: rt.A.ws }));
    assert.deepEqual(await s.join(project.id), { ok: true });
    const task = await rt.createTask(owner, project.id, { title: 'made on B' }, rt.B.http);
    assert.deepEqual((await n.event('task:created')).data, { task });
    assert.deepEqual(await s.event('task:created'), { task });
  });

  // API.md §8: per-task order across instances while Redis is up. Each change
  // of a task is answered before the next is made, alternately through A and
  // B; a client on either must see every version once, in order. Several
  // tasks change side by side so that the instances are busy. (Before an
  // instance's own events went to its sockets through Redis too, a change
  // made here could overtake the one just made on the other instance, whose
  // event this instance had not read yet: v5 before v4.)
  it('and the other way round: many alternating changes of tasks, on both instances each version once, in order', async () => {
    const TASKS = 8;
    const ROUNDS = 40;
    const a = track(await rt.Native.ready(member, { base: rt.A.ws }));
    const b = track(await rt.Native.ready(member, { base: rt.B.ws }));
    assert.equal((await a.join(`project:${project.id}`)).type, 'joined');
    assert.equal((await b.join(`project:${project.id}`)).type, 'joined');
    const tasks = [];
    for (let k = 0; k < TASKS; k++) tasks.push(await rt.createTask(owner, project.id, { title: `t${k} v1` }, rt.A.http));
    await Promise.all(tasks.map(async (t, k) => {
      for (let i = 2; i <= ROUNDS + 1; i++) {
        await rt.ok(200, 'PATCH', `/tasks/${t.id}`, { token: owner.token, body: { title: `t${k} v${i}` }, base: (i + k) % 2 ? rt.A.http : rt.B.http });
      }
    }));
    const want = Array.from({ length: ROUNDS }, (_, i) => i + 2);
    for (const [name, c] of [['A', a], ['B', b]]) {
      for (const t of tasks) {
        const mine = (m) => m.data.task.id === t.id;
        await c.event('task:created', mine);
        const versions = [];
        for (let i = 0; i < ROUNDS; i++) versions.push((await c.event('task:updated', mine)).data.task.version);
        assert.deepEqual(versions, want, `the client on ${name} saw the versions of a task out of order`);
      }
      await rt.sleep(300); // a duplicate would be here by now
      for (const t of tasks) {
        await c.noEvent('task:created', (m) => m.data.task.id === t.id, 10);
        await c.noEvent('task:updated', (m) => m.data.task.id === t.id, 10);
      }
    }
  });

  it('notification:created reaches the user on the other instance', async () => {
    const s = track(await rt.sioConnect(member.token, { base: rt.B.ws }));
    await rt.createTask(owner, project.id, { title: 'assigned on A', assigneeId: member.id }, rt.A.http);
    const d = await s.event('notification:created', (x) => x.notification.type === 'task_assigned');
    assert.equal(d.notification.type, 'task_assigned');
  });

  it('removing a member on B ends the subscription on A at once', async () => {
    const gone = await rt.newUser('multi-gone');
    await rt.addMember(owner, project.id, gone, 'member');
    const n = track(await rt.Native.ready(gone, { base: rt.A.ws }));
    assert.equal((await n.join(`project:${project.id}`)).type, 'joined');
    const watcher = track(await rt.Native.ready(owner, { base: rt.A.ws }));
    assert.equal((await watcher.join(`project:${project.id}`)).type, 'joined');
    await rt.ok(204, 'DELETE', `/projects/${project.id}/members/${gone.id}`, { token: owner.token, base: rt.B.http });
    await n.event('member:removed', (m) => m.data.userId === gone.id);
    const t = await rt.createTask(owner, project.id, { title: 'after the kick' }, rt.B.http);
    await watcher.event('task:created', (m) => m.data.task.id === t.id);
    await n.noEvent('task:created', () => true, 300);
  });

  it('logging out on B closes the connection on A (4401), and A refuses the token too', async () => {
    const u = await rt.newUser('multi-logout');
    const n = track(await rt.Native.ready(u, { base: rt.A.ws }));
    await rt.ok(204, 'POST', '/auth/logout', { token: u.token, body: {}, base: rt.B.http });
    const closed = await Promise.race([n.closed, rt.sleep(3000).then(() => null)]);
    assert.equal(closed && closed.code, 4401);
    const me = await rt.api('GET', '/auth/me', { token: u.token, base: rt.A.http });
    assert.equal(me.status, 401);
  });

  it('changing the password on B closes every socket of the user on A and on B (4401 session ended)', async () => {
    const u = await rt.newUser('multi-password');
    const other = await rt.newUser('multi-password-other');
    const na = track(await rt.Native.ready(u, { base: rt.A.ws }));
    const nb = track(await rt.Native.ready(u, { base: rt.B.ws }));
    const sa = track(await rt.sioConnect(u.token, { base: rt.A.ws }));
    const bystander = track(await rt.Native.ready(other, { base: rt.A.ws }));
    await rt.ok(204, 'POST', '/auth/change-password', {
      token: u.token, body: { currentPassword: u.password, newPassword: 'another horse battery' }, base: rt.B.http,
    });
    for (const n of [na, nb]) {
      const closed = await Promise.race([n.closed, rt.sleep(3000).then(() => null)]);
      assert.deepEqual(closed, { code: 4401, reason: 'session ended' });
    }
    const reason = await Promise.race([sa.disconnected, rt.sleep(3000).then(() => null)]);
    assert.equal(reason, 'io server disconnect');
    bystander.send({ type: 'ping' });
    assert.equal((await bystander.take((m) => m.type === 'pong')).type, 'pong');
  });

  it('deleting the project on A empties its room on B', async () => {
    const p = await rt.createProject(owner, {}, rt.A.http);
    const b = track(await rt.Native.ready(owner, { base: rt.B.ws }));
    assert.equal((await b.join(`project:${p.id}`)).type, 'joined');
    await rt.ok(204, 'DELETE', `/projects/${p.id}`, { token: owner.token, base: rt.A.http });
    assert.deepEqual((await b.event('project:deleted')).data, { projectId: p.id });
  });
});
