#!/usr/bin/env python3
"""A tiny HTTP/1.1 upstream for scripts/gateway-selftest: answers every
request with JSON saying who answered and what arrived.

Usage: scripts/gateway-echo.py NAME=PORT [NAME=PORT ...]

Listens on 127.0.0.1:PORT for each pair (one process, a thread per
listener) and answers any method and path with 200
{"upstream": NAME, "method", "path", "body_bytes", "peer_port", "headers": {...}}
where headers holds the received x-request-id, x-forwarded-for, x-real-ip,
authorization, content-type and connection (null when absent). The query
may ask for: sleep_ms=N (answer late), status=N (answer with that status,
still JSON), size=N (answer N bytes of padding instead).
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ECHOED = ["x-request-id", "x-forwarded-for", "x-real-ip", "authorization", "content-type", "connection"]


def handler(name):
    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the servers do

        def answer(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if "sleep_ms" in query:
                time.sleep(int(query["sleep_ms"]) / 1000)
            status = int(query.get("status", 200))
            if "size" in query:
                out = b"x" * int(query["size"])
                ctype = "application/octet-stream"
            else:
                out = json.dumps({
                    "upstream": name,
                    "method": self.command,
                    "path": self.path,
                    "body_bytes": len(body),
                    "peer_port": self.client_address[1],
                    "headers": {h: self.headers.get(h) for h in ECHOED},
                }).encode()
                ctype = "application/json"
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(out)))
            # The gateway must not pass this one on (it sends its own).
            self.send_header("x-request-id", "from-upstream")
            self.end_headers()
            if self.command != "HEAD":
                try:
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the gateway gave up on a slow answer

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = answer

        def log_message(self, *args):
            pass

    return Echo


def main():
    servers = []
    for arg in sys.argv[1:]:
        name, port = arg.split("=", 1)
        servers.append(ThreadingHTTPServer(("127.0.0.1", int(port)), handler(name)))
    if not servers:
        sys.exit("usage: gateway-echo.py NAME=PORT [NAME=PORT ...]")
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
