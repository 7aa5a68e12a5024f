"""The JIRA notifier: one issue per incident, kept in step, through the `jira` library.

The library is synchronous, so every call runs in a worker thread. Before creating an
issue it searches for the incident's label, so a crash between the create and recording
the key, or a retried delivery, finds the issue instead of opening a second one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import requests
import structlog
from jira import JIRA, JIRAError

from receiver.config.holder import RulesHolder
from receiver.domain import jira_render
from receiver.domain.model import Event, Incident
from receiver.domain.oncall import responder
from receiver.metrics import Metrics
from receiver.outbox.policy import (
    DeliveryError,
    is_retryable_status,
    parse_retry_after,
    reason_for_exception,
    reason_for_status,
)
from receiver.store.base import Effect, OutboxItem, Store

log = structlog.get_logger("receiver.notify.jira")

ALERTS_IN_DESCRIPTION = 200
POSTMORTEM_LINK = "Relates"  # a link type every JIRA has out of the box


def _jira_time(value: object) -> datetime | None:
    """JIRA's ``2026-11-26T01:00:00.000+0000``, or None when absent or unreadable."""
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return None


def jql_string(value: str) -> str:
    """A JQL string literal: quoted, with backslashes and quotes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _error(exc: Exception) -> DeliveryError:
    """Classify a failed call: 429/5xx/connection trouble retry, other 4xx are permanent."""
    if isinstance(exc, JIRAError):
        status = int(exc.status_code or 0)
        response = getattr(exc, "response", None)
        header = response.headers.get("Retry-After") if response is not None else None
        text = (exc.text or str(exc)).strip()[:500]
        return DeliveryError(
            f"JIRA answered {status or 'no status'}: {text}",
            retryable=status == 0 or is_retryable_status(status),
            retry_after=parse_retry_after(header, datetime.now().astimezone()),
            reason=reason_for_status(status),
        )
    return DeliveryError(
        f"JIRA unreachable: {type(exc).__name__}: {exc}"[:500],
        retryable=True,
        reason=reason_for_exception(exc, (requests.Timeout,)),
    )


class JiraNotifier:
    """Delivers incident events to JIRA."""

    def __init__(
        self,
        connect: Callable[[], JIRA],
        store: Store,
        rules: RulesHolder,
        metrics: Metrics,
        clock: Callable[[], datetime],
        base_url: str,
        threads: int = 4,
    ) -> None:
        # The library is synchronous: its calls get threads of their own, as many as the
        # lane delivers at once, so they never queue behind other work for the loop's pool.
        self._threads = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="jira")
        self._connect = connect
        self._client: JIRA | None = None
        self._client_lock = threading.Lock()
        self.store = store
        self.rules = rules
        self.metrics = metrics
        self.clock = clock
        self.base_url = base_url.rstrip("/")
        self._installation: str | None = None

    async def installation(self) -> str:
        """The store's installation id, read once: it never changes."""
        if self._installation is None:
            self._installation = await self.store.installation_id()
        return self._installation

    def _jira(self) -> JIRA:
        with self._client_lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)
        except (JIRAError, requests.RequestException) as exc:
            raise _error(exc) from exc

    async def deliver(self, item: OutboxItem) -> list[Effect]:
        """Bring the incident's issue in step with one event; a new or found issue's key is
        an effect, recorded with the outcome."""
        if item.incident_id is None:
            raise DeliveryError("JIRA delivery without an incident", retryable=False)
        incident = await self.store.get_incident(item.incident_id)
        if incident is None:
            raise DeliveryError(f"incident {item.incident_id} does not exist", retryable=False)
        effects: list[Effect] = []
        key = incident.jira_key
        if key is None:
            key = await self._ensure_issue(incident)
            effects.append(Effect("jira_key", item.incident_id, (key,)))
        cfg = self.rules.current
        kind = item.kind
        if kind == "incident.opened":
            return effects
        if kind == "incident.postmortem":
            events = await self.store.timeline(item.incident_id)
            await self._call(self._postmortem, incident, events, key, await self.installation())
            return effects
        if kind == "incident.severity_raised":
            priority = cfg.severities[incident.severity].jira_priority
            await self._call(self._update_priority, key, priority)
        if kind == "incident.reopened":
            await self._call(self._transition, key, cfg.jira.reopen_transition)
        text = jira_render.comment(kind, item.payload, cfg)
        await self._call(self._comment, key, text, item.id, item.maybe_delivered)
        if kind == "incident.resolved":
            await self._call(self._transition, key, cfg.jira.resolve_transition)
        return effects

    async def _ensure_issue(self, incident: Incident) -> str:
        """Find the incident's issue by its label, or create it."""
        assert incident.id is not None
        cfg = self.rules.current
        alerts = (await self.store.incident_alerts([incident.id], ALERTS_IN_DESCRIPTION))[
            incident.id
        ]
        total = (await self.store.alert_counts([incident.id]))[incident.id]
        person = responder(cfg, cfg.teams[incident.team].rotation, incident.opened_at).person
        jira_user = cfg.people[person].jira_user if person in cfg.people else None
        key: str = await self._call(
            self._find_or_create, incident, alerts, total, jira_user, await self.installation()
        )
        log.info("jira_issue_ready", incident_id=incident.id, jira_key=key)
        return key

    # The methods below run in a worker thread.

    def _search(self, incident: Incident, label: str) -> str | None:
        """The key of the issue carrying ``label`` in the incident's project, if any."""
        project = jira_render.project(incident, self.rules.current)
        jql = f"project = {jql_string(project)} AND labels = {jql_string(label)}"
        found = self._jira().search_issues(jql, maxResults=1, fields="key")
        return str(found[0].key) if found else None

    def _find_or_create(
        self,
        incident: Incident,
        alerts: Any,
        total: int,
        jira_user: str | None,
        installation: str,
    ) -> str:
        assert incident.id is not None
        client = self._jira()
        found = self._search(incident, jira_render.incident_label(installation, incident.id))
        if found:
            return found
        assignee = None
        if jira_user:
            cloud = getattr(client, "deploymentType", None) == "Cloud"
            assignee = {"accountId": jira_user} if cloud else {"name": jira_user}
        cfg = self.rules.current
        fields = jira_render.issue_fields(incident, alerts, cfg, total, assignee, installation)
        issue = client.create_issue(fields=fields)
        return str(issue.key)

    def _comment(self, key: str, text: str, delivery: int, check: bool) -> None:
        """Add a comment tagged with its delivery; on a redelivery, only if it is not there."""
        tag = jira_render.delivery_tag(delivery)
        client = self._jira()
        if check and any(tag in str(c.body) for c in client.comments(key)):
            log.info("jira_comment_already_there", jira_key=key, outbox_id=delivery)
            return
        client.add_comment(key, f"{text}\n\n{tag}")

    def _postmortem(
        self, incident: Incident, events: list[Event], key: str, installation: str
    ) -> None:
        """Find or create the incident's postmortem issue, then link it to the incident's."""
        assert incident.id is not None
        client = self._jira()
        found = self._search(incident, jira_render.postmortem_label(installation, incident.id))
        if found:
            postmortem = found
        else:
            created = _jira_time(client.issue(key, fields="created").fields.created)
            fields = jira_render.postmortem_fields(
                incident, events, self.rules.current, key, created, installation
            )
            postmortem = str(client.create_issue(fields=fields).key)
            log.info("jira_postmortem_created", incident_id=incident.id, jira_key=postmortem)
        links = client.issue(postmortem, fields="issuelinks").fields.issuelinks or []
        linked = {
            getattr(getattr(link, side, None), "key", None)
            for link in links
            for side in ("inwardIssue", "outwardIssue")
        }
        if key not in linked:
            client.create_issue_link(POSTMORTEM_LINK, postmortem, key)

    def _update_priority(self, key: str, priority: str) -> None:
        self._jira().issue(key, fields="priority").update(fields={"priority": {"name": priority}})

    def _transition(self, key: str, name: str) -> None:
        client = self._jira()
        available = client.transitions(key)
        match = next((t for t in available if t["name"].lower() == name.lower()), None)
        if match is None:
            self.metrics.jira_missing_transition.labels(name).inc()
            log.warning(
                "jira_transition_missing",
                jira_key=key,
                transition=name,
                available=[t["name"] for t in available],
            )
            return
        client.transition_issue(key, match["id"])


def jira_connector(
    url: str,
    user: str | None,
    token: str | None,
    deployment: str = "auto",
    timeout: float = 15.0,
) -> Callable[[], JIRA]:
    """Build clients: basic auth with an API token (Cloud), or a bearer personal access token
    (Server/Data Center) when no user is given. The library never retries by itself:
    the outbox does, with backoff."""

    def connect() -> JIRA:
        auth: dict[str, Any] = {}
        if user and token:
            auth["basic_auth"] = (user, token)
        elif token:
            auth["token_auth"] = token
        client = JIRA(
            server=url,
            max_retries=0,
            timeout=timeout,
            get_server_info=deployment == "auto",
            validate=False,
            options={"check_update": False},
            **auth,
        )
        if deployment != "auto":  # the library picks its search endpoint from this
            client.deploymentType = "Cloud" if deployment == "cloud" else "Server"
        return client

    return connect
