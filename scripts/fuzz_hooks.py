"""Schemathesis hooks of `scripts/fuzz`: authentication per route, real ids, the error envelope check.

Loaded through SCHEMATHESIS_HOOKS by `scripts/fuzz`, which sets:
  WA_FUZZ_JWT         tenant JWT for the /apps routes
  WA_FUZZ_APP_TOKEN   App token for every other route
  WA_FUZZ_APP_ID      an App of the JWT's tenant (used as {app_id} in half of the cases)
  WA_FUZZ_DEVICE_ID   a linked sandbox device of the token's App (same for {device_id})
"""

import itertools
import os
import uuid

import schemathesis

JWT = os.environ["WA_FUZZ_JWT"]
APP_TOKEN = os.environ["WA_FUZZ_APP_TOKEN"]
REAL_IDS = {
    "app_id": os.environ.get("WA_FUZZ_APP_ID"),
    "device_id": os.environ.get("WA_FUZZ_DEVICE_ID"),
}

# Operations that would end the run's App or device (or its token) for every later case: they
# are fuzzed with generated ids only.
DESTRUCTIVE = {
    ("DELETE", "/apps/{app_id}"),
    ("POST", "/apps/{app_id}/token"),
    ("DELETE", "/devices/{device_id}"),
    ("POST", "/devices/{device_id}/disconnect"),
    ("POST", "/sandbox/devices/{device_id}/drop"),
}

# docs/errors.md: every code and the status it is always answered with.
STATUS_OF_CODE = {
    "validation_error": 400,
    "invalid_api_key": 401,
    "unauthorized": 401,
    "forbidden": 403,
    "group_posting_restricted": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "request_canceled": 408,
    "conflict": 409,
    "device_not_connected": 409,
    "qr_reset_not_allowed": 409,
    "too_many_devices": 409,
    "client_outdated": 409,
    "logged_out": 409,
    "device_destroyed": 410,
    "request_too_large": 413,
    "provider_rate_limit": 429,
    "rate_limit_exceeded": 429,
    "internal_error": 500,
    "provider_error": 502,
    "whatsapp_connection_aborted": 503,
    "whatsapp_connection_lost": 503,
    "group_prekey_timeout": 504,
    "upstream_timeout": 504,
}


@schemathesis.auth(refresh_interval=None)
class WaAuth:
    """The tenant JWT on /apps, the App token everywhere else."""

    def get(self, case, context):
        return JWT if context.operation.path.startswith("/apps") else APP_TOKEN

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


_turn = itertools.count()


def _is_uuid(value):
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@schemathesis.hook
def map_case(context, case):
    """Every other case whose {app_id} / {device_id} is a well-formed UUID addresses the run's
    real App / device instead, so handlers are fuzzed past the lookup (sends, the sandbox,
    presence...). Malformed ids are left alone: they test the path validation. Schemathesis
    also reuses ids it saw in answers (GET /devices lists the real device), so a destructive
    operation never gets a real id, whatever its source."""
    op = context.operation
    params = case.path_parameters
    if not params:
        return case
    destructive = (op.method.upper(), op.path) in DESTRUCTIVE
    for name, real in REAL_IDS.items():
        if not real or name not in params:
            continue
        if destructive:
            if params[name] == real:
                params[name] = str(uuid.uuid4())
        elif _is_uuid(params[name]) and next(_turn) % 2 == 0:
            params[name] = real
    return case


@schemathesis.check
def error_envelope(ctx, response, case):
    """Every 4xx/5xx answers the seed envelope: {"error": {"code", "message", "details"?},
    "request_id"}, request_id equal to the x-request-id header, the code's own status, and
    details.field on validation_error."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except Exception:
        raise AssertionError(f"{response.status_code} answered a body that is not JSON") from None
    if not isinstance(body, dict):
        raise AssertionError(f"the error body is not an object: {body!r}")
    if set(body) != {"error", "request_id"}:
        raise AssertionError(f"the error body has keys {sorted(body)}, expected error and request_id")
    error = body["error"]
    if not isinstance(error, dict):
        raise AssertionError(f"`error` is not an object: {error!r}")
    code, message = error.get("code"), error.get("message")
    if not isinstance(code, str) or not code:
        raise AssertionError(f"`error.code` is missing or empty: {error!r}")
    if not isinstance(message, str) or not message:
        raise AssertionError(f"`error.message` is missing or empty: {error!r}")
    extra = set(error) - {"code", "message", "details"}
    if extra:
        raise AssertionError(f"`error` has unexpected keys {sorted(extra)}")
    if "details" in error and (not isinstance(error["details"], dict) or not error["details"]):
        raise AssertionError(f"`error.details` must be a non-empty object when present: {error!r}")
    expected = STATUS_OF_CODE.get(code)
    if expected is None:
        raise AssertionError(f"unknown error code {code!r}")
    if expected != response.status_code:
        raise AssertionError(f"{code} answered with {response.status_code}, documented {expected}")
    if code == "validation_error" and not (error.get("details") or {}).get("field"):
        raise AssertionError("validation_error without details.field")
    request_id = body["request_id"]
    header = (response.headers.get("x-request-id") or [None])[0]
    if not isinstance(request_id, str) or not request_id or request_id != header:
        raise AssertionError(f"request_id {request_id!r} is not the x-request-id header {header!r}")
    return None
