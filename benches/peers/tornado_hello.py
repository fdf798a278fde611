"""Tornado's hello world, for the wrk comparison in benches/README.md."""
import sys

import tornado.ioloop
import tornado.web


class MainHandler(tornado.web.RequestHandler):
    def get(self):
        self.write("Hello, world")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8889
    app = tornado.web.Application([(r"/", MainHandler)])
    app.listen(port, address="127.0.0.1")
    tornado.ioloop.IOLoop.current().start()
