"""API Gateway's HTTP API as the local stack serves it, as pure functions: the routes a
template's `HttpApi` events declare, which route a request takes, the payload format 2.0
event a Lambda integration receives, what its answer becomes, and API Gateway's own answers.

Route selection follows API Gateway's documented priority ("Routing API requests", HTTP
API developer guide): a full match of path and method first, then a route with a greedy
path variable (`{proxy+}`), then `$default`; nothing: 404 `{"message":"Not Found"}`. Among
full matches a literal segment beats a path variable (left to right) and an exact method
beats `ANY`; among greedy routes the longest matching prefix wins.

API Gateway's answers (HTTP APIs, whose bodies differ from REST APIs'):
- no route: 404 `{"message":"Not Found"}` ("If no routes match a request, API Gateway
  returns {"message":"Not Found"} to the client", HTTP API developer guide);
- an event over Lambda's 6 MB invocation limit (or a body over API Gateway's 10 MB): 413
  `{"message":"Request Entity Too Large"}`; Lambda refuses the invocation
  (RequestEntityTooLargeException, "Request must be smaller than 6291456 bytes") and the
  HTTP API answers 413 with this body;
- a failed invocation (a function error, a response over 6,291,556 bytes or not in the
  2.0 format, a timeout of the function): 500 `{"message":"Internal Server Error"}` (the
  HTTP API troubleshooting guide, "My API with a Lambda integration returns
  {"message":"Internal Server Error"}");
- no answer within the integration timeout (30 s at most): 503
  `{"message":"Service Unavailable"}`.
"""

import base64
import hashlib
import json
import re
import time
from dataclasses import dataclass
from urllib.parse import unquote

from .runtime import REQUEST_LIMIT

# API Gateway's limit on a request body.
BODY_LIMIT = 10 * 1024 * 1024
# The longest an HTTP API waits for an integration.
MAX_INTEGRATION_TIMEOUT_MS = 30000

JSON = [("Content-Type", "application/json")]
NOT_FOUND = (404, JSON, b'{"message":"Not Found"}')
TOO_LARGE = (413, JSON, b'{"message":"Request Entity Too Large"}')
INTERNAL_ERROR = (500, JSON, b'{"message":"Internal Server Error"}')
UNAVAILABLE = (503, JSON, b'{"message":"Service Unavailable"}')

_VARIABLE = re.compile(r"\{([A-Za-z0-9_.-]+)(\+?)\}")
_METHODS = ("ANY", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_TEXT_TYPES = ("application/json", "application/xml", "application/javascript",
               "application/x-www-form-urlencoded", "application/graphql")


class RouteError(ValueError):
    """A route API Gateway would refuse."""


@dataclass(frozen=True)
class Route:
    """One route: its key (`GET /pets/{id}`, `$default`) and where it goes."""

    key: str
    method: str
    segments: tuple
    function: str
    timeout_ms: int = MAX_INTEGRATION_TIMEOUT_MS

    @property
    def greedy(self):
        return bool(self.segments) and self.segments[-1].endswith("+}")


def route(method, path, function, timeout_ms=MAX_INTEGRATION_TIMEOUT_MS):
    """The route of an `HttpApi` event (`Method`, `Path`); no path and no method, or path
    `$default`: the `$default` route."""
    if timeout_ms is None:
        timeout_ms = MAX_INTEGRATION_TIMEOUT_MS
    if not 50 <= int(timeout_ms) <= MAX_INTEGRATION_TIMEOUT_MS:
        raise RouteError(f"TimeoutInMillis {timeout_ms}: must be 50 to 30000")
    if path in (None, "$default") and method in (None, "ANY", "any"):
        return Route("$default", "ANY", (), function, int(timeout_ms))
    if path is None:
        raise RouteError(f"method {method} without a path")
    method = str(method or "ANY").upper()
    if method not in _METHODS:
        raise RouteError(f"method {method} is not an HTTP API method")
    path = str(path)
    if not path.startswith("/"):
        raise RouteError(f"path {path} must start with /")
    segments = tuple(path[1:].split("/")) if path != "/" else ()
    names = set()
    for i, seg in enumerate(segments):
        m = _VARIABLE.fullmatch(seg)
        if "{" in seg or "}" in seg:
            if not m:
                raise RouteError(f"path {path}: a variable takes a whole segment")
            if m.group(2) and i != len(segments) - 1:
                raise RouteError(f"path {path}: a greedy variable must be last")
            if m.group(1) in names:
                raise RouteError(f"path {path}: variable {m.group(1)} twice")
            names.add(m.group(1))
        elif seg == "" and i != len(segments) - 1:
            raise RouteError(f"path {path}: empty segment")
    return Route(f"{method} {path}", method, segments, function, int(timeout_ms))


def check_routes(routes):
    """API Gateway refuses two routes with one key."""
    seen = {}
    for r in routes:
        if r.key in seen:
            raise RouteError(f"route {r.key} is declared by {seen[r.key]} and {r.function}")
        seen[r.key] = r.function


def _match_segments(route_segments, request_segments):
    """The path parameters when the route's path matches, else None."""
    params = {}
    for i, seg in enumerate(route_segments):
        m = _VARIABLE.fullmatch(seg)
        if m and m.group(2):
            rest = request_segments[i:]
            value = "/".join(rest)
            if not rest or value == "":
                return None
            params[m.group(1)] = unquote(value)
            return params
        if i >= len(request_segments):
            return None
        if m:
            if request_segments[i] == "":
                return None
            params[m.group(1)] = unquote(request_segments[i])
        elif unquote(request_segments[i]) != seg:
            return None
    if len(request_segments) != len(route_segments):
        return None
    return params


def _rank(r):
    literal = tuple(0 if not _VARIABLE.fullmatch(s) else 1 for s in r.segments)
    method = 0 if r.method != "ANY" else 1
    if r.greedy:
        return (1, -len(r.segments), literal, method)
    return (0, 0, literal, method)


def select(routes, method, raw_path):
    """The route a request takes and its path parameters, or None (404)."""
    request_segments = raw_path[1:].split("/") if raw_path not in ("", "/") else []
    matches = []
    default = None
    for r in routes:
        if r.key == "$default":
            default = r
            continue
        if r.method not in ("ANY", method.upper()):
            continue
        params = _match_segments(r.segments, request_segments)
        if params is not None:
            matches.append((_rank(r), r, params))
    if matches:
        _, best, params = min(matches, key=lambda m: m[0])
        return best, params
    if default is not None:
        return default, {}
    return None


def is_text(content_type):
    """Whether a body of this type is passed as text (else base64)."""
    if not content_type:
        return True
    kind = content_type.split(";", 1)[0].strip().lower()
    return (kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith("+json")
            or kind.endswith("+xml"))


def _query_parameters(raw_query):
    params = {}
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        key, value = unquote(key), unquote(value)
        params[key] = f"{params[key]},{value}" if key in params else value
    return params


def request_id(random_bytes):
    """An API Gateway request id (`LV7fzho-PHcEJPw=`) from 11 random bytes."""
    return base64.urlsafe_b64encode(random_bytes).decode()


def event(*, method, raw_path, raw_query, headers, body, source_ip, selected, stage,
          api_id, account, req_id, epoch_ms, domain, local_port):
    """The payload format 2.0 event of a request. `headers` is a list of (name, value) as
    received; `selected` is (route, path parameters)."""
    route_, path_params = selected
    merged, cookies = {}, []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[name] = f"{merged[name]},{value}" if name in merged else value
    forwarded = merged.get("x-forwarded-for")
    merged["x-forwarded-for"] = f"{forwarded}, {source_ip}" if forwarded else source_ip
    merged["x-forwarded-proto"] = "http"
    merged["x-forwarded-port"] = str(local_port)
    trace = hashlib.sha256(req_id.encode()).hexdigest()[:24]
    merged.setdefault("x-amzn-trace-id", f"Root=1-{epoch_ms // 1000:08x}-{trace}")
    out = {
        "version": "2.0",
        "routeKey": route_.key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        out["cookies"] = cookies
    out["headers"] = merged
    if raw_query:
        out["queryStringParameters"] = _query_parameters(raw_query)
    out["requestContext"] = {
        "accountId": account,
        "apiId": api_id,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": merged.get("user-agent", ""),
        },
        "requestId": req_id,
        "routeKey": route_.key,
        "stage": stage,
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch_ms / 1000)),
        "timeEpoch": epoch_ms,
    }
    if path_params:
        out["pathParameters"] = path_params
    if body:
        text = None
        if is_text(merged.get("content-type")):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        out["body"] = text if text is not None else base64.b64encode(body).decode()
        out["isBase64Encoded"] = text is None
    else:
        out["isBase64Encoded"] = False
    return out


def too_large(event_bytes):
    """Whether an event is over Lambda's synchronous invocation limit."""
    return len(event_bytes) >= REQUEST_LIMIT


def response(payload):
    """A Lambda's answer in the 2.0 format as (status, headers, body); API Gateway's 500
    when it is not one. Valid JSON without `statusCode` is a 200 JSON body, as API Gateway
    infers it."""
    try:
        doc = json.loads(payload or b"null")
    except ValueError:
        return INTERNAL_ERROR
    if not isinstance(doc, dict) or "statusCode" not in doc:
        if doc is None:
            return INTERNAL_ERROR
        return 200, JSON, payload
    status = doc.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return INTERNAL_ERROR
    headers = []
    for name, value in (doc.get("headers") or {}).items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        headers.append((str(name), str(value)))
    for cookie in doc.get("cookies") or []:
        headers.append(("Set-Cookie", str(cookie)))
    body = doc.get("body")
    if body is None:
        data = b""
    elif doc.get("isBase64Encoded"):
        try:
            data = base64.b64decode(str(body), validate=True)
        except ValueError:
            return INTERNAL_ERROR
    else:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
    return status, headers, data
