#!/usr/bin/env node
// Interop over TLS: the Node.js `ws` client against a running cyclone `tls_echo` (wss://).
//
//   node tests/peers/node/wss_client.js --url wss://localhost:PORT/echo --ca cert.pem
//
// Driven by tests/peers/interop_wss_clients.py, which makes a throwaway self-signed pair,
// starts `tls_echo` with it and passes its URL and the certificate (trusted through ws's
// `ca` option, Node's tls.connect). Each check is bounded in time; prints `ok - ...` or
// `FAIL - ...: why` per check and a closing `N passed, N failed`; exits 1 on any failure.
//
// Checks: without the CA the handshake is refused (the certificate really is verified);
// with it: text, UTF-8 text and binary echo, a 2 MiB binary message, the TLS version, and
// the close handshake (ws sees code 1000 back).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const { checker, assert, connect: open } = require('./peerlib');

const MIB = 1024 * 1024;

const argv = process.argv.slice(2);
const arg = (name) => (argv.indexOf(name) >= 0 ? argv[argv.indexOf(name) + 1] : undefined);
const url = arg('--url');
const caFile = arg('--ca');
if (!url || !caFile) {
  console.error('usage: wss_client.js --url wss://localhost:PORT/echo --ca cert.pem');
  process.exit(2);
}
const ca = fs.readFileSync(caFile);
const tag = '[ws client -> tls_echo over wss]';

const { check, failed, passed } = checker(tag, 20000);

function connect(options) {
  return open(url, { maxPayload: 64 * MIB, perMessageDeflate: false, ...options });
}

async function main() {
  await check('without the CA the certificate is refused', async () => {
    let conn;
    try {
      conn = await connect({});
    } catch (err) {
      const code = err.code || '';
      assert(/CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code) || /certificate/i.test(err.message),
        `failed, but not on the certificate: ${code} ${err.message}`);
      return;
    }
    conn.ws.terminate();
    throw new Error('connected to a self-signed server without trusting it');
  });

  let conn = null;
  if (!(await check('wss handshake trusting the generated certificate (ca option)', async () => {
    conn = await connect({ ca });
  }))) {
    console.log(`${passed()} passed, ${failed.length + 1} failed`);
    process.exit(1);
  }

  await check('TLS 1.2 or 1.3 negotiated', async () => {
    const proto = conn.ws._socket.getProtocol();
    assert(proto === 'TLSv1.3' || proto === 'TLSv1.2', `protocol ${proto}`);
  });

  const echo = async (data, binary) => {
    conn.ws.send(data, { binary });
    const m = await conn.next();
    assert(m, 'connection closed before the echo');
    assert(m.isBinary === binary, `sent ${binary ? 'binary' : 'text'}, got ${m.isBinary ? 'binary' : 'text'}`);
    const want = Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8');
    assert(Buffer.compare(Buffer.from(m.data), want) === 0, `echo of ${want.length} bytes differs (${m.data.length} back)`);
  };
  await check('text echo', () => echo('Hello, world', false));
  await check('UTF-8 text echo', () => echo('héllo wörld ✓ 世界 🌀', false));
  await check('binary echo (256 bytes, every value)', () => echo(Buffer.from([...Array(256).keys()]), true));
  await check('2 MiB binary echo (many TLS records)', () => echo(crypto.randomBytes(2 * MIB), true), 30000);

  await check('close handshake: 1000 back', async () => {
    conn.ws.close(1000, 'bye');
    const { code } = await conn.closed;
    assert(code === 1000, `close code ${code}, expected 1000`);
  });

  console.log(`${passed()} passed, ${failed.length} failed`);
  process.exit(failed.length ? 1 : 0);
}

main().catch((err) => {
  console.log(`FAIL - ${tag} unexpected: ${err && err.stack ? err.stack : err}`);
  console.log(`${passed()} passed, ${failed.length + 1} failed`);
  process.exit(1);
});
