"""JSON on the hot path (request bodies, stored rows, logs) through orjson."""

from __future__ import annotations

from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError  # a ValueError


def dumps(value: Any) -> str:
    """Serialize to a str; non-str keys and NaN are refused like the standard library's."""
    return orjson.dumps(value).decode()


def loads(data: str | bytes) -> Any:
    """Parse JSON text; raises ValueError on anything malformed (including deep nesting)."""
    return orjson.loads(data)
