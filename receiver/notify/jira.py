"""The JIRA notifier: one issue per incident, kept in step, through the `jira` library.

The library is synchronous, so every call runs in a worker thread. Before creating an
issue it searches for the incident's label, so a crash between the create and recording
the key, or a retried delivery, finds the issue instead of opening a second one. What the
issue says was rendered when the event happened; this module only carries it out.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Protocol

import requests
import structlog
from jira import JIRA, JIRAError

from receiver.domain import jira_render
from receiver.domain.delivery import Effect, OutboxItem
from receiver.domain.failures import (
    DeliveryError,
    Reason,
    is_retryable_status,
    parse_retry_after,
    reason_for_exception,
    reason_for_status,
)
from receiver.domain.instructions import ISSUE_SLOT
from receiver.domain.reports import Attachment
from receiver.metrics import Metrics

log = structlog.get_logger("receiver.notify.jira")

# A report's attachments by its incident id, as stored when it was filed.
AttachmentSource = Callable[[int], Awaitable[Sequence[Attachment]]]

POSTMORTEM_LINK = "Relates"  # a link type every JIRA has out of the box


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


class JiraClient(Protocol):
    """The few JIRA calls the receiver makes (each may raise the library's errors)."""

    def find(self, project: str, label: str) -> str | None:
        """The key of the issue carrying ``label`` in ``project``, if any."""

    def create(self, fields: dict[str, Any], assignee: str | None) -> str:
        """Create an issue; ``assignee`` is a JIRA user (Cloud account id or Server name)."""

    def has_comment(self, key: str, text: str) -> bool:
        """Whether a comment of the issue contains ``text``."""

    def comment(self, key: str, text: str) -> None:
        """Add a comment."""

    def set_priority(self, key: str, priority: str) -> None:
        """Set the issue's priority by name."""

    def transitions(self, key: str) -> dict[str, str]:
        """The issue's available transitions: name -> id."""

    def transition(self, key: str, transition_id: str) -> None:
        """Move the issue through a transition."""

    def linked(self, key: str) -> set[str]:
        """Keys of the issues linked to an issue."""

    def link(self, link_type: str, inward: str, outward: str) -> None:
        """Link two issues."""

    def attachment_names(self, key: str) -> set[str]:
        """The file names of the issue's attachments."""

    def attach(self, key: str, filename: str, data: bytes) -> None:
        """Upload a file to the issue."""

    def assign(self, key: str, user: str) -> None:
        """Make a JIRA user the issue's assignee."""

    def edit(self, key: str, fields: dict[str, Any]) -> None:
        """Set fields of the issue (summary, labels)."""

    def labels(self, key: str) -> list[str]:
        """The issue's labels."""


class LibraryJira:
    """JiraClient over the ``jira`` library, connecting on first use (from any thread)."""

    def __init__(self, connect: Callable[[], JIRA]) -> None:
        self._connect = connect
        self._client: JIRA | None = None
        self._lock = threading.Lock()

    def _jira(self) -> JIRA:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def find(self, project: str, label: str) -> str | None:
        jql = f"project = {jql_string(project)} AND labels = {jql_string(label)}"
        found = self._jira().search_issues(jql, maxResults=1, fields="key")
        return str(found[0].key) if found else None

    def _user(self, user: str) -> dict[str, str]:
        cloud = getattr(self._jira(), "deploymentType", None) == "Cloud"
        return {"accountId" if cloud else "name": user}

    def create(self, fields: dict[str, Any], assignee: str | None) -> str:
        if assignee:
            fields = {**fields, "assignee": self._user(assignee)}
        return str(self._jira().create_issue(fields=fields).key)

    def has_comment(self, key: str, text: str) -> bool:
        return any(text in str(c.body) for c in self._jira().comments(key))

    def comment(self, key: str, text: str) -> None:
        self._jira().add_comment(key, text)

    def set_priority(self, key: str, priority: str) -> None:
        self._jira().issue(key, fields="priority").update(fields={"priority": {"name": priority}})

    def transitions(self, key: str) -> dict[str, str]:
        return {str(t["name"]): str(t["id"]) for t in self._jira().transitions(key)}

    def transition(self, key: str, transition_id: str) -> None:
        self._jira().transition_issue(key, transition_id)

    def linked(self, key: str) -> set[str]:
        links = self._jira().issue(key, fields="issuelinks").fields.issuelinks or []
        return {
            str(getattr(getattr(link, side, None), "key", None))
            for link in links
            for side in ("inwardIssue", "outwardIssue")
        }

    def link(self, link_type: str, inward: str, outward: str) -> None:
        self._jira().create_issue_link(link_type, inward, outward)

    def attachment_names(self, key: str) -> set[str]:
        found = self._jira().issue(key, fields="attachment").fields.attachment or []
        return {str(a.filename) for a in found}

    def attach(self, key: str, filename: str, data: bytes) -> None:
        # POST issue/{key}/attachments, multipart, with X-Atlassian-Token: no-check
        self._jira().add_attachment(key, io.BytesIO(data), filename)

    def assign(self, key: str, user: str) -> None:
        self._jira().issue(key, fields="assignee").update(fields={"assignee": self._user(user)})

    def edit(self, key: str, fields: dict[str, Any]) -> None:
        self._jira().issue(key, fields="summary").update(fields=fields)

    def labels(self, key: str) -> list[str]:
        return [str(x) for x in self._jira().issue(key, fields="labels").fields.labels or []]


class JiraNotifier:
    """Carries out JIRA instructions (see ``receiver.domain.instructions``): finds or
    creates the incident's issue, then changes it as the event said."""

    def __init__(
        self,
        client: JiraClient,
        metrics: Metrics,
        threads: int = 4,
        files: AttachmentSource | None = None,
    ) -> None:
        # The library is synchronous: its calls get threads of their own, as many as the
        # lane delivers at once, so they never queue behind other work for the loop's pool.
        self._threads = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="jira")
        self.client = client
        self.metrics = metrics
        self.files = files

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
        order = item.payload
        effects: list[Effect] = []
        key = item.prior.jira_key
        if key is None:
            key = await self._call(self._find_or_create, order)
            effects.append(Effect("jira_key", item.incident_id, (key,)))
            log.info("jira_issue_ready", incident_id=item.incident_id, jira_key=key)
        if "postmortem" in order:
            postmortem = order["postmortem"]
            await self._call(self._postmortem, postmortem, key, item.id, item.maybe_delivered)
            return effects
        if order.get("fields"):
            await self._call(self._edit, key, order["fields"])
        if order.get("assign"):
            await self._call(self.client.assign, key, order["assign"])
        if order.get("priority"):
            await self._call(self.client.set_priority, key, order["priority"])
        if order.get("transition_before"):
            await self._call(self._transition, key, order["transition_before"])
        if order.get("comment"):
            await self._call(self._comment, key, order["comment"], item.id, item.maybe_delivered)
        if order.get("transition_after"):
            await self._call(self._transition, key, order["transition_after"])
        if order.get("attachments"):  # last: a file JIRA refuses holds up nothing else
            await self._attach(item.incident_id, key, order["attachments"])
        return effects

    async def _attach(self, incident_id: int, key: str, wanted: list[dict[str, Any]]) -> None:
        """Upload a report's attachments the issue does not have yet (by name: a
        redelivery uploads only what the last try did not)."""
        if self.files is None:
            log.warning("jira_attachments_unavailable", incident_id=incident_id, jira_key=key)
            return
        stored = await self.files(incident_id)
        there = await self._call(self.client.attachment_names, key)
        for order in wanted:
            n, name = int(order["n"]), str(order["filename"])
            if name in there:
                continue
            if n >= len(stored):
                log.warning("jira_attachment_missing", incident_id=incident_id, n=n)
                continue
            try:
                await self._call(self.client.attach, key, name, stored[n].data)
            except DeliveryError as exc:
                if exc.retryable:
                    raise  # the delivery is tried again; what went up is not sent twice
                # refused for good (attachments off, over JIRA's size limit): said, not fatal
                log.warning("jira_attachment_refused", jira_key=key, filename=name, error=str(exc))
                continue
            log.info("jira_attachment_added", jira_key=key, filename=name)

    # The methods below run in a worker thread.

    def _find_or_create(self, order: dict[str, Any]) -> str:
        """Find the incident's issue by its label, or create it as the instruction says."""
        search = order["search"]
        found = self.client.find(search["project"], search["label"])
        if found:
            return found
        create = order.get("create")
        if create is None:  # a join, or decided when the issue was known: it is gone since
            raise DeliveryError(
                f"the incident's issue (label {search['label']}) is not in JIRA, and this "
                "delivery was not told how to create it (see the dead letters)",
                retryable=False,
                reason=Reason.CLIENT_ERROR,
            )
        return self.client.create(create["fields"], create.get("assignee"))

    def _edit(self, key: str, fields: dict[str, Any]) -> None:
        """Set the summary, and relabel: the labels the receiver wrote with ``relabel``'s
        prefixes give way to the new ones; labels people added stay."""
        fields = dict(fields)
        relabel = fields.pop("relabel", None)
        if relabel is not None:
            prefixes = tuple(relabel["replace"])
            kept = [x for x in self.client.labels(key) if not x.startswith(prefixes)]
            fields["labels"] = list(dict.fromkeys([*kept, *relabel["labels"]]))
        self.client.edit(key, fields)

    def _comment(self, key: str, text: str, delivery: int, check: bool) -> None:
        """Add a comment tagged with its delivery; on a redelivery, only if it is not there."""
        tag = jira_render.delivery_tag(delivery)
        if check and self.client.has_comment(key, tag):
            log.info("jira_comment_already_there", jira_key=key, outbox_id=delivery)
            return
        self.client.comment(key, f"{text}\n\n{tag}")

    def _postmortem(self, order: dict[str, Any], key: str, delivery: int, check: bool) -> None:
        """Find or create the postmortem issue, then link it to the incident's; one found
        (written at an earlier resolve) gets the new cycle as a comment."""
        search = order["search"]
        postmortem = self.client.find(search["project"], search["label"])
        if postmortem is not None and order.get("again"):
            self._comment(postmortem, order["again"], delivery, check)
        if postmortem is None:
            fields = dict(order["fields"])
            fields["description"] = str(fields.get("description", "")).replace(
                ISSUE_SLOT, jira_render.wiki(key)
            )
            postmortem = self.client.create(fields, None)
            log.info("jira_postmortem_created", jira_key=postmortem, incident_issue=key)
        if key not in self.client.linked(postmortem):
            self.client.link(POSTMORTEM_LINK, postmortem, key)

    def _transition(self, key: str, name: str) -> None:
        available = self.client.transitions(key)
        match = next(
            (tid for tname, tid in available.items() if tname.lower() == name.lower()), None
        )
        if match is None:
            self.metrics.jira_missing_transition.labels(name).inc()
            log.warning(
                "jira_transition_missing", jira_key=key, transition=name, available=list(available)
            )
            return
        self.client.transition(key, match)


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
