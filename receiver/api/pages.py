"""What the receiver's web pages share: the package's Jinja2 templates (autoescaped) and
its static files, served with an ETag and cached until a release changes them."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources

import jinja2
from aiohttp import web


@cache
def templates() -> jinja2.Environment:
    """The package's templates; every value inserted is escaped."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("receiver", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def static_file(folder: str, name: str) -> tuple[bytes, str]:
    """A static file of the package (``receiver/static/<folder>/<name>``) and its ETag."""
    data = (resources.files("receiver") / "static" / folder / name).read_bytes()
    return data, f'"{hashlib.sha256(data).hexdigest()[:20]}"'


def version_of(folder: str, name: str) -> str:
    """A short digest of a static file's content, for its URL to bust caches on release."""
    return static_file(folder, name)[1][1:11]


def cached(request: web.Request, body: bytes, etag: str, kind: str, max_age: int) -> web.Response:
    """A cacheable file: 304 when the client has this version already."""
    headers = {
        "ETag": etag,
        "Cache-Control": f"public, max-age={max_age}",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "cross-origin",  # hosts with COEP may load them
    }
    if etag in request.headers.get("If-None-Match", "").replace(" ", "").split(","):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = kind
    return web.Response(body=body, headers=headers)
