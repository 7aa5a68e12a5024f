"""Token checks for the webhook (bearer or basic) and the API (bearer)."""

from __future__ import annotations

import base64
import binascii
import hmac

from aiohttp import web
from pydantic import SecretStr


def _same(given: str, expected: SecretStr) -> bool:
    try:
        presented = given.encode()
    except UnicodeEncodeError:  # bytes that were not UTF-8 in the header
        return False
    return hmac.compare_digest(presented, expected.get_secret_value().encode())


def presented_secret(request: web.Request, allow_basic: bool) -> str | None:
    """The token from ``Authorization: Bearer`` or, when allowed, basic auth's password."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if allow_basic and scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def authorized(request: web.Request, token: SecretStr | None, allow_basic: bool = False) -> bool:
    """True when no token is configured or the request presents it."""
    if token is None:
        return True
    given = presented_secret(request, allow_basic)
    return bool(given) and _same(given or "", token)  # an empty password never passes


def unauthorized(realm: str) -> web.Response:
    """A JSON 401 that names the expected scheme and never echoes what was sent."""
    return web.json_response(
        {"error": "missing or invalid credentials"},
        status=401,
        headers={"WWW-Authenticate": f'Bearer realm="{realm}"'},
    )
