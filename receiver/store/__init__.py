"""Durable state behind one interface; pick a backend from a database URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from receiver.store.base import (
    Conflict,
    Delivery,
    MailTaken,
    NewNotification,
    OutboxItem,
    Store,
    StoreUnavailable,
    UnitOfWork,
)
from receiver.store.postgres import PostgresStore
from receiver.store.sqlite import SqliteStore


def store_from_url(url: str) -> Store:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db``, or ``postgresql://…``
    (also ``postgres://…``), which several replicas may share."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = (parts.netloc + parts.path).removeprefix("/")
        if not path or ":memory:" in path:
            raise ValueError("SQLite needs a file (sqlite:///path.db); in-memory is not durable")
        return SqliteStore(path)
    if parts.scheme in ("postgres", "postgresql"):
        return PostgresStore(url)
    raise ValueError(
        f"unsupported database URL scheme {parts.scheme!r}: use sqlite:///path or postgresql://"
    )


__all__ = [
    "Conflict",
    "Delivery",
    "MailTaken",
    "NewNotification",
    "OutboxItem",
    "PostgresStore",
    "SqliteStore",
    "Store",
    "StoreUnavailable",
    "UnitOfWork",
    "store_from_url",
]
