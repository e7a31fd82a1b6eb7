'use strict';
// Every event of API.md §8 reaches subscribers of both protocols with the
// documented data, only after commit, in commit order per project.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const rt = require('./support/realtime');

const skip = rt.missingEnv();

describe('events (API.md §8)', { skip, timeout: 60000 }, () => {
  let owner;
  let member;
  let project;
  let native; // owner on /ws, joined
  let sio;    // member on Socket.IO, joined
  let task;
  let comment;

  // Waits for `name` on both clients; checks both got the same data.
  async function both(name, pred = () => true) {
    const [n, s] = await Promise.all([native.event(name, (m) => pred(m.data)), sio.event(name, pred)]);
    assert.equal(n.room, `project:${project.id}`);
    assert.deepEqual(n.data, s, 'the two protocols carry the same data');
    return s;
  }

  before(async () => {
    owner = await rt.newUser('ev-owner');
    member = await rt.newUser('ev-member');
    project = await rt.createProject(owner, { description: 'events' });
    await rt.addMember(owner, project.id, member, 'member');
    native = await rt.Native.ready(owner);
    assert.equal((await native.join(`project:${project.id}`)).type, 'joined');
    sio = await rt.sioConnect(member.token);
    assert.deepEqual(await sio.join(project.id), { ok: true });
  });

  after(() => {
    if (native) native.close();
    if (sio) sio.close();
  });

  it('task:created {task}', async () => {
    task = await rt.createTask(member, project.id, { title: 'write specs', priority: 'high' });
    const d = await both('task:created', (x) => x.task.id === task.id);
    assert.deepEqual(d, { task });
  });

  it('task:updated {task, changes}', async () => {
    const r = await rt.ok(200, 'PATCH', `/tasks/${task.id}`, { token: member.token, body: { status: 'in_progress', title: 'write more specs' } });
    const d = await both('task:updated', (x) => x.task.id === task.id);
    assert.deepEqual(d.task, r.data);
    assert.deepEqual([...d.changes].sort(), ['status', 'title']);
  });

  it('comment:created {comment, taskId}', async () => {
    const r = await rt.ok(201, 'POST', `/tasks/${task.id}/comments`, { token: owner.token, body: { content: 'looks good' } });
    comment = r.data;
    const d = await both('comment:created', (x) => x.comment.id === comment.id);
    assert.deepEqual(d, { comment, taskId: task.id });
  });

  it('comment:updated {comment, taskId}', async () => {
    const r = await rt.ok(200, 'PATCH', `/comments/${comment.id}`, { token: owner.token, body: { content: 'looks great' } });
    const d = await both('comment:updated', (x) => x.comment.id === comment.id);
    assert.deepEqual(d, { comment: r.data, taskId: task.id });
  });

  it('comment:deleted {commentId, taskId}', async () => {
    await rt.ok(204, 'DELETE', `/comments/${comment.id}`, { token: owner.token });
    const d = await both('comment:deleted');
    assert.deepEqual(d, { commentId: comment.id, taskId: task.id });
  });

  it('notification:created {notification} on the recipient user room only', async () => {
    const r = await rt.ok(200, 'PATCH', `/tasks/${task.id}`, { token: owner.token, body: { assigneeId: member.id } });
    assert.equal(r.data.assigneeId, member.id);
    // (the comment above already notified the creator: task_commented)
    const d = await sio.event('notification:created', (x) => x.notification.type === 'task_assigned');
    assert.deepEqual(Object.keys(d), ['notification']);
    for (const k of ['id', 'type', 'data', 'readAt', 'createdAt']) assert.ok(k in d.notification, k);
    await native.noEvent('notification:created', () => true, 300);
  });

  it('task:deleted {taskId, projectId}', async () => {
    await rt.ok(204, 'DELETE', `/tasks/${task.id}`, { token: owner.token });
    const d = await both('task:deleted', (x) => x.taskId === task.id);
    assert.deepEqual(d, { taskId: task.id, projectId: project.id });
  });

  it('project:updated {project}', async () => {
    const r = await rt.ok(200, 'PATCH', `/projects/${project.id}`, { token: owner.token, body: { name: 'renamed' } });
    const d = await both('project:updated');
    assert.equal(d.project.id, project.id);
    assert.equal(d.project.name, 'renamed');
    assert.equal(d.project.updatedAt, r.data.updatedAt);
    // Every subscriber gets the same message: the viewer's own role is not in it.
    assert.equal(d.project.role, null);
    assert.equal(d.project.memberCount, r.data.memberCount);
  });

  let third;
  it('member:added {member}', async () => {
    third = await rt.newUser('ev-third');
    const m = await rt.addMember(owner, project.id, third, 'viewer');
    const d = await both('member:added', (x) => x.member.userId === third.id);
    assert.deepEqual(d, { member: m });
  });

  it('member:updated {member}', async () => {
    const r = await rt.ok(200, 'PATCH', `/projects/${project.id}/members/${third.id}`, { token: owner.token, body: { role: 'member' } });
    const d = await both('member:updated', (x) => x.member.userId === third.id);
    assert.deepEqual(d, { member: r.data });
    assert.equal(d.member.role, 'member');
  });

  it('member:removed {userId, projectId}', async () => {
    await rt.ok(204, 'DELETE', `/projects/${project.id}/members/${third.id}`, { token: owner.token });
    const d = await both('member:removed', (x) => x.userId === third.id);
    assert.deepEqual(d, { userId: third.id, projectId: project.id });
  });

  it('events come in commit order', async () => {
    const t = await rt.createTask(owner, project.id, { title: 'v1' });
    for (let i = 2; i <= 6; i++) {
      await rt.ok(200, 'PATCH', `/tasks/${t.id}`, { token: owner.token, body: { title: `v${i}` } });
    }
    await native.event('task:created', (m) => m.data.task.id === t.id);
    await sio.event('task:created', (x) => x.task.id === t.id);
    const nv = [];
    const sv = [];
    for (let i = 2; i <= 6; i++) {
      nv.push((await native.event('task:updated', (m) => m.data.task.id === t.id)).data.task.version);
      sv.push((await sio.event('task:updated', (x) => x.task.id === t.id)).task.version);
    }
    assert.deepEqual(nv, [2, 3, 4, 5, 6]);
    assert.deepEqual(sv, [2, 3, 4, 5, 6]);
  });

  it('a write that fails sends no event', async () => {
    const r = await rt.api('POST', `/projects/${project.id}/tasks`, { token: owner.token, body: { title: '' } });
    assert.equal(r.status, 422);
    const v = await rt.api('POST', `/projects/${project.id}/tasks`, { token: rt.uniqueEmail(), body: { title: 'x' } });
    assert.equal(v.status, 401);
    await native.noEvent('task:created', () => true, 400);
    await sio.noEvent('task:created', () => true, 100);
  });

  it('project:deleted {projectId}, then the room is closed', async () => {
    await rt.ok(204, 'DELETE', `/projects/${project.id}`, { token: owner.token });
    const d = await both('project:deleted');
    assert.deepEqual(d, { projectId: project.id });
    // gone for good: joining again is not_found
    assert.equal((await native.join(`project:${project.id}`)).code, 'not_found');
    assert.deepEqual(await sio.join(project.id), { ok: false, error: 'not_found' });
  });
});
