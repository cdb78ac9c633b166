"""A counting proxy in front of an AWS endpoint (moto): forwards every request and counts
them by operation (`X-Amz-Target`, e.g. `DynamoDB_20120810.GetItem`, `AmazonSQS.SendMessage`)
and, for SQS, by queue. `GET /_counts` answers the counts as JSON, `POST /_reset` zeroes them.

Usage: aws_proxy.py UPSTREAM_URL PORT_FILE
"""
import http.client
import json
import sys
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = urllib.parse.urlsplit(sys.argv[1])
counts = Counter()
lock = threading.Lock()
local = threading.local()


def upstream():
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = local.conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
    return conn


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/_counts":
            with lock:
                body = json.dumps(dict(counts)).encode()
            return self.reply(200, body, [("content-type", "application/json")])
        self.forward()

    def do_POST(self):
        if self.path == "/_reset":
            with lock:
                counts.clear()
            return self.reply(204, b"")
        self.forward()

    def forward(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0) or 0))
        target = self.headers.get("x-amz-target", "other")
        key = target.split(".")[-1] if "." in target else target
        service = "dynamodb" if target.startswith("DynamoDB") else "sqs" if "SQS" in target else "other"
        label = f"{service} {key}"
        if service == "sqs":
            try:
                url = json.loads(body or b"{}").get("QueueUrl", "")
                label += " " + url.rsplit("/", 1)[-1]
            except ValueError:
                pass
        items = 0
        if key == "TransactWriteItems":
            try:
                items = len(json.loads(body).get("TransactItems", []))
            except ValueError:
                pass
        with lock:
            counts[label] += 1
            if items:
                counts["items TransactWriteItems"] += items
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        try:
            conn = upstream()
            conn.request(self.command, self.path, body, headers)
            res = conn.getresponse()
            data = res.read()
        except (OSError, http.client.HTTPException):
            local.conn = None
            conn = upstream()
            conn.request(self.command, self.path, body, headers)
            res = conn.getresponse()
            data = res.read()
        out = [(k, v) for k, v in res.getheaders() if k.lower() not in ("content-length", "transfer-encoding", "connection")]
        self.reply(res.status, data, out)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(server.server_port))
import os  # noqa: E402

os.rename(sys.argv[2] + ".tmp", sys.argv[2])
server.serve_forever()
