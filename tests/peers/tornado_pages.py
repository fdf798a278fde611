#!/usr/bin/env python3
"""Tornado reference for the pages of tests/peers/PAGE-CONTRACT.md (hello and chat).

A stand-in for cyclone's `hello` and `chat` examples, with the same flags, used to develop
and check tests/peers/browser_test.py without them, and a working example of the contract
for whoever writes the real pages:

    .venv/bin/python tests/peers/tornado_pages.py hello --port 8888
    .venv/bin/python tests/peers/tornado_pages.py chat --port 8889
    CYCLONE_HELLO_CMD=".venv/bin/python tests/peers/tornado_pages.py hello" \
    CYCLONE_CHAT_CMD=".venv/bin/python tests/peers/tornado_pages.py chat" scripts/browser
"""

import argparse
import asyncio
import itertools
import signal

import tornado.web
import tornado.websocket

HELLO_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>hello</title></head>
<body>
<h1>WebSocket echo</h1>
<button id="connect">Connect</button>
<input id="message" type="text" value="Hello, world">
<button id="send">Send</button>
<button id="close">Close</button>
<pre id="log"></pre>
<script>
var ws = null;
function log(line) {
  var el = document.getElementById("log");
  el.appendChild(document.createTextNode(line + "\\n"));
}
document.getElementById("connect").onclick = function () {
  var scheme = location.protocol === "https:" ? "wss://" : "ws://";
  ws = new WebSocket(scheme + location.host + "/websocket");
  ws.onopen = function () { log("open"); };
  ws.onmessage = function (evt) { log("message: " + evt.data); };
  ws.onclose = function (evt) { log("close: " + evt.code); };
  ws.onerror = function () { log("error"); };
};
document.getElementById("send").onclick = function () {
  ws.send(document.getElementById("message").value);
};
document.getElementById("close").onclick = function () { ws.close(1000); };
</script>
</body></html>
"""

CHAT_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>chat</title></head>
<body>
<h1>Chat</h1>
<div id="messages"></div>
<form id="form"><input id="message" type="text" autocomplete="off">
<button id="send" type="submit">Send</button></form>
<script>
var scheme = location.protocol === "https:" ? "wss://" : "ws://";
var ws = new WebSocket(scheme + location.host + "/chatsocket");
function add(text) {
  var div = document.createElement("div");
  div.textContent = text;
  document.getElementById("messages").appendChild(div);
}
ws.onopen = function () { document.body.dataset.state = "open"; };
ws.onclose = function () { document.body.dataset.state = "closed"; };
ws.onmessage = function (evt) {
  var m = JSON.parse(evt.data);
  if (m.type === "message") add(m.id + ": " + m.text);
  else if (m.type === "join") add(m.id + " joined");
  else if (m.type === "leave") add(m.id + " left");
};
document.getElementById("form").onsubmit = function (e) {
  e.preventDefault();
  var input = document.getElementById("message");
  ws.send(input.value);
  input.value = "";
};
</script>
</body></html>
"""


class Page(tornado.web.RequestHandler):
    def initialize(self, html):
        self.html = html

    def get(self):
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(self.html)


class EchoWebSocket(tornado.websocket.WebSocketHandler):
    def on_message(self, message):
        self.write_message("You said: " + message)


class ChatSocket(tornado.websocket.WebSocketHandler):
    clients = set()
    ids = itertools.count(1)

    def open(self):
        self.set_nodelay(True)
        self.conn_id = next(self.ids)
        ChatSocket.clients.add(self)
        self.broadcast({"type": "join", "id": self.conn_id})

    def on_message(self, message):
        self.broadcast({"type": "message", "id": self.conn_id, "text": message})

    def on_close(self):
        ChatSocket.clients.discard(self)
        self.broadcast({"type": "leave", "id": self.conn_id})

    @classmethod
    def broadcast(cls, msg):
        for c in list(cls.clients):
            try:
                c.write_message(msg)
            except tornado.websocket.WebSocketClosedError:
                cls.clients.discard(c)


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("app", choices=["hello", "chat"])
    p.add_argument("--port", type=int, default=8888)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--ping-interval", type=float, default=None)
    args = p.parse_args()
    if args.app == "hello":
        routes = [(r"/", Page, {"html": HELLO_PAGE}), (r"/websocket", EchoWebSocket)]
    else:
        routes = [(r"/", Page, {"html": CHAT_PAGE}), (r"/chatsocket", ChatSocket)]
    app = tornado.web.Application(routes, websocket_ping_interval=args.ping_interval)
    server = app.listen(args.port, address=args.address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()


if __name__ == "__main__":
    asyncio.run(main())
