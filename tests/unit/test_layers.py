"""The direction of imports: adapters and pure code do not reach into the layers above."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "receiver"

# package -> receiver subpackages (or top-level modules) it must not import
FORBIDDEN = {
    # rules files are loaded and checked without the code that acts on them
    "config": (
        "receiver.domain",
        "receiver.metrics",
        "receiver.store",
        "receiver.service",
        "receiver.outbox",
        "receiver.notify",
        "receiver.api",
    ),
    # adapters know the instructions they carry out, not who queued them or retries them
    "notify": (
        "receiver.store",
        "receiver.config",
        "receiver.service",
        "receiver.outbox",
        "receiver.api",
    ),
    # the mailbox adapter reads mail; what it becomes is the services' to decide
    "intake": (
        "receiver.store",
        "receiver.config",
        "receiver.service",
        "receiver.outbox",
        "receiver.notify",
        "receiver.api",
    ),
    "outbox": ("receiver.notify", "receiver.service", "receiver.api", "receiver.config"),
    "store": (
        "receiver.service",
        "receiver.outbox",
        "receiver.notify",
        "receiver.api",
        "receiver.config",
    ),
    "service": ("receiver.api", "receiver.notify", "receiver.app", "receiver.cli"),
    # the console is a face over the services, as the API is: it acts only through them
    "console": (
        "receiver.notify",
        "receiver.outbox",
        "receiver.intake",
        "receiver.app",
        "receiver.cli",
    ),
    "domain": (
        "receiver.store",
        "receiver.notify",
        "receiver.outbox",
        "receiver.api",
        "receiver.service",
        "receiver.app",
    ),
}


def imported(path: Path) -> set[str]:
    """Every module a file imports, by absolute name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_from_the_layers_it_serves(package: str) -> None:
    files = sorted((PACKAGE / package).glob("*.py"))
    assert files, f"receiver/{package} has no modules"
    crossing = [
        f"{path.name} imports {name}"
        for path in files
        for name in sorted(imported(path))
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[package])
    ]
    assert crossing == []


def test_the_check_sees_an_import_that_crosses(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from receiver.store.base import Store\nimport receiver.config.models\n")
    assert {"receiver.store.base", "receiver.config.models"} <= imported(bad)
