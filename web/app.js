// taskapi web client: one ES module, no framework, no build step. It speaks
// only the public API (/api/v1) and the native realtime endpoint (/ws).
// The access token lives in memory; the refresh token in sessionStorage (see
// README "Web client" for why). Everything user-supplied reaches the DOM as
// text; search snippets go through renderSnippet, which allows <mark> only.

const API = '/api/v1';
const STATUSES = [
  ['todo', 'To do'], ['in_progress', 'In progress'], ['in_review', 'In review'],
  ['done', 'Done'], ['cancelled', 'Cancelled'],
];
const STATUS_NAME = Object.fromEntries(STATUSES);
const PRIORITIES = ['low', 'medium', 'high', 'urgent'];
const REFRESH_KEY = 'taskapi.refresh';

const state = {
  access: null, user: null, config: null,
  ws: null, wsRetry: 0, room: null,
  project: null, tasks: new Map(), members: [],
  detail: null, // {task, dirty, comments}
  unread: 0,
};

const $ = (sel, root = document) => root.querySelector(sel);

// h('button', {type: 'button', onclick: f}, 'text', child...): a DOM element.
// Strings become text nodes, never markup.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function say(text) { // screen readers hear it; tests can read it
  const live = $('#live');
  live.textContent = '';
  setTimeout(() => { live.textContent = text; }, 20);
}

function banner(text) {
  const b = $('#banner');
  b.textContent = text || '';
  b.hidden = !text;
}

// ---- API ------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
    this.details = body?.error?.details;
  }
}

let refreshing = null;

async function refresh() {
  const token = sessionStorage.getItem(REFRESH_KEY);
  if (!token) return false;
  refreshing ||= (async () => {
    const res = await fetch(API + '/auth/refresh', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refreshToken: token }),
    });
    if (!res.ok) { sessionStorage.removeItem(REFRESH_KEY); return false; }
    setSession((await res.json()).data);
    return true;
  })().finally(() => { refreshing = null; });
  return refreshing;
}

// api('PATCH', '/tasks/1', {status}, {'If-Match': '"3"'}) -> parsed body.
// A 401 with a token refreshes once and retries; errors throw ApiError.
async function api(method, path, body, headers = {}, retried = false) {
  const opts = { method, headers: { ...headers } };
  if (state.access) opts.headers.Authorization = 'Bearer ' + state.access;
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(API + path, opts);
  if (res.status === 401 && state.access && !retried) {
    if (await refresh()) return api(method, path, body, headers, true);
    signedOut('Your session ended; please sign in again.');
  }
  const text = res.status === 204 ? '' : await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

function setSession(d) {
  state.access = d.accessToken;
  state.user = d.user;
  sessionStorage.setItem(REFRESH_KEY, d.refreshToken);
  showUser();
}

function showUser() {
  const on = !!state.user;
  $('#user-nav').hidden = !on;
  $('#search-form').hidden = !on;
  $('#who').textContent = on ? state.user.name : '';
}

function signedOut(message) {
  state.access = null;
  state.user = null;
  sessionStorage.removeItem(REFRESH_KEY);
  closeSocket();
  showUser();
  banner(message || '');
  location.hash = '#/signin';
}

// ---- realtime (native WebSocket, API.md §8) ---------------------------------

function wsUrl() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const c = state.config;
  // A bare taskapi serves realtime on WS_PORT; behind a proxy (another port
  // than the server's own) it is on the page's origin.
  if (c && String(c.httpPort) === (location.port || (location.protocol === 'https:' ? '443' : '80')))
    return `${proto}//${location.hostname}:${c.wsPort}/ws`;
  return `${proto}//${location.host}/ws`;
}

function openSocket() {
  if (state.ws || !state.access) return;
  const ws = new WebSocket(wsUrl());
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: state.access }));
  ws.onmessage = (m) => {
    let msg;
    try { msg = JSON.parse(m.data); } catch { return; }
    if (msg.type === 'ready') {
      state.wsRetry = 0;
      document.body.dataset.live = 'on';
      if (state.room) ws.send(JSON.stringify({ type: 'join', room: state.room }));
    } else if (msg.type === 'joined') {
      document.body.dataset.joined = msg.room;
    } else if (msg.type === 'event') {
      onEvent(msg.event, msg.data || {});
    }
  };
  ws.onclose = (e) => {
    if (state.ws !== ws) return;
    state.ws = null;
    delete document.body.dataset.live;
    delete document.body.dataset.joined;
    if (!state.access) return;
    const again = async () => {
      if (e.code === 4401) await refresh();
      openSocket();
      if (state.project) loadBoard(state.project.id, true); // catch up on what we missed
    };
    setTimeout(again, Math.min(10000, 500 * 2 ** state.wsRetry++));
  };
}

function closeSocket() {
  const ws = state.ws;
  state.ws = null;
  if (ws) ws.close(1000);
}

function joinRoom(room) {
  const ws = state.ws;
  if (state.room && state.room !== room && ws?.readyState === 1)
    ws.send(JSON.stringify({ type: 'leave', room: state.room }));
  state.room = room;
  delete document.body.dataset.joined;
  if (room && ws?.readyState === 1 && document.body.dataset.live)
    ws.send(JSON.stringify({ type: 'join', room }));
}

function onEvent(name, d) {
  const p = state.project;
  switch (name) {
    case 'task:created':
    case 'task:updated':
      if (p && d.task?.projectId === p.id) {
        state.tasks.set(d.task.id, d.task);
        renderCard(d.task);
        if (state.detail?.task.id === d.task.id) detailChanged(d.task);
      }
      break;
    case 'task:deleted':
      if (p && d.projectId === p.id) {
        state.tasks.delete(d.taskId);
        document.getElementById('task-' + d.taskId)?.remove();
        updateCounts();
      }
      break;
    case 'comment:created':
    case 'comment:updated':
    case 'comment:deleted':
      if (state.detail?.task.id === d.taskId) loadComments();
      break;
    case 'member:added':
    case 'member:updated':
      if (p) loadMembers();
      break;
    case 'member:removed':
      if (p && d.projectId === p.id) {
        if (d.userId === state.user?.id) removedFromProject();
        else loadMembers();
      }
      break;
    case 'project:updated':
      if (p && d.project?.id === p.id) {
        state.project = { ...p, ...d.project, role: p.role };
        const t = $('#board-title');
        if (t) t.textContent = state.project.name;
      }
      break;
    case 'project:deleted':
      if (p && d.projectId === p.id) {
        banner('This project was deleted.');
        location.hash = '#/projects';
      }
      break;
    case 'notification:created':
      setUnread(state.unread + 1);
      if (!$('#notif-panel').hidden) openNotifications();
      break;
  }
}

function removedFromProject() {
  state.tasks.clear();
  closeDetail();
  const board = $('#board');
  if (board) board.replaceChildren();
  joinRoom(null);
  state.project = null;
  banner('You were removed from this project.');
  say('You were removed from this project.');
}

// ---- routing --------------------------------------------------------------

async function route() {
  const [path, qs] = (location.hash.slice(1) || '/projects').split('?');
  const q = new URLSearchParams(qs || '');
  const parts = path.split('/').filter(Boolean);
  const open = ['signin', 'signup', 'forgot', 'reset-password', 'verify-email'];
  if (!state.user && !open.includes(parts[0])) {
    location.hash = '#/signin';
    return;
  }
  if (parts[0] !== 'projects' || !parts[1] || parts[2]) joinRoom(null);
  if (!(parts[0] === 'projects' && parts[1])) state.project = null;
  closeDetail();
  $('#notif-panel').hidden = true;
  const main = $('#main');
  main.replaceChildren();
  switch (parts[0]) {
    case 'signin': return pageSignIn(main);
    case 'signup': return pageSignUp(main);
    case 'forgot': return pageForgot(main);
    case 'reset-password': return pageReset(main, q.get('token'));
    case 'verify-email': return pageVerify(main, q.get('token'));
    case 'search': return pageSearch(main, q.get('q') || '');
    case 'projects':
      if (parts[1] && parts[2] === 'settings') return pageSettings(main, parts[1]);
      if (parts[1]) return pageBoard(main, parts[1], q.get('task'));
      return pageProjects(main);
    default: return pageProjects(main);
  }
}

function errorText(e) {
  if (e instanceof ApiError && e.details?.length)
    return e.message + ': ' + e.details.map((d) => `${d.field} ${d.message}`).join('; ');
  return e.message || String(e);
}

// form(onsubmit, ...fields): a form whose submit handler gets FormData values
// and shows errors in its own error line.
function form(label, onsubmit, ...children) {
  const err = h('p', { class: 'error', role: 'alert' });
  const f = h('form', {
    'aria-label': label,
    onsubmit: async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      const btn = f.querySelector('button[type=submit]');
      if (btn) btn.disabled = true;
      try {
        await onsubmit(Object.fromEntries(new FormData(f)), f);
      } catch (e) {
        err.textContent = errorText(e);
      } finally {
        if (btn) btn.disabled = false;
      }
    },
  }, ...children, err);
  return f;
}

function field(label, name, attrs = {}) {
  const id = 'f-' + name + '-' + Math.random().toString(36).slice(2, 7);
  return [h('label', { for: id }, label), h('input', { id, name, ...attrs })];
}

// ---- auth pages -----------------------------------------------------------

function pageSignIn(main) {
  main.append(h('section', { class: 'panel' },
    h('h1', {}, 'Sign in'),
    form('Sign in', async (v) => {
      const r = await api('POST', '/auth/login', { email: v.email, password: v.password });
      setSession(r.data);
      banner('');
      openSocket();
      loadUnread();
      location.hash = '#/projects';
    },
    field('Email', 'email', { type: 'email', required: true, autocomplete: 'username' }),
    field('Password', 'password', { type: 'password', required: true, autocomplete: 'current-password' }),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Sign in'))),
    h('p', {}, h('a', { href: '#/signup' }, 'Create an account'), ' · ',
      h('a', { href: '#/forgot' }, 'Forgot your password?'))));
}

function pageSignUp(main) {
  main.append(h('section', { class: 'panel' },
    h('h1', {}, 'Create an account'),
    form('Sign up', async (v) => {
      await api('POST', '/auth/register', { name: v.name, email: v.email, password: v.password });
      const r = await api('POST', '/auth/login', { email: v.email, password: v.password });
      setSession(r.data);
      banner('Welcome! We sent you a mail to verify your address.');
      openSocket();
      loadUnread();
      location.hash = '#/projects';
    },
    field('Name', 'name', { required: true, maxlength: 100, autocomplete: 'name' }),
    field('Email', 'email', { type: 'email', required: true, autocomplete: 'username' }),
    field('Password (8 characters or more)', 'password',
      { type: 'password', required: true, minlength: 8, autocomplete: 'new-password' }),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Sign up'))),
    h('p', {}, 'Already registered? ', h('a', { href: '#/signin' }, 'Sign in'))));
}

function pageForgot(main) {
  const done = h('p', { role: 'status' });
  main.append(h('section', { class: 'panel' },
    h('h1', {}, 'Forgot your password?'),
    form('Forgot password', async (v) => {
      await api('POST', '/auth/forgot-password', { email: v.email });
      done.textContent = 'If that address has an account, a mail with a reset link is on its way.';
    },
    field('Email', 'email', { type: 'email', required: true }),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Send reset link'))),
    done, h('p', {}, h('a', { href: '#/signin' }, 'Back to sign in'))));
}

function pageReset(main, token) {
  main.append(h('section', { class: 'panel' },
    h('h1', {}, 'Choose a new password'),
    form('Reset password', async (v) => {
      await api('POST', '/auth/reset-password', { token, password: v.password });
      banner('Your password was changed. Sign in with the new one.');
      location.hash = '#/signin';
    },
    field('New password', 'password', { type: 'password', required: true, minlength: 8, autocomplete: 'new-password' }),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Set password')))));
}

async function pageVerify(main, token) {
  const msg = h('p', { role: 'status' }, 'Verifying…');
  main.append(h('section', { class: 'panel' }, h('h1', {}, 'Email verification'), msg,
    h('p', {}, h('a', { href: state.user ? '#/projects' : '#/signin' }, 'Continue'))));
  try {
    await api('POST', '/auth/verify-email', { token: token || '' });
    msg.textContent = 'Your email address is verified.';
  } catch (e) {
    msg.textContent = 'This link is invalid or has expired.';
    msg.className = 'error';
  }
}

// ---- projects ---------------------------------------------------------------

async function pageProjects(main) {
  const list = h('ul', { class: 'list', 'aria-label': 'Your projects' });
  main.append(h('h1', {}, 'Projects'),
    form('New project', async (v, f) => {
      const r = await api('POST', '/projects', { name: v.name, description: v.description, visibility: v.visibility });
      f.reset();
      location.hash = '#/projects/' + r.data.id;
    },
    h('div', { class: 'row' },
      h('div', {}, ...field('Project name', 'name', { required: true, maxlength: 200 })),
      h('div', {}, ...field('Description', 'description', { maxlength: 10000 })),
      h('div', {}, h('label', { for: 'np-vis' }, 'Visibility'),
        h('select', { id: 'np-vis', name: 'visibility' },
          h('option', { value: 'private' }, 'Private'), h('option', { value: 'public' }, 'Public'))),
      h('button', { type: 'submit' }, 'Create project'))),
    h('h2', {}, 'Your projects'), list);
  const r = await api('GET', '/projects?limit=100');
  if (!r.data.length) list.append(h('li', { class: 'note' }, 'No projects yet: create one above.'));
  for (const p of r.data)
    list.append(h('li', {}, h('a', { href: '#/projects/' + p.id }, p.name), ' ',
      h('span', { class: 'note' }, `${p.role} · ${p.memberCount} member${p.memberCount === 1 ? '' : 's'} · ${p.visibility}${p.status === 'archived' ? ' · archived' : ''}`)));
}

const canAdmin = (p) => p && (p.role === 'owner' || p.role === 'admin' || state.user?.role === 'admin');
const canWrite = (p) => p && (canAdmin(p) || p.role === 'member');

async function pageSettings(main, id) {
  const p = (await api('GET', '/projects/' + id)).data;
  state.project = p;
  const members = h('tbody');
  main.append(h('p', {}, h('a', { href: '#/projects/' + id }, '← Board')),
    h('h1', {}, 'Settings: ', p.name));
  if (canAdmin(p)) {
    main.append(form('Project settings', async (v) => {
      const r = await api('PATCH', '/projects/' + id,
        { name: v.name, description: v.description, visibility: v.visibility, status: v.status });
      state.project = { ...state.project, ...r.data };
      say('Project saved.');
    },
    ...field('Name', 'name', { required: true, value: p.name, maxlength: 200 }),
    ...field('Description', 'description', { value: p.description || '', maxlength: 10000 }),
    h('label', { for: 'ps-vis' }, 'Visibility'),
    h('select', { id: 'ps-vis', name: 'visibility' }, ['private', 'public'].map((x) =>
      h('option', { value: x, selected: p.visibility === x }, x))),
    h('label', { for: 'ps-status' }, 'Status'),
    h('select', { id: 'ps-status', name: 'status' }, ['active', 'archived'].map((x) =>
      h('option', { value: x, selected: p.status === x }, x))),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Save settings'))));
  }
  main.append(h('h2', {}, 'Members'),
    h('table', { class: 'members' }, h('thead', {}, h('tr', {},
      h('th', {}, 'Name'), h('th', {}, 'Email'), h('th', {}, 'Role'), h('th', {}, h('span', { class: 'sr-only' }, 'Actions')))), members));
  if (canAdmin(p)) {
    main.append(h('h2', {}, 'Add a member'), form('Add member', async (v, f) => {
      await api('POST', `/projects/${id}/members`, { email: v.email, role: v.role });
      f.reset();
      say('Member added.');
      await fillMembers();
    },
    h('div', { class: 'row' },
      h('div', {}, ...field('Email', 'email', { type: 'email', required: true })),
      h('div', {}, h('label', { for: 'am-role' }, 'Role'), h('select', { id: 'am-role', name: 'role' },
        ['member', 'viewer', 'admin'].map((x) => h('option', { value: x }, x)))),
      h('button', { type: 'submit' }, 'Add member'))));
  }
  async function fillMembers() {
    const r = await api('GET', `/projects/${id}/members?limit=100`);
    members.replaceChildren(...r.data.map((m) => {
      const actions = h('td');
      if (canAdmin(p) && m.role !== 'owner') {
        actions.append(h('button', {
          type: 'button', class: 'danger', 'aria-label': 'Remove ' + m.name,
          onclick: async () => {
            await api('DELETE', `/projects/${id}/members/${m.userId}`);
            say(m.name + ' removed.');
            await fillMembers();
          },
        }, 'Remove'));
      }
      const role = canAdmin(p) && m.role !== 'owner'
        ? h('select', {
          'aria-label': 'Role of ' + m.name,
          onchange: async (ev) => {
            try {
              await api('PATCH', `/projects/${id}/members/${m.userId}`, { role: ev.target.value });
              say('Role changed.');
            } catch (e) { banner(errorText(e)); await fillMembers(); }
          },
        }, ['admin', 'member', 'viewer'].map((x) => h('option', { value: x, selected: m.role === x }, x)))
        : m.role;
      return h('tr', {}, h('td', {}, m.name), h('td', {}, m.email), h('td', {}, role), actions);
    }));
  }
  await fillMembers();
}

// ---- the board --------------------------------------------------------------

async function loadMembers() {
  if (!state.project) return;
  try {
    state.members = (await api('GET', `/projects/${state.project.id}/members?limit=100`)).data;
  } catch { return; /* the board shows the error */ }
  for (const t of state.tasks.values()) renderCard(t); // assignee names
}

async function fetchAllTasks(projectId) {
  const all = [];
  let cursor = null;
  do {
    const r = await api('GET', `/projects/${projectId}/tasks?limit=100&sort=createdAt` + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
    all.push(...r.data);
    cursor = r.meta?.nextCursor;
  } while (cursor && all.length < 1000);
  return all;
}

async function loadBoard(id, quiet) {
  try {
    const tasks = await fetchAllTasks(id);
    if (state.project?.id !== id) return;
    state.tasks = new Map(tasks.map((t) => [t.id, t]));
    for (const col of document.querySelectorAll('.column .cards')) col.replaceChildren();
    for (const t of tasks) renderCard(t);
  } catch (e) {
    if (e.status === 404) return removedFromProject();
    if (!quiet) banner(errorText(e));
  }
}

async function pageBoard(main, id, openTask) {
  let p;
  try {
    p = (await api('GET', '/projects/' + id)).data;
  } catch (e) {
    main.append(h('h1', {}, 'Project not found'), h('p', {}, h('a', { href: '#/projects' }, 'Back to projects')));
    return;
  }
  state.project = p;
  const board = h('div', { id: 'board', class: 'board' }, STATUSES.map(([s, name]) => {
    const cards = h('div', { class: 'cards', role: 'list', 'aria-label': name });
    const col = h('section', {
      class: 'column', dataset: { status: s }, 'aria-labelledby': 'col-' + s,
      ondragover: (ev) => { ev.preventDefault(); col.classList.add('over'); },
      ondragleave: () => col.classList.remove('over'),
      ondrop: (ev) => {
        ev.preventDefault();
        col.classList.remove('over');
        const tid = ev.dataTransfer.getData('text/plain');
        if (tid) moveTask(tid, s);
      },
    }, h('h2', { id: 'col-' + s }, name, ' ', h('span', { class: 'count note' }, '0')), cards);
    return col;
  }));
  main.append(
    h('div', { class: 'board-head' },
      h('h1', { id: 'board-title' }, p.name),
      h('a', { href: `#/projects/${id}/settings` }, canAdmin(p) ? 'Settings & members' : 'Members')),
    h('p', { class: 'note', id: 'board-help' },
      'Drag a card to another column, or focus it and press Alt+→ / Alt+← to move it.'),
    canWrite(p) ? form('Create a task', async (v, f) => {
      const r = await api('POST', `/projects/${id}/tasks`, { title: v.title });
      state.tasks.set(r.data.id, r.data);
      renderCard(r.data);
      f.reset();
      say('Task created.');
    }, h('div', { class: 'row' },
      h('div', {}, ...field('New task', 'title', { required: true, maxlength: 500 })),
      h('button', { type: 'submit' }, 'Add task'))) : '',
    board);
  joinRoom('project:' + id);
  await Promise.all([loadBoard(id), loadMembers()]);
  if (openTask && state.tasks.has(openTask)) openDetail(openTask);
}

function memberName(uid) {
  return state.members.find((m) => m.userId === uid)?.name;
}

function renderCard(t) {
  const col = document.querySelector(`.column[data-status="${t.status}"] .cards`);
  let card = document.getElementById('task-' + t.id);
  if (!col) return;
  const fresh = h('article', {
    id: 'task-' + t.id, class: 'card', tabindex: 0, draggable: 'true', role: 'listitem',
    dataset: { id: t.id, version: t.version }, 'aria-describedby': 'board-help',
    'aria-keyshortcuts': 'Alt+ArrowLeft Alt+ArrowRight',
    ondragstart: (ev) => { ev.dataTransfer.setData('text/plain', t.id); ev.dataTransfer.effectAllowed = 'move'; },
    onkeydown: (ev) => {
      if (!ev.altKey || (ev.key !== 'ArrowRight' && ev.key !== 'ArrowLeft')) return;
      ev.preventDefault();
      const cur = state.tasks.get(t.id);
      const i = STATUSES.findIndex(([s]) => s === cur.status) + (ev.key === 'ArrowRight' ? 1 : -1);
      if (i >= 0 && i < STATUSES.length) moveTask(t.id, STATUSES[i][0], true);
    },
  },
  h('button', { type: 'button', class: 'title', onclick: () => openDetail(t.id) }, t.title),
  h('div', { class: 'meta' },
    h('span', { class: 'prio-' + t.priority }, t.priority),
    t.assigneeId ? ` · ${memberName(t.assigneeId) || 'assigned'}` : '',
    t.dueDate ? ` · due ${t.dueDate.slice(0, 10)}` : ''),
  t.tags?.length ? h('div', { class: 'meta' }, t.tags.map((x) => h('span', { class: 'tag' }, x))) : '');
  if (card?.classList.contains('conflict')) {
    fresh.classList.add('conflict');
    fresh.append(card.querySelector('.conflict-note'));
  }
  const hadFocus = card && card.contains(document.activeElement);
  if (card && card.parentElement === col) card.replaceWith(fresh);
  else { card?.remove(); col.append(fresh); }
  if (hadFocus) fresh.focus();
  updateCounts();
}

function updateCounts() {
  for (const col of document.querySelectorAll('.column')) {
    const c = col.querySelector('.count');
    if (c) c.textContent = col.querySelector('.cards').children.length;
  }
}

function markConflict(t) {
  renderCard(t);
  const card = document.getElementById('task-' + t.id);
  if (!card) return;
  card.classList.add('conflict');
  card.querySelector('.conflict-note')?.remove();
  card.append(h('p', { class: 'conflict-note' }, 'Changed by someone else: this is the current version.'));
}

async function moveTask(id, status, keepFocus) {
  const t = state.tasks.get(id);
  if (!t || t.status === status) return;
  try {
    const r = await api('PATCH', '/tasks/' + id, { status }, { 'If-Match': `"${t.version}"` });
    state.tasks.set(id, r.data);
    renderCard(r.data);
    if (keepFocus) document.getElementById('task-' + id)?.focus();
    say(`Moved “${r.data.title}” to ${STATUS_NAME[status]}.`);
  } catch (e) {
    if (e.status === 412) return conflict(id);
    banner(errorText(e));
  }
}

async function conflict(id) {
  const fresh = (await api('GET', '/tasks/' + id)).data;
  state.tasks.set(id, fresh);
  markConflict(fresh);
  banner(`“${fresh.title}” was changed by someone else. The board shows the current version; try again.`);
  return fresh;
}

// ---- task detail ----------------------------------------------------------

function closeDetail() {
  const d = $('#task-dialog');
  state.detail = null;
  if (d.open) d.close();
}

function openDetail(id) {
  const t = state.tasks.get(id);
  if (!t) return;
  state.detail = { task: t, dirty: false };
  banner(''); // the user moved on from whatever it said
  renderDetail();
  const d = $('#task-dialog');
  if (!d.open) d.showModal();
  loadComments();
}

function detailChanged(t) {
  if (!state.detail) return;
  if (!state.detail.dirty) {
    state.detail.task = t;
    renderDetail();
    loadComments();
  } else {
    const n = $('#detail-note');
    if (n) n.textContent = 'Someone else changed this task while you were editing.';
  }
}

function renderDetail(message) {
  const d = $('#task-dialog');
  const t = state.detail.task;
  const p = state.project;
  const ro = !canWrite(p);
  const sel = (name, label, options, value) => {
    const id = 'td-' + name;
    return [h('label', { for: id }, label), h('select', { id, name, disabled: ro }, options.map(([v, l]) =>
      h('option', { value: v, selected: v === (value ?? '') }, l)))];
  };
  const f = form('Task', async (v) => {
    const body = {};
    const set = (k, val) => { if (JSON.stringify(val) !== JSON.stringify(t[k])) body[k] = val; };
    set('title', v.title.trim());
    set('description', v.description);
    set('status', v.status);
    set('priority', v.priority);
    set('assigneeId', v.assigneeId || null);
    set('dueDate', v.dueDate ? v.dueDate + 'T00:00:00.000Z' : null);
    set('tags', v.tags.split(',').map((x) => x.trim()).filter(Boolean));
    if (!Object.keys(body).length) return;
    try {
      const r = await api('PATCH', '/tasks/' + t.id, body, { 'If-Match': `"${t.version}"` });
      state.tasks.set(t.id, r.data);
      renderCard(r.data);
      state.detail = { task: r.data, dirty: false };
      renderDetail('Saved.');
    } catch (e) {
      if (e.status !== 412) throw e;
      const fresh = await conflict(t.id);
      state.detail = { task: fresh, dirty: false };
      renderDetail('Changed by someone else: the form now shows the current version. Your edit was not saved.');
    }
  },
  ...field('Title', 'title', { type: 'text', value: t.title, required: true, maxlength: 500, readonly: ro }),
  h('label', { for: 'td-description' }, 'Description'),
  h('textarea', { id: 'td-description', name: 'description', rows: 4, readOnly: ro }, t.description || ''),
  h('div', { class: 'row' },
    h('div', {}, ...sel('status', 'Status', STATUSES, t.status)),
    h('div', {}, ...sel('priority', 'Priority', PRIORITIES.map((x) => [x, x]), t.priority)),
    h('div', {}, ...sel('assigneeId', 'Assignee',
      [['', 'Nobody'], ...state.members.map((m) => [m.userId, m.name])], t.assigneeId))),
  h('div', { class: 'row' },
    h('div', {}, ...field('Due date', 'dueDate', { type: 'date', value: t.dueDate ? t.dueDate.slice(0, 10) : '', readonly: ro })),
    h('div', {}, ...field('Tags (comma separated)', 'tags', { type: 'text', value: (t.tags || []).join(', '), readonly: ro }))),
  h('p', { id: 'detail-note', class: message && message !== 'Saved.' ? 'error' : 'note', role: 'status' }, message || ''),
  h('div', { class: 'row' },
    ro ? '' : h('button', { type: 'submit' }, 'Save'),
    h('button', { type: 'button', class: 'secondary', onclick: closeDetail }, 'Close')));
  f.addEventListener('input', () => { if (state.detail) state.detail.dirty = true; });
  const comments = h('ul', { id: 'comments', class: 'comments', 'aria-label': 'Comments' });
  const commentForm = canWrite(p) ? form('New comment', async (v, cf) => {
    await api('POST', `/tasks/${t.id}/comments`, { content: v.content });
    cf.reset();
    say('Comment added.');
    await loadComments();
  },
  h('label', { for: 'td-comment' }, 'Comment (mention someone with @their-email)'),
  h('textarea', { id: 'td-comment', name: 'content', rows: 2, required: true, maxlength: 10000 }),
  h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Comment'))) : '';
  d.replaceChildren(h('h2', { id: 'task-dialog-title' }, t.title),
    h('p', { class: 'note' }, `Version ${t.version} · updated ${new Date(t.updatedAt).toLocaleString()}`),
    f, h('h2', {}, 'Comments'), comments, commentForm);
}

// Comment text with @email mentions of members emphasised (as text nodes).
function commentBody(c) {
  const out = [];
  const re = /@([^\s@]+@[^\s@]+\.[^\s@,;:!?)]+)/g;
  let last = 0;
  for (const m of c.content.matchAll(re)) {
    out.push(c.content.slice(last, m.index));
    const member = state.members.find((x) => x.email === m[1].toLowerCase());
    out.push(member ? h('span', { class: 'mention', title: m[1] }, '@' + member.name) : m[0]);
    last = m.index + m[0].length;
  }
  out.push(c.content.slice(last));
  return out;
}

async function loadComments() {
  const det = state.detail;
  if (!det) return;
  const r = await api('GET', `/tasks/${det.task.id}/comments?limit=100`);
  const list = $('#comments');
  if (!list || state.detail !== det) return;
  list.replaceChildren(...r.data.map((c) => h('li', { dataset: { id: c.id } },
    h('span', { class: 'by' }, c.author?.name || 'someone'), ' ',
    h('span', { class: 'note' }, new Date(c.createdAt).toLocaleString()),
    h('div', {}, commentBody(c)))));
  if (!r.data.length) list.append(h('li', { class: 'note' }, 'No comments yet.'));
}

// ---- notifications ----------------------------------------------------------

function setUnread(n) {
  state.unread = Math.max(0, n);
  const c = $('#bell-count');
  c.textContent = state.unread > 99 ? '99+' : String(state.unread);
  c.classList.toggle('zero', state.unread === 0);
  $('#bell-label').textContent = `Notifications, ${state.unread} unread`;
}

async function loadUnread() {
  try {
    const r = await api('GET', '/notifications?unread=true&limit=100');
    setUnread(r.data.length + (r.meta?.nextCursor ? 1 : 0));
  } catch { /* the bell stays as it was */ }
}

function notificationText(n) {
  const d = n.data || {};
  const who = memberName(d.by) || 'Someone';
  const what = d.taskTitle || d.title || 'a task';
  switch (n.type) {
    case 'mentioned': return `${who} mentioned you on “${what}”`;
    case 'task_assigned': return `${who} assigned you “${what}”`;
    case 'task_commented': return `${who} commented on “${what}”`;
    case 'task_status_changed': return `${who} moved “${what}”`;
    default: return n.type;
  }
}

async function openNotifications() {
  const panel = $('#notif-panel');
  const r = await api('GET', '/notifications?limit=20');
  panel.replaceChildren(h('h2', {}, 'Notifications'),
    h('ul', { class: 'list' }, r.data.length ? r.data.map((n) => {
      const href = n.data?.projectId ? `#/projects/${n.data.projectId}` + (n.data.taskId ? '?task=' + n.data.taskId : '') : null;
      return h('li', { class: n.readAt ? '' : 'unread' },
        href ? h('a', { href, onclick: () => { panel.hidden = true; } }, notificationText(n)) : notificationText(n),
        h('div', { class: 'note' }, new Date(n.createdAt).toLocaleString()));
    }) : h('li', { class: 'note' }, 'Nothing yet.')),
    h('div', { class: 'row' }, h('button', {
      type: 'button', class: 'secondary',
      onclick: async () => { await api('POST', '/notifications/read-all', {}); setUnread(0); openNotifications(); },
    }, 'Mark all as read')));
  panel.hidden = false;
}

// ---- search -----------------------------------------------------------------

const ENTITIES = { '&lt;': '<', '&gt;': '>', '&amp;': '&', '&quot;': '"', '&#39;': "'", '&#x27;': "'", '&#039;': "'" };

// The server marks hits with <mark>…</mark> and escapes everything else:
// only those two tags become elements; any other text, markup-looking or not,
// is inserted as text.
export function renderSnippet(snippet) {
  const out = document.createDocumentFragment();
  let mark = null;
  for (const part of String(snippet).split(/(<mark>|<\/mark>)/)) {
    if (part === '<mark>') { mark = h('mark'); out.append(mark); continue; }
    if (part === '</mark>') { mark = null; continue; }
    const text = part.replace(/&(lt|gt|amp|quot|#39|#x27|#039);/g, (m) => ENTITIES[m]);
    (mark || out).append(document.createTextNode(text));
  }
  return out;
}

async function pageSearch(main, q) {
  $('#search-q').value = q;
  const list = h('ul', { class: 'list', 'aria-label': 'Results' });
  main.append(h('h1', {}, 'Search: ', q), list);
  if (!q.trim()) return;
  const r = await api('GET', '/search?limit=30&q=' + encodeURIComponent(q));
  if (!r.data.length) list.append(h('li', { class: 'note' }, 'No results.'));
  for (const x of r.data) {
    const href = x.type === 'project' ? `#/projects/${x.id}`
      : `#/projects/${x.projectId}?task=${x.type === 'task' ? x.id : x.taskId || ''}`;
    list.append(h('li', { class: 'result' },
      h('span', { class: 'tag' }, x.type), ' ', h('a', { href }, x.title || '(untitled)'),
      h('p', { class: 'snippet' }, renderSnippet(x.snippet || ''))));
  }
}

// ---- start --------------------------------------------------------------------

async function start() {
  try {
    state.config = await (await fetch('config.json')).json();
  } catch { state.config = null; }
  $('#signout').addEventListener('click', async () => {
    try {
      await api('POST', '/auth/logout', { refreshToken: sessionStorage.getItem(REFRESH_KEY) || undefined });
    } catch { /* signed out locally either way */ }
    signedOut('You are signed out.');
  });
  $('#bell').addEventListener('click', () => {
    const panel = $('#notif-panel');
    const open = panel.hidden;
    $('#bell').setAttribute('aria-expanded', String(open));
    if (open) openNotifications(); else panel.hidden = true;
  });
  $('#search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = '#/search?q=' + encodeURIComponent($('#search-q').value);
  });
  $('#task-dialog').addEventListener('close', () => { state.detail = null; });
  window.addEventListener('hashchange', () => route().catch((e) => banner(errorText(e))));
  if (await refresh().catch(() => false)) {
    openSocket();
    loadUnread();
  }
  setUnread(state.unread);
  await route().catch((e) => banner(errorText(e)));
  document.body.dataset.ready = '1';
}

start();
