// Shared by the Node.js `ws` interop clients (interop_ws_client.js, wss_client.js): bounded
// checks that print `ok - TAG title (s)` or `FAIL - TAG title: why`, and a connection with a
// message queue and a promise of its close event.
'use strict';

const WebSocket = require('ws');

// `check(title, fn, timeoutMs)` runs `fn` bounded in time and counts the result;
// `passed()` and `failed` (the failed titles) give the totals.
function checker(tag, defaultTimeoutMs = 30000) {
  let passed = 0;
  const failed = [];
  async function check(title, fn, timeoutMs = defaultTimeoutMs) {
    const t0 = Date.now();
    let timer;
    try {
      await Promise.race([
        fn(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs / 1000} s`)), timeoutMs);
        }),
      ]);
      passed += 1;
      console.log(`ok - ${tag} ${title} (${((Date.now() - t0) / 1000).toFixed(2)} s)`);
      return true;
    } catch (err) {
      failed.push(title);
      console.log(`FAIL - ${tag} ${title}: ${err && err.message ? err.message : err}`);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
  return { check, failed, passed: () => passed };
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// Opens `url` with ws `options`; resolves to { ws, next, closed } once open: `next()` is the
// next message ({ data, isBinary }, or null once closed), `closed` the close event's
// { code, reason }.
function connect(url, options) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    const queue = [];
    const waiters = [];
    ws.on('message', (data, isBinary) => {
      const m = { data, isBinary };
      if (waiters.length) waiters.shift()(m);
      else queue.push(m);
    });
    const closed = new Promise((res) => {
      ws.on('close', (code, reason) => {
        res({ code, reason: reason.toString() });
        while (waiters.length) waiters.shift()(null);
      });
    });
    ws.on('error', (err) => reject(err));
    ws.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode} instead of 101`)));
    ws.on('open', () => {
      const next = () => {
        if (queue.length) return Promise.resolve(queue.shift());
        if (ws.readyState !== WebSocket.OPEN) return Promise.resolve(null);
        return new Promise((res) => waiters.push(res));
      };
      resolve({ ws, next, closed });
    });
  });
}

module.exports = { checker, assert, connect };
