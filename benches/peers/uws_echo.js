// uWebSockets as a peer for ../shared/bench (see benches/README.md,
// "uWebSockets in the same run"), through its Node binding uWS.js.
//
// The bench contract: the port is the first argument, bind 127.0.0.1, echo
// text and binary on every path but /broadcast and /publish, relay every
// /publish message to each /broadcast connection, no compression. uWS sets
// TCP_NODELAY itself.
//
// Upgrades are uWS's own (no JS upgrade handler). JS runs once per echoed or
// published message and once per /broadcast open; the fan-out is uWS's C++
// pub/sub (`App.publish`), so scenario f measures uWS, while a, b and c pay a
// JS call per message.
const uWS = require('uwebsockets');

const port = parseInt(process.argv[2], 10);
const common = {
  compression: uWS.DISABLED,
  // c sends 64 KiB messages four at a time: neither limit may drop them.
  maxPayloadLength: 64 * 1024 * 1024,
  maxBackpressure: 64 * 1024 * 1024,
  // d holds idle connections: no idle timeout.
  idleTimeout: 0,
};

const app = uWS.App();
app.ws('/broadcast', { ...common, open: (ws) => ws.subscribe('b') });
app.ws('/publish', {
  ...common,
  message: (ws, msg, isBinary) => {
    app.publish('b', msg, isBinary);
  },
});
app.ws('/*', {
  ...common,
  message: (ws, msg, isBinary) => {
    ws.send(msg, isBinary);
  },
});
app.listen('127.0.0.1', port, (token) => {
  if (!token) {
    console.error(`uws_echo: cannot listen on 127.0.0.1:${port}`);
    process.exit(1);
  }
});
