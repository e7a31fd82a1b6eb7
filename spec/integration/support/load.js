#!/usr/bin/env node
// Steady HTTP load for spec/integration/reload_spec.lua: CONCURRENCY loops,
// each with its own keep-alive agent (one connection), each sending GET URL
// at a fixed pace (RATE requests per second in total) until STOP_FILE
// exists, or for DURATION_MS at most. Only node's built-in modules.
//
//   node load.js URL DURATION_MS CONCURRENCY RATE OUT_FILE [STOP_FILE]
//
// OUT_FILE gets one line per request:
//   <loop> <sent ms> <answered ms> <status> <version> <error>
// times are epoch milliseconds (with fractions; same clock as the spec's
// socket.gettime), status 0 when no HTTP answer came, version the body's
// "version" field ("-" when absent), error "-" or the socket error's code.
// A summary object is printed to stdout as one JSON line when done.
// LOAD_TOKEN (environment), when set, is sent as the bearer token.
'use strict';

const http = require('http');
const fs = require('fs');
const { performance } = require('perf_hooks');

const [url, durationArg, concurrencyArg, rateArg, outFile, stopFile] = process.argv.slice(2);
if (!url || !outFile) {
  process.stderr.write('usage: load.js URL DURATION_MS CONCURRENCY RATE OUT_FILE\n');
  process.exit(2);
}
const duration = Number(durationArg);
const concurrency = Number(concurrencyArg);
const rate = Number(rateArg);
const interval = (1000 * concurrency) / rate; // ms between two requests of one loop
const TIMEOUT_MS = 5000;

const now = () => performance.timeOrigin + performance.now();
let stopped = false;
const poll = stopFile
  ? setInterval(() => {
      if (fs.existsSync(stopFile)) stopped = true;
    }, 20)
  : null;
const lines = [];
const summary = { sent: 0, ok: 0, failed: 0, errors: {}, statuses: {}, versions: {} };

function once(agent, loop) {
  return new Promise((resolve) => {
    const sent = now();
    let done = false;
    const finish = (status, version, err) => {
      if (done) return;
      done = true;
      const answered = now();
      lines.push(`${loop} ${sent.toFixed(3)} ${answered.toFixed(3)} ${status} ${version} ${err}`);
      summary.statuses[status] = (summary.statuses[status] || 0) + 1;
      if (status === 200 && err === '-') {
        summary.ok++;
        summary.versions[version] = (summary.versions[version] || 0) + 1;
      } else {
        summary.failed++;
        if (err !== '-') summary.errors[err] = (summary.errors[err] || 0) + 1;
      }
      resolve();
    };
    summary.sent++;
    const headers = process.env.LOAD_TOKEN ? { authorization: `Bearer ${process.env.LOAD_TOKEN}` } : {};
    const req = http.get(url, { agent, headers, timeout: TIMEOUT_MS }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', (e) => finish(res.statusCode, '-', e.code || 'response_error'));
      res.on('end', () => {
        let version = '-';
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          if (body && body.version !== undefined) version = String(body.version);
        } catch (e) {
          version = 'unparsable';
        }
        finish(res.statusCode, version, '-');
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (e) => finish(0, '-', e.code || 'request_error'));
  });
}

async function loop(i, start) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  // Loops start staggered so the requests are spread evenly over time.
  let next = start + (interval * i) / concurrency;
  while (next < start + duration && !stopped) {
    const wait = next - now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await once(agent, i);
    next += interval;
    if (next < now() - interval) next = now(); // fell behind: no burst to catch up
  }
  agent.destroy();
}

(async () => {
  const start = now();
  const loops = [];
  for (let i = 0; i < concurrency; i++) loops.push(loop(i, start));
  await Promise.all(loops);
  if (poll) clearInterval(poll);
  summary.elapsedMs = Math.round(now() - start);
  fs.writeFileSync(outFile, lines.join('\n') + '\n');
  process.stdout.write(JSON.stringify(summary) + '\n');
})();
