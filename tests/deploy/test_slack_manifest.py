"""slack/app-manifest.yaml: the scopes cover every Slack Web API method the receiver calls,
and interactivity points at the route that takes button presses."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from receiver.app import create_app
from receiver.settings import Settings
from tests.deploy.harness import REPO_ROOT, load_yaml
from tests.helpers import SHIPPED_RULES

MANIFEST = REPO_ROOT / "slack" / "app-manifest.yaml"
SLACK_CODE = REPO_ROOT / "receiver" / "notify" / "slack.py"
# The bot scopes Slack asks of each Web API method the receiver calls (any one suffices).
NEEDS = {
    "chat_postMessage": {"chat:write"},
    "chat_update": {"chat:write"},
    "conversations_open": {"im:write"},
    "conversations_list": {"channels:read", "groups:read"},
    "conversations_history": {"channels:history", "groups:history", "im:history"},
    "conversations_replies": {"channels:history", "groups:history", "im:history"},
}


def test_the_manifest_grants_what_the_receiver_calls_and_no_more() -> None:
    manifest = load_yaml(MANIFEST)
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    called = set(re.findall(r"self\.web\.(\w+)\(", SLACK_CODE.read_text()))
    assert called, "no Slack Web API calls found"
    assert called <= set(NEEDS), f"calls without a known scope: {called - set(NEEDS)}"
    for method in called:
        assert NEEDS[method] <= scopes, f"{method} needs {NEEDS[method] - scopes}"
    used = set().union(*(NEEDS[m] for m in called)) | {"chat:write.public"}
    assert scopes == used, f"scopes nothing uses: {scopes - used}"


def test_interactivity_points_at_the_slack_route() -> None:
    interactivity = load_yaml(MANIFEST)["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    url = urlsplit(interactivity["request_url"])
    assert url.scheme == "https"  # Slack refuses plain http request URLs
    app = create_app(Settings(rules=str(SHIPPED_RULES)), run_worker=False)
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    assert ("POST", url.path) in routes
