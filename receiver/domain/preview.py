"""What a delivery would say, as text: what log-only mode logs, so that someone trying the
receiver without accounts sees what people will be sent."""

from __future__ import annotations

from typing import Any

from receiver.config.models import RulesConfig
from receiver.domain import jira_render, slack_page, slack_render


def _block_texts(blocks: list[dict[str, Any]]) -> list[str]:
    texts = []
    for block in blocks:
        parts = [block.get("text"), *(block.get("elements") or [])]
        texts += [
            p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
    return texts


def preview(
    channel: str, kind: str, incident_id: int | None, payload: dict[str, Any], cfg: RulesConfig
) -> str:
    """The text one delivery shows its readers (a JIRA issue is named by its summary)."""
    names = {pid: p.name for pid, p in cfg.people.items()}
    snapshot: dict[str, Any] = payload.get("incident") or {}
    if channel in ("announce", "digest"):
        return str(payload.get("text", ""))
    if channel == "pager":
        blocks = slack_page.page_blocks(incident_id or 0, snapshot, names, payload)
        text = slack_page.page_text(snapshot, names, payload.get("brief") or {})
        who = f"to {payload.get('name') or payload.get('person')}"
        return "\n".join([f"{text} ({who})", *_block_texts(blocks)[1:]])
    if channel == "jira":
        if kind == "incident.opened":
            head = f"[{snapshot.get('severity')}][{snapshot.get('category')}] "
            return f"create issue: {jira_render.one_line(head + str(snapshot.get('summary')))}"
        if kind == "incident.postmortem":
            return "create the postmortem issue and link it to the incident's issue"
        return jira_render.comment(kind, payload, cfg)
    return slack_render.event_text(kind, snapshot, names)
