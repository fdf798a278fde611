"""N sequential keep-alive GETs on one connection, each answer read whole
before the next is sent: a fixed, repeatable load for
benches/callgrind_http.sh (instructions per request do not depend on how fast
this client is).

    python3 benches/peers/http_keepalive.py PORT N [PATH]
"""
import socket
import sys


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    path = sys.argv[3] if len(sys.argv) > 3 else "/"
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    buf = b""
    for _ in range(n):
        s.sendall(req)
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                lines = buf[:end].decode("latin-1").split("\r\n")
                if not lines[0].startswith("HTTP/1.1 200"):
                    sys.exit(f"unexpected answer: {lines[0]}")
                length = 0
                for line in lines[1:]:
                    name, value = line.split(":", 1)
                    if name.strip().lower() == "content-length":
                        length = int(value)
                if len(buf) >= end + 4 + length:
                    buf = buf[end + 4 + length:]
                    break
            data = s.recv(65536)
            if not data:
                sys.exit("the server closed the connection")
            buf += data
    s.close()


if __name__ == "__main__":
    main()
