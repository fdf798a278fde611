#!/usr/bin/env node
// Node.js `ws` echo server: a peer that is not cyclone, for cyclone's client tests.
//
//   node tests/peers/node/ws_echo.js --port 0 [--no-deflate] [--exit-on-stdin-eof]
//   -> prints "PORT 43121" once listening on 127.0.0.1
//
// (install `ws` first: `npm install --no-package-lock` here, which scripts/interop does.)
// permessage-deflate is on by default (ws's own server defaults: context takeover kept,
// messages under 1 KiB sent uncompressed); --no-deflate turns it off. Every path echoes
// text as text and binary as binary; `/publish` relays to every connection on
// `/broadcast`, like cyclone's echo_server. Max message size 64 MiB. Stops on
// SIGTERM/SIGINT, or when stdin reaches EOF with --exit-on-stdin-eof.
'use strict';

const { WebSocketServer } = require('ws');

function parseArgs(argv) {
  const a = { port: 9001, address: '127.0.0.1', deflate: true, maxMessageSize: 64 * 1024 * 1024, exitOnStdinEof: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--port') a.port = Number(argv[++i]);
    else if (arg === '--address') a.address = argv[++i];
    else if (arg === '--no-deflate') a.deflate = false;
    else if (arg === '--max-message-size') a.maxMessageSize = Number(argv[++i]);
    else if (arg === '--exit-on-stdin-eof') a.exitOnStdinEof = true;
    else {
      console.error(`ws_echo.js: unknown argument ${arg}`);
      process.exit(2);
    }
  }
  return a;
}

const args = parseArgs(process.argv.slice(2));
const broadcast = new Set();
const wss = new WebSocketServer({
  host: args.address,
  port: args.port,
  perMessageDeflate: args.deflate,
  maxPayload: args.maxMessageSize,
});

wss.on('listening', () => {
  process.stdout.write(`PORT ${wss.address().port}\n`);
});

wss.on('connection', (ws, req) => {
  const path = req.url.split('?', 1)[0];
  if (path === '/broadcast') broadcast.add(ws);
  ws.on('message', (data, isBinary) => {
    if (path === '/publish') {
      for (const sub of broadcast) sub.send(data, { binary: isBinary });
    } else if (path !== '/broadcast') {
      ws.send(data, { binary: isBinary });
    }
  });
  ws.on('close', () => broadcast.delete(ws));
  ws.on('error', () => broadcast.delete(ws));
});

function stop() {
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (args.exitOnStdinEof) {
  process.stdin.on('end', stop);
  process.stdin.resume();
}
