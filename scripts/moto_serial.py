"""moto's server (PyPI `moto[server]`), answering one request at a time.

moto applies a DynamoDB transaction item by item and undoes a cancelled one by restoring a
copy of the whole table, so concurrent requests can erase or resurrect each other's writes,
which real DynamoDB never does. Served one by one, its transactions are isolated. The AWS
adapters never long-poll by default, so nothing holds the server.

Usage: moto_serial.py HOST PORT
"""
import os
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple

host, port = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("MOTO_PORT", str(port))
app = DomainDispatcherApplication(create_backend_app)
run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)
