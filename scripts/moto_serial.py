"""moto's server (PyPI `moto[server]`), answering one request at a time.

moto applies a DynamoDB transaction item by item and undoes a cancelled one by restoring a
copy of the whole table, so concurrent requests can erase or resurrect each other's writes,
which real DynamoDB never does. Served one by one, its transactions are isolated.

SQS long polls (ReceiveMessage with WaitTimeSeconds > 0) must not hold the server for their
wait, and moto's own long poll does not notice a FIFO group freed while it waits. So a long
poll is answered here as SQS does it: short receives, one request at a time like every
other, repeated until one returns messages or the wait is over.

Usage: moto_serial.py HOST PORT
"""
import io
import json
import os
import sys
import threading
import time

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple

host, port = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("MOTO_PORT", str(port))
moto = DomainDispatcherApplication(create_backend_app)
one_at_a_time = threading.Lock()

# How often a long poll looks again while it waits.
LOOK_EVERY = 0.05


def call(environ, body):
    """moto's answer to the request with `body`: (status, headers, body bytes)."""
    environ = dict(environ)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    started = {}

    def start_response(status, headers, exc_info=None):
        started["status"], started["headers"] = status, headers
        return lambda data: None

    with one_at_a_time:
        chunks = moto(environ, start_response)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
    return started["status"], started["headers"], data


def long_poll_wait(environ, body):
    """The wait of an SQS JSON-protocol ReceiveMessage, and its body as a short receive."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target != "AmazonSQS.ReceiveMessage":
        return 0, body
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return 0, body
    wait = int(request.get("WaitTimeSeconds") or 0)
    if wait <= 0:
        return 0, body
    request["WaitTimeSeconds"] = 0
    return wait, json.dumps(request).encode()


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    wait, body = long_poll_wait(environ, body)
    deadline = time.monotonic() + wait
    while True:
        status, headers, data = call(environ, body)
        if wait == 0 or not status.startswith("200") or time.monotonic() >= deadline:
            break
        try:
            if json.loads(data or b"{}").get("Messages"):
                break
        except ValueError:
            break
        time.sleep(LOOK_EVERY)
    start_response(status, headers)
    return [data]


run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)
