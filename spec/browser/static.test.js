'use strict';
// /app/ over raw HTTP against the live server: types, the page's own CSP next
// to the API's unchanged one, ETag revalidation, gzip, and traversal refused
// in every spelling (raw requests, so nothing normalises the path first).
const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const zlib = require('node:zlib');

const BASE = (process.env.TASKAPI_URL || '').replace(/\/+$/, '');
const API_CSP = "default-src 'none'; frame-ancestors 'none'";

function get(rawPath, headers = {}) {
  const u = new URL(BASE);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: rawPath, method: 'GET', headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('/app/ static files', { skip: !BASE && 'TASKAPI_URL is not set' }, () => {
  it('serves the page with its own CSP; the API keeps the strict one', async () => {
    const page = await get('/app/');
    assert.equal(page.status, 200);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    const csp = page.headers['content-security-policy'];
    assert.match(csp, /script-src 'self';/);
    assert.match(csp, /connect-src 'self' ws:\/\/127\.0\.0\.1:\d+ wss:\/\/127\.0\.0\.1:\d+;/);
    assert.doesNotMatch(csp, /unsafe/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.equal(page.headers['x-frame-options'], 'DENY');
    assert.equal(page.headers['cache-control'], 'no-cache');
    assert.ok(page.headers['x-request-id']);
    for (const p of ['/api/v1/openapi.json', '/health', '/api/v1/nope']) {
      assert.equal((await get(p)).headers['content-security-policy'], API_CSP, p);
    }
  });

  it('types, gzip and 304 on If-None-Match', async () => {
    const js = await get('/app/app.js', { 'accept-encoding': 'gzip' });
    assert.equal(js.status, 200);
    assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(js.headers['content-encoding'], 'gzip');
    assert.equal(js.headers.vary, 'Accept-Encoding');
    assert.match(zlib.gunzipSync(js.body).toString(), /taskapi web client/);
    const again = await get('/app/app.js', { 'accept-encoding': 'gzip', 'if-none-match': js.headers.etag });
    assert.equal(again.status, 304);
    assert.equal(again.body.length, 0);
    assert.equal((await get('/app/style.css')).headers['content-type'], 'text/css; charset=utf-8');
    const cfg = await get('/app/config.json');
    assert.deepEqual(Object.keys(JSON.parse(cfg.body)).sort(), ['httpPort', 'wsPort']);
    const redirect = await get('/app');
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.location, '/app/');
  });

  it('refuses traversal and anything not whitelisted with 404', async () => {
    for (const p of ['/app/../CMakeLists.txt', '/app/%2e%2e/CMakeLists.txt', '/app/%2E%2E%2FCMakeLists.txt',
      '/app/..%2fREADME.md', '/app/%252e%252e/README.md', '/app/.%2e/README.md', '/app//etc/passwd',
      '/app/..\\README.md', '/app/index.html%00.png', '/app/%00', '/app/.hidden.js', '/app/nope.js',
      '/app/app.js/', '/app/README.md']) {
      const r = await get(p);
      assert.equal(r.status, 404, p);
      assert.equal(JSON.parse(r.body).error.code, 'not_found', p);
    }
    const post = await new Promise((resolve, reject) => {
      const u = new URL(BASE);
      const req = http.request({ host: u.hostname, port: u.port, path: '/app/', method: 'POST' },
        (res) => { res.resume(); res.on('end', () => resolve(res)); });
      req.on('error', reject);
      req.end();
    });
    assert.equal(post.statusCode, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
  });
});
