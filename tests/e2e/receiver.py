"""A webhook receiver for the end-to-end tests. It verifies every delivery with the
Standard Webhooks reference library and records it.

Usage: receiver.py DIR [PORT]. It writes DIR/port once listening, reads the signing secret
from DIR/secret and its answer from DIR/mode ("ok" answers 204, a number answers that
status), and appends one JSON line per request to DIR/received.jsonl.
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

DIR = sys.argv[1]
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 0


def read(name, default=""):
    try:
        with open(os.path.join(DIR, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return default


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = {
            "webhook_id": headers.get("webhook-id"),
            "x_wa_request_id": headers.get("x-wa-request-id"),
            "path": self.path,
        }
        try:
            Webhook(read("secret")).verify(body, headers)
            record["verified"] = True
        except Exception as e:  # noqa: BLE001 - any failure is recorded as unverified
            record["verified"] = False
            record["error"] = repr(e)
        try:
            record["body"] = json.loads(body)
        except ValueError:
            record["body"] = None
        mode = read("mode", "ok")
        status = 204 if mode == "ok" else int(mode)
        record["answered"] = status
        with open(os.path.join(DIR, "received.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
with open(os.path.join(DIR, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.replace(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
server.serve_forever()
