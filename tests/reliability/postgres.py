"""PostgreSQL for the process tests: URLs that pick a schema, and a cluster of one's own."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from urllib.parse import quote

from tests.reliability.harness import free_port

PG_TIMEOUT = 60


def with_search_path(url: str, schema: str) -> str:
    """The URL with its connections' search_path set to ``schema`` (an asyncpg server
    setting in the query string)."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}search_path={quote(schema)}"


def _pg(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=PG_TIMEOUT, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {done.stdout}\n{done.stderr}")


def _version() -> str:
    listed = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    ).stdout.split()
    if not listed:
        raise AssertionError("no PostgreSQL installation found (pg_lsclusters lists nothing)")
    return listed[0]


@dataclass
class PrivateCluster:
    """A throwaway cluster made with Debian's pg_createcluster (trust auth, 127.0.0.1)."""

    version: str
    name: str
    port: int

    @classmethod
    def create(cls) -> PrivateCluster:
        if shutil.which("pg_createcluster") is None:
            raise AssertionError("pg_createcluster is missing (Debian postgresql-common)")
        cluster = cls(_version(), f"reltest{secrets.token_hex(3)}", free_port())
        _pg(
            "pg_createcluster",
            "--start",
            "-p",
            str(cluster.port),
            cluster.version,
            cluster.name,
            "--",
            "--auth-host=trust",
            "--auth-local=trust",
        )
        return cluster

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        _pg(
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            self.version,
            self.name,
            "stop",
            "-m",
            "fast",
        )

    def start(self) -> None:
        _pg("pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, "start")

    def drop(self) -> None:
        _pg("pg_dropcluster", "--stop", self.version, self.name)
