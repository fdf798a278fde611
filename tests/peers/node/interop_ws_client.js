#!/usr/bin/env node
// Interop: the Node.js `ws` client against a running cyclone echo_server.
//
//   node tests/peers/node/interop_ws_client.js --url ws://127.0.0.1:PORT [--deflate]
//
// Driven by tests/peers/interop_node_client.py, which starts `echo_server` (plain, then
// `--deflate`) and passes its URL. Each check is bounded in time; prints `ok - ...` or
// `FAIL - ...: why` per check and a closing `N passed, N failed`; exits 1 on any failure.
//
// Checks: the negotiated extensions (none, or permessage-deflate with each parameter ws can
// ask for honoured); text and binary echo at the frame-length boundaries; a fragmented text
// message with a character split across fragments; ping -> pong with the payload; 1,000
// pipelined messages in order; that the server really compresses (bytes on the socket);
// invalid UTF-8 -> close 1007; an over-long message -> close 1009; /publish -> /broadcast
// relay; and the close handshake (ws sees the server's close code).
'use strict';

const crypto = require('crypto');
const { checker, assert, connect: open } = require('./peerlib');

const KIB = 1024;
const MIB = 1024 * KIB;

const argv = process.argv.slice(2);
const url = argv[argv.indexOf('--url') + 1];
const deflate = argv.includes('--deflate');
if (argv.indexOf('--url') < 0 || !url) {
  console.error('usage: interop_ws_client.js --url ws://127.0.0.1:PORT [--deflate]');
  process.exit(2);
}
const tag = deflate ? '[ws client -> echo_server --deflate]' : '[ws client -> echo_server]';

const { check, failed, passed } = checker(tag);

function connect(path, perMessageDeflate = deflate) {
  return open(url + path, { perMessageDeflate, maxPayload: 64 * MIB });
}

async function echo(conn, data, binary) {
  conn.ws.send(data, { binary });
  const m = await conn.next();
  assert(m !== null, 'connection closed before the echo arrived');
  assert(m.isBinary === binary, `sent ${binary ? 'binary' : 'text'}, got ${m.isBinary ? 'binary' : 'text'}`);
  const want = Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8');
  assert(m.data.length === want.length, `sent ${want.length} bytes, got ${m.data.length}`);
  assert(m.data.equals(want), `echo of ${want.length} bytes differs`);
}

async function closeClean(conn) {
  conn.ws.close(1000);
  const c = await conn.closed;
  assert(c.code === 1000, `close code ${c.code}, expected 1000`);
}

function text(n, seed) {
  const words = ['cyclone', 'tornado', 'websocket', 'permessage', 'deflate', 'héllo', '世界', '🌀', 'window'];
  const parts = [];
  let size = 0;
  let x = seed;
  while (size < n) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const w = words[x % words.length] + ' ';
    parts.push(w);
    size += Buffer.byteLength(w);
  }
  return parts.join('');
}

async function main() {
  let conn;
  const opened = await check('handshake (101) and the negotiated extensions', async () => {
    conn = await connect('/echo');
    if (deflate) {
      assert(conn.ws.extensions === 'permessage-deflate', `extensions ${JSON.stringify(conn.ws.extensions)}`);
    } else {
      assert(conn.ws.extensions === '', `no extension expected, got ${JSON.stringify(conn.ws.extensions)}`);
    }
  });
  if (!opened) return;

  for (const [title, s] of [
    ['ASCII', 'Hello, world'],
    ['multi-byte UTF-8', 'héllo wörld ✓ 世界 🌀'],
    ['empty', ''],
    ['200 KiB', text(200 * KIB, 3)],
  ]) {
    await check(`text echo: ${title}`, () => echo(conn, s, false));
  }
  await check('binary echo at 0, 1, 125, 126, 127, 65535, 65536, 65537 and 1 MiB bytes', async () => {
    for (const n of [0, 1, 125, 126, 127, 65535, 65536, 65537, MIB]) {
      await echo(conn, crypto.randomBytes(n), true);
    }
  });
  await check('fragmented text with a character split across fragments', async () => {
    const whole = Buffer.from('fragments: héllo 世界', 'utf8');
    const cut = whole.indexOf(Buffer.from('世')) + 1; // inside the 3-byte sequence
    conn.ws.send(whole.subarray(0, 5), { binary: false, fin: false });
    conn.ws.send(whole.subarray(5, cut), { binary: false, fin: false });
    conn.ws.send(whole.subarray(cut), { binary: false, fin: true });
    const m = await conn.next();
    assert(m && !m.isBinary, 'no text message came back');
    assert(m.data.equals(whole), `got ${JSON.stringify(m.data.toString())}`);
  });
  await check('ping -> pong with the same payload', async () => {
    const payload = Buffer.from('ping-42 ✓');
    const pong = new Promise((res) => conn.ws.once('pong', res));
    conn.ws.ping(payload);
    const got = await pong;
    assert(got.equals(payload), `pong payload ${JSON.stringify(got.toString())}`);
  });
  await check('1,000 pipelined messages come back in order', async () => {
    const msgs = [];
    for (let i = 0; i < 1000; i++) {
      const s = `message ${i}: ` + text(50 + (i % 300) * 5, i);
      msgs.push(i % 10 === 9 ? { data: Buffer.from(s), binary: true } : { data: s, binary: false });
    }
    for (const m of msgs) conn.ws.send(m.data, { binary: m.binary });
    for (let i = 0; i < msgs.length; i++) {
      const got = await conn.next();
      assert(got, `closed after ${i} replies`);
      const want = Buffer.from(msgs[i].data);
      assert(got.isBinary === msgs[i].binary && got.data.equals(want), `reply ${i} differs`);
    }
  });
  if (deflate) {
    await check('the server compresses: a 1 MiB text echo arrives in under 1/4 of its size', async () => {
      const s = text(MIB, 5);
      const before = conn.ws._socket.bytesRead; // ws's TCP socket: bytes as received
      await echo(conn, s, false);
      const wire = conn.ws._socket.bytesRead - before;
      assert(wire < MIB / 4, `${wire} bytes on the wire for a 1 MiB echo`);
    });
  }
  await check('close handshake: ws.close(1000) -> close event 1000', () => closeClean(conn));

  if (deflate) {
    const variants = [
      ['no_context_takeover both ways', { serverNoContextTakeover: true, clientNoContextTakeover: true },
        { server_no_context_takeover: true, client_no_context_takeover: true }],
      ['server_max_window_bits=10', { serverMaxWindowBits: 10 }, { server_max_window_bits: 10 }],
      ['client_max_window_bits=9', { clientMaxWindowBits: 9 }, {}],
    ];
    for (const [name, offer, expect] of variants) {
      await check(`offer ${name}: honoured, 200 KiB of text and binary both ways`, async () => {
        const c = await connect('/echo', offer);
        const ext = c.ws._extensions['permessage-deflate'];
        assert(ext, 'permessage-deflate not negotiated');
        for (const [k, v] of Object.entries(expect)) {
          assert(ext.params[k] === v, `response parameter ${k} = ${ext.params[k]}, expected ${v}`);
        }
        if (offer.clientMaxWindowBits) {
          const bits = ext.params.client_max_window_bits;
          assert(bits === undefined || bits <= offer.clientMaxWindowBits, `client_max_window_bits ${bits}`);
        }
        for (let i = 0; i < 3; i++) {
          await echo(c, text(200 * KIB, 10 + i), false);
          await echo(c, Buffer.from(text(200 * KIB, 20 + i)), true);
        }
        await closeClean(c);
      });
    }
  }

  await check('invalid UTF-8 in a text message -> close 1007', async () => {
    const c = await connect('/echo');
    c.ws.send(Buffer.from([0x68, 0x69, 0xff, 0x21]), { binary: false });
    const { code } = await c.closed;
    assert(code === 1007, `close code ${code}, expected 1007`);
  });
  await check('a message over websocket_max_message_size (10 MiB) -> close 1009', async () => {
    const c = await connect('/echo');
    // Compressible under deflate: the server must stop inflating at its limit.
    c.ws.send(Buffer.alloc(10 * MIB + 1, 0x61), { binary: true });
    const { code } = await c.closed;
    assert(code === 1009, `close code ${code}, expected 1009`);
  });
  await check('connections stay independent: a new one echoes after the closes above', async () => {
    const c = await connect('/echo');
    await echo(c, 'still here', false);
    await closeClean(c);
  });
  await check('/publish -> 3 /broadcast subscribers: every message, in order, intact', async () => {
    const subs = [];
    for (let i = 0; i < 3; i++) subs.push(await connect('/broadcast'));
    const pub = await connect('/publish');
    const msgs = [];
    for (let i = 0; i < 20; i++) {
      const s = `broadcast ${i} ` + text(i % 2 ? 3 * KIB : 40, 100 + i);
      msgs.push(i % 3 === 2 ? { data: Buffer.from(s), binary: true } : { data: s, binary: false });
    }
    for (const m of msgs) pub.ws.send(m.data, { binary: m.binary });
    for (const [k, sub] of subs.entries()) {
      for (let i = 0; i < msgs.length; i++) {
        const got = await sub.next();
        assert(got, `subscriber ${k} closed after ${i} messages`);
        const want = Buffer.from(msgs[i].data);
        assert(got.isBinary === msgs[i].binary && got.data.equals(want), `subscriber ${k}: message ${i} differs`);
      }
    }
    for (const c of [pub, ...subs]) await closeClean(c);
  });
  await check('close with 4000 and a reason: ws sees the server answer 4000', async () => {
    const c = await connect('/echo');
    c.ws.close(4000, 'done here');
    const { code } = await c.closed;
    assert(code === 4000, `close code ${code}, expected 4000`);
  });
}

main()
  .catch((err) => {
    failed.push('script');
    console.log(`FAIL - ${tag} script: ${err && err.stack ? err.stack : err}`);
  })
  .finally(() => {
    if (failed.length) console.log(`${tag} FAILED: ${failed.join('; ')}`);
    console.log(`${passed()} passed, ${failed.length} failed`);
    process.exit(failed.length ? 1 : 0);
  });
