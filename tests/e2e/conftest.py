"""Fixtures that run the receiver and a real Alertmanager as subprocesses on 127.0.0.1."""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import (
    REPO_ROOT,
    RULES_PATH,
    Alertmanager,
    ManagedProcess,
    Receiver,
    alertmanager_binary,
    clean_env,
    free_port,
)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    """The receiver serving on a free port with a fresh SQLite database."""
    port = free_port()
    webhook_token = secrets.token_urlsafe(24)
    api_token = secrets.token_urlsafe(24)
    argv = [
        sys.executable, "-m", "receiver", "serve",
        "--rules", str(RULES_PATH),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--database-url", f"sqlite:///{tmp_path / 'r.db'}",
    ]  # fmt: skip
    env = clean_env(
        RECEIVER_WEBHOOK_TOKEN=webhook_token,
        RECEIVER_API_TOKEN=api_token,
        RECEIVER_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",  # complete logs in failure messages
    )
    proc = ManagedProcess("receiver", argv, env, cwd=REPO_ROOT, log_dir=tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        proc.wait_ready(url + "/readyz")
        yield Receiver(url, webhook_token, api_token, proc)
    finally:
        proc.stop()


@pytest.fixture
def alertmanager(receiver: Receiver, tmp_path: Path) -> Iterator[Alertmanager]:
    """Alertmanager sending every group to the receiver's webhook with its bearer token."""
    binary = alertmanager_binary()
    if binary is None:
        pytest.fail(
            "Alertmanager binary not found: install the Debian package prometheus-alertmanager"
        )
    token_file = tmp_path / "webhook-token"
    token_file.write_text(receiver.webhook_token)
    config = {
        "route": {
            "receiver": "incident-receiver",
            "group_by": ["alertname", "service"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "incident-receiver",
                "webhook_configs": [
                    {
                        "url": f"{receiver.url}/webhook",
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {
                                "type": "Bearer",
                                "credentials_file": str(token_file),
                            }
                        },
                    }
                ],
            }
        ],
    }
    config_file = tmp_path / "alertmanager.yml"
    config_file.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
    port = free_port()
    argv = [
        binary,
        f"--config.file={config_file}",
        f"--storage.path={tmp_path / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip: a single, isolated instance
        "--log.level=debug",
    ]
    proc = ManagedProcess("alertmanager", argv, clean_env(), cwd=tmp_path, log_dir=tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        proc.wait_ready(url + "/-/ready")
        yield Alertmanager(url, proc)
    finally:
        proc.stop()
