"""Tenant JWTs for the local stack's `/apps` routes: HS256, signed with the stack's JWT
key, with the claims `wa-server token` puts in (`tenant_id`, `sub`, `iat`, `exp`, and
`iss`/`aud` when the stack checks them)."""

import base64
import hashlib
import hmac
import json
import time


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(secret, tenant, ttl_secs=86400, issuer=None, audience=None, now=None):
    """A JWT for `tenant`, valid `ttl_secs` from `now` (default: the current time)."""
    now = int(time.time() if now is None else now)
    claims = {"tenant_id": tenant, "exp": now + ttl_secs, "sub": tenant, "iat": now}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"
