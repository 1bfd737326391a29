"""A stand-in for a SaaS API with a paged task list and no batch endpoint:
GET /v1/tasks?page=N answers that page's tasks as JSON. It allows at most
LIMIT requests a second (429 with Retry-After: 1 past it) and fails one
request in twenty with 503, as real APIs do. Standard library only."""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PAGE_SIZE = 25
LIMIT = int(sys.argv[2]) if len(sys.argv) > 2 else 50
lock = threading.Lock()
seen = {"second": 0, "count": 0, "requests": 0, "too_many": 0}


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urlparse(self.path)
        with lock:
            now = int(time.time())
            if seen["second"] != now:
                seen["second"], seen["count"] = now, 0
            seen["count"] += 1
            seen["requests"] += 1
            n = seen["requests"]
            over = seen["count"] > LIMIT
            if over:
                seen["too_many"] += 1
        if url.path == "/stats":
            return self.answer(200, seen)
        if over:
            return self.answer(429, {"error": "rate limited"}, {"Retry-After": "1"})
        if n % 20 == 0:
            return self.answer(503, {"error": "try again"})
        page = int(parse_qs(url.query).get("page", ["0"])[0])
        tasks = [{"id": page * PAGE_SIZE + i, "title": f"task {page * PAGE_SIZE + i}"}
                 for i in range(PAGE_SIZE)]
        self.answer(200, {"page": page, "tasks": tasks})

    def answer(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8099
    ThreadingHTTPServer(("127.0.0.1", port), Api).serve_forever()
