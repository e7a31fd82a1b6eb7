// A tiny HTTP receiver for the webhook specs (node, no dependencies).
//
//   node webhook_receiver.js PORT_FILE LOG_FILE
//
// Listens on 127.0.0.1 on a free port, writes the port to PORT_FILE, and
// appends one JSON line per request to LOG_FILE once the request is
// answered: {phase: "answered", path, query, method, headers, body, status,
// n, aborted, at}; a {phase: "received", path, n, delivery} line is written
// as soon as a request's body has arrived. What it
// answers is scripted by the query string of the URL the webhook posts to,
// counted per path:
//   ?codes=500,500,500,200   the Nth request to this path gets the Nth
//                            status (the last one repeats)
//   &delays=0,3000           the Nth request waits that many ms first
// Requests the receiver dropped (the client went away while it waited) are
// logged with "aborted": true.
'use strict';
const http = require('http');
const fs = require('fs');

const [portFile, logFile] = process.argv.slice(2);
const seen = new Map(); // path -> requests so far

function pick(list, i) {
  if (!list) return undefined;
  const items = list.split(',');
  return items[Math.min(i, items.length - 1)];
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  const n = seen.get(url.pathname) || 0;
  seen.set(url.pathname, n + 1);
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    fs.appendFileSync(logFile, JSON.stringify({ path: url.pathname, phase: 'received', n: n + 1,
      delivery: req.headers['x-taskapi-delivery'] || null }) + '\n');
    const status = Number(pick(url.searchParams.get('codes'), n) || 200);
    const delay = Number(pick(url.searchParams.get('delays'), n) || 0);
    const entry = {
      phase: 'answered', path: url.pathname, query: url.search, method: req.method, headers: req.headers,
      body: Buffer.concat(chunks).toString('utf8'), status, n: n + 1,
    };
    let aborted = false;
    res.on('close', () => {
      if (!res.writableFinished) aborted = true;
    });
    setTimeout(() => {
      entry.aborted = aborted || res.destroyed;
      entry.at = new Date().toISOString();
      fs.appendFileSync(logFile, JSON.stringify(entry) + '\n');
      if (!entry.aborted) {
        res.writeHead(status, { 'Content-Type': 'text/plain' });
        res.end('ok\n');
      }
    }, delay);
  });
});

server.listen(0, '127.0.0.1', () => {
  fs.writeFileSync(portFile + '.tmp', String(server.address().port));
  fs.renameSync(portFile + '.tmp', portFile);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
