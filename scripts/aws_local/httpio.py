"""HTTP/1.1 request bodies and answers for the stack's servers (the HTTP API front and the
Lambda Runtime API), on top of `http.server`: a body by Content-Length or chunked, and a
complete answer with its Content-Length so that connections stay open."""

import http.server
import socketserver


class BodyTooLarge(Exception):
    """The request announced or sent more than the caller accepts."""


def read_body(handler, limit=None):
    """The body of `handler`'s request (bytes). Raises `BodyTooLarge` when it is longer than
    `limit` (then the connection should be closed: the rest is not read)."""
    headers = handler.headers
    if "chunked" in (headers.get("transfer-encoding") or "").lower():
        chunks, size = [], 0
        while True:
            line = handler.rfile.readline(65537)
            length = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if length == 0:
                # Trailers, up to the empty line.
                while handler.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            size += length
            if limit is not None and size > limit:
                raise BodyTooLarge(size)
            chunks.append(handler.rfile.read(length))
            handler.rfile.readline(3)
    length = int(headers.get("content-length") or 0)
    if limit is not None and length > limit:
        raise BodyTooLarge(length)
    return handler.rfile.read(length) if length else b""


def answer(handler, status, headers, body=b"", head=False):
    """Writes a complete answer: `headers` is a list of (name, value) pairs; Content-Length
    is set here (and hop-by-hop headers are dropped)."""
    handler.send_response_only(status)
    for name, value in headers:
        if name.lower() not in ("content-length", "transfer-encoding", "connection"):
            handler.send_header(name, value)
    handler.send_header("Date", handler.date_time_string())
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if not head and body:
        handler.wfile.write(body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """A threaded HTTP server on loopback whose threads do not keep the process alive."""

    daemon_threads = True
    allow_reuse_address = True
    # Many clients at once (a fleet of pollers and environments): a deep accept queue.
    request_queue_size = 128


class Handler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; no log lines on stderr (the stack logs its own)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass
