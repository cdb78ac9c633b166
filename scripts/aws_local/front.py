"""The HTTP server of one HTTP API: reads a request, takes the route `apigw.select`
chooses, invokes its function with the payload format 2.0 event and answers what the
function answered, or API Gateway's own answer (`apigw`). One JSON access-log line per
request (route key, status, integration latency, function) goes to `api-<API>.log`."""

import json
import os
import threading
import time

from . import apigw, httpio
from .logs import JsonLines


class Api:
    """One `AWS::Serverless::HttpApi` (or the implicit one) and its routes."""

    def __init__(self, logical, api_id, stage, routes, functions, account, log_path):
        self.logical = logical
        self.api_id = api_id
        self.stage = stage
        self.routes = routes
        self.functions = functions
        self.account = account
        self.log = JsonLines(log_path)

    def route_path(self, raw_path):
        """The path routes are matched against (without a named stage), or None when the
        request names no stage of this API."""
        if self.stage == "$default":
            return raw_path
        prefix = f"/{self.stage}"
        if raw_path == prefix:
            return "/"
        if raw_path.startswith(prefix + "/"):
            return raw_path[len(prefix):]
        return None

    def handle(self, *, method, raw_path, raw_query, headers, body, source_ip, port, req_id, started):
        """(status, headers, body, route key, function logical id, error) of one request."""
        path = self.route_path(raw_path)
        selected = apigw.select(self.routes, method, path) if path is not None else None
        if selected is None:
            return (*apigw.NOT_FOUND, None, None, None)
        route = selected[0]
        host = dict((k.lower(), v) for k, v in headers).get("host", f"127.0.0.1:{port}")
        event = apigw.event(
            method=method, raw_path=raw_path, raw_query=raw_query, headers=headers, body=body,
            source_ip=source_ip, selected=selected, stage=self.stage, api_id=self.api_id,
            account=self.account, req_id=req_id, epoch_ms=int(time.time() * 1000),
            domain=host, local_port=port)
        payload = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        if apigw.too_large(payload):
            return (*apigw.TOO_LARGE, route.key, route.function, "payload over Lambda's limit")
        wait = route.timeout_ms / 1000 - (time.monotonic() - started)
        outcome = self.functions[route.function].invoke(payload, wait=max(wait, 0))
        if outcome is None:
            return (*apigw.UNAVAILABLE, route.key, route.function, "integration timeout")
        if not outcome.ok:
            return (*apigw.INTERNAL_ERROR, route.key, route.function, outcome.error_type)
        answer = apigw.response(outcome.payload)
        error = "malformed response" if answer is apigw.INTERNAL_ERROR else None
        return (*answer, route.key, route.function, error)

def serve(api, host, port):
    """Starts `api` on host:port (0: a free port); returns the server."""

    class Front(httpio.Handler):
        def _serve(self):
            started = time.monotonic()
            req_id = apigw.request_id(os.urandom(11))
            raw_path, _, raw_query = self.path.partition("?")
            try:
                body = httpio.read_body(self, limit=apigw.BODY_LIMIT)
            except httpio.BodyTooLarge:
                self.close_connection = True
                status, headers, data = apigw.TOO_LARGE
                key = function = None
                error = "body over API Gateway's limit"
            else:
                status, headers, data, key, function, error = api.handle(
                    method=self.command, raw_path=raw_path, raw_query=raw_query,
                    headers=list(self.headers.items()), body=body,
                    source_ip=self.client_address[0], port=self.server.server_address[1],
                    req_id=req_id, started=started)
            # Logged before the answer: a client that has its answer finds the request's line.
            api.log.write({
                "requestId": req_id, "method": self.command,
                "path": raw_path, "routeKey": key, "status": status, "function": function,
                "integrationError": error, "responseLength": len(data),
                "latencyMs": round((time.monotonic() - started) * 1000, 2),
            })
            httpio.answer(self, status, list(headers) + [("Apigw-Requestid", req_id)], data,
                          head=self.command == "HEAD")

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    server = httpio.Server((host, port), Front)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
