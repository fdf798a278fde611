#!/usr/bin/env python3
"""Tornado reference for the pages of tests/peers/PAGE-CONTRACT.md (hello, chat, longpoll).

A stand-in for cyclone's `hello` and `chat` examples, with the same flags, used to develop
and check tests/peers/browser_test.py without them, and a working example of the contract
for whoever writes the real pages:

    .venv/bin/python tests/peers/tornado_pages.py hello --port 8888
    .venv/bin/python tests/peers/tornado_pages.py chat --port 8889
    CYCLONE_HELLO_CMD=".venv/bin/python tests/peers/tornado_pages.py hello" \
    CYCLONE_CHAT_CMD=".venv/bin/python tests/peers/tornado_pages.py chat" scripts/browser

`longpoll` is Tornado's own long-polling chat demo (demos/chat: MessageBuffer with a
Condition, MessageUpdatesHandler cancelling its wait in on_connection_close), serving the
templates and static files of examples/longpoll_chat, with the example's two additions
(/a/message/events as Server-Sent Events through flush(), /a/status):

    CYCLONE_LONGPOLL_CMD=".venv/bin/python tests/peers/tornado_pages.py longpoll" scripts/browser
"""

import argparse
import asyncio
import itertools
import json
import os
import signal

import tornado.escape
import tornado.iostream
import tornado.locks
import tornado.web
import tornado.websocket

LONGPOLL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                            "longpoll_chat")

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


class MessageBuffer:
    """demos/chat's MessageBuffer, with the open event streams beside it."""

    def __init__(self):
        self.cond = tornado.locks.Condition()
        self.cache = []
        self.cache_size = 200
        self.ids = itertools.count(1)
        self.waiting = 0
        self.streams = set()

    def get_messages_since(self, cursor):
        results = []
        for msg in reversed(self.cache):
            if msg["id"] == cursor:
                break
            results.append(msg)
        results.reverse()
        return results

    def add_message(self, message):
        self.cache.append(message)
        if len(self.cache) > self.cache_size:
            self.cache = self.cache[-self.cache_size:]
        self.cond.notify_all()
        for stream in list(self.streams):
            stream.send(message)


BUFFER = MessageBuffer()


class MainHandler(tornado.web.RequestHandler):
    def get(self):
        self.render("index.html", messages=BUFFER.cache)


class MessageNewHandler(tornado.web.RequestHandler):
    def post(self):
        message = {"id": str(next(BUFFER.ids)), "body": self.get_argument("body")}
        message["html"] = tornado.escape.to_unicode(self.render_string("message.html", message=message))
        if self.get_argument("next", None):
            self.redirect(self.get_argument("next"))
        else:
            self.write(message)
        BUFFER.add_message(message)


class MessageUpdatesHandler(tornado.web.RequestHandler):
    async def post(self):
        cursor = self.get_argument("cursor", None)
        messages = BUFFER.get_messages_since(cursor)
        while not messages:
            self.wait_future = BUFFER.cond.wait()
            BUFFER.waiting += 1
            try:
                await self.wait_future
            except asyncio.CancelledError:
                return
            finally:
                BUFFER.waiting -= 1
            messages = BUFFER.get_messages_since(cursor)
        if self.request.connection.stream.closed():
            return
        self.write(dict(messages=messages))

    def on_connection_close(self):
        self.wait_future.cancel()


class MessageEventsHandler(tornado.web.RequestHandler):
    async def get(self):
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.write(": connected\n\n")
        self.done = asyncio.get_running_loop().create_future()
        BUFFER.streams.add(self)
        try:
            await self.flush()
            await self.done
        except (asyncio.CancelledError, tornado.iostream.StreamClosedError):
            pass
        finally:
            BUFFER.streams.discard(self)

    def send(self, message):
        self.write(f"id: {message['id']}\ndata: {json.dumps(message)}\n\n")
        self.flush()

    def on_connection_close(self):
        BUFFER.streams.discard(self)
        if not self.done.done():
            self.done.cancel()


class StatusHandler(tornado.web.RequestHandler):
    def get(self):
        self.write({"waiters": BUFFER.waiting, "streams": len(BUFFER.streams)})


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("app", choices=["hello", "chat", "longpoll"])
    p.add_argument("--port", type=int, default=8888)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--ping-interval", type=float, default=None)
    args = p.parse_args()
    settings = {}
    if args.app == "hello":
        routes = [(r"/", Page, {"html": HELLO_PAGE}), (r"/websocket", EchoWebSocket)]
    elif args.app == "chat":
        routes = [(r"/", Page, {"html": CHAT_PAGE}), (r"/chatsocket", ChatSocket)]
    else:
        routes = [(r"/", MainHandler), (r"/a/message/new", MessageNewHandler),
                  (r"/a/message/updates", MessageUpdatesHandler),
                  (r"/a/message/events", MessageEventsHandler), (r"/a/status", StatusHandler)]
        settings = dict(cookie_secret="__TODO:_GENERATE_YOUR_OWN_RANDOM_VALUE_HERE__",
                        template_path=os.path.join(LONGPOLL_DIR, "templates"),
                        static_path=os.path.join(LONGPOLL_DIR, "static"), xsrf_cookies=True)
    app = tornado.web.Application(routes, websocket_ping_interval=args.ping_interval, **settings)
    server = app.listen(args.port, address=args.address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()


if __name__ == "__main__":
    asyncio.run(main())
