"""A counting proxy in front of an AWS endpoint (moto): forwards every request and counts
them by operation (`X-Amz-Target`, e.g. `DynamoDB_20120810.GetItem`, `AmazonSQS.SendMessage`)
and, for SQS, by queue. `GET /_counts` answers the counts as JSON, `POST /_reset` zeroes them.

It also counts DynamoDB's on-demand capacity units of each request (`rru <op>`, `wru <op>`,
and `wru-gsi <op>` for the index entries), derived from item sizes by bench/capacity.py: for
a write it reads the item before and after it with requests of its own (not counted), for a
read it sizes what was answered.

Usage: aws_proxy.py UPSTREAM_URL PORT_FILE
"""
import http.client
import json
import sys
import threading
import os
import urllib.parse
from collections import Counter

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import capacity  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = urllib.parse.urlsplit(sys.argv[1])
counts = Counter()
lock = threading.Lock()
local = threading.local()
tables = {}


def upstream():
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = local.conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
    return conn


def dynamodb(op, body, auth):
    """An uncounted DynamoDB request of the proxy's own: the answer's JSON."""
    conn = getattr(local, "side", None)
    if conn is None:
        conn = local.side = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
    headers = {"x-amz-target": f"DynamoDB_20120810.{op}", "content-type": "application/x-amz-json-1.0"}
    if auth:
        headers["authorization"] = auth
    conn.request("POST", "/", json.dumps(body), headers)
    res = conn.getresponse()
    data = res.read()
    return json.loads(data or b"{}") if res.status == 200 else {}


def schema(table, auth):
    """(key attribute names, [(hash, range) of each GSI]) of `table`."""
    if table not in tables:
        t = dynamodb("DescribeTable", {"TableName": table}, auth).get("Table", {})
        keys = [k["AttributeName"] for k in t.get("KeySchema", [])]
        gsis = []
        for g in t.get("GlobalSecondaryIndexes", []):
            h = next(k["AttributeName"] for k in g["KeySchema"] if k["KeyType"] == "HASH")
            r = next((k["AttributeName"] for k in g["KeySchema"] if k["KeyType"] == "RANGE"), None)
            gsis.append((h, r))
        tables[table] = (keys, gsis)
    return tables[table]


def writes_of(op, req):
    """The writes of a request: (kind, table, key or item, transactional)."""
    if op in ("PutItem", "UpdateItem", "DeleteItem"):
        kind = {"PutItem": "Put", "UpdateItem": "Update", "DeleteItem": "Delete"}[op]
        return [(kind, req["TableName"], req.get("Item") or req.get("Key"), False)]
    if op == "TransactWriteItems":
        out = []
        for ti in req.get("TransactItems", []):
            (kind, w), = ti.items()
            out.append((kind, w["TableName"], w.get("Item") or w.get("Key"), True))
        return out
    if op == "BatchWriteItem":
        return [("Put" if "PutRequest" in w else "Delete", table,
                 (w.get("PutRequest") or {}).get("Item") or (w.get("DeleteRequest") or {}).get("Key"), False)
                for table, ws in req.get("RequestItems", {}).items() for w in ws]
    return []


def old_images(writes, auth):
    out = []
    for kind, table, item, _ in writes:
        keys, _ = schema(table, auth)
        key = {k: item[k] for k in keys if k in item}
        out.append((key, dynamodb("GetItem", {"TableName": table, "Key": key, "ConsistentRead": True}, auth).get("Item")))
    return out


def write_units(writes, olds, ok, auth):
    table_units = gsi_units = 0
    for (kind, table, item, tx), (key, old) in zip(writes, olds):
        if not ok or kind == "ConditionCheck":
            table_units += capacity.write_units(old, None, tx)
            continue
        if kind == "Put":
            new = item
        elif kind == "Delete":
            new = None
        else:
            new = dynamodb("GetItem", {"TableName": table, "Key": key, "ConsistentRead": True}, auth).get("Item")
        table_units += capacity.write_units(old, new, tx)
        gsi_units += capacity.gsi_write_units(old, new, schema(table, auth)[1])
    return table_units, gsi_units


def read_units(op, req, answer):
    if op == "GetItem":
        return capacity.read_units([answer["Item"]] if answer.get("Item") else [], req.get("ConsistentRead", False))
    if op in ("Query", "Scan"):
        consistent = req.get("ConsistentRead", False) and "IndexName" not in req
        return capacity.read_units(answer.get("Items", []), consistent)
    if op == "BatchGetItem":
        return sum(capacity.read_units([i], spec.get("ConsistentRead", False))
                   for table, spec in req.get("RequestItems", {}).items()
                   for i in answer.get("Responses", {}).get(table, []))
    if op == "TransactGetItems":
        return sum(capacity.read_units([r["Item"]] if r.get("Item") else [], True, True)
                   for r in answer.get("Responses", []))
    return 0


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

    def do_PUT(self):
        self.forward()

    def do_DELETE(self):
        self.forward()

    def do_HEAD(self):
        self.forward()

    def forward(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0) or 0))
        target = self.headers.get("x-amz-target", "")
        key = target.split(".")[-1] if "." in target else (target or f"S3 {self.command}")
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
        auth = self.headers.get("authorization")
        req, writes, olds = None, [], []
        if service == "dynamodb":
            req = json.loads(body or b"{}")
            writes = writes_of(key, req)
            olds = old_images(writes, auth)
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
        if service == "dynamodb" and writes:
            units, gsi = write_units(writes, olds, res.status == 200, auth)
            with lock:
                counts[f"wru {key}"] += units
                counts[f"wru-gsi {key}"] += gsi
        elif service == "dynamodb" and res.status == 200:
            units = read_units(key, req, json.loads(data or b"{}"))
            if units:
                with lock:
                    counts[f"rru {key}"] += units
        if self.command == "HEAD":
            out = [(k, v) for k, v in res.getheaders() if k.lower() not in ("transfer-encoding", "connection")]
            self.send_response(res.status)
            for k, v in out:
                self.send_header(k, v)
            self.end_headers()
            return
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
