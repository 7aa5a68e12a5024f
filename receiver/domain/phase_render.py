"""An incident's phases in words: the table of each phase against its target (plain text
and JIRA wiki), and what JIRA and Slack are told when a phase ends or passes its deadline.
Texts from alerts and people are escaped by the renderer of each medium."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from receiver.config.models import RulesConfig
from receiver.domain import phases, slack_render
from receiver.domain.delivery import Kind
from receiver.domain.jira_render import NOTE_MAX, cut, wiki
from receiver.domain.model import Event, Incident
from receiver.domain.timeline import duration_text, stamp, zone_of

TITLES = {"ack": "Acknowledge", "mitigate": "Mitigate", "resolve": "Resolve", "report": "Report"}
VERDICTS = {
    "met": "met",
    "missed": "missed",
    "skipped": "skipped (within its target)",
    "ahead": "due",
    "overdue": "overdue",
    "waiting": "after the resolve",
    "-": "no target",
}
PHASE_KINDS = frozenset({Kind.MITIGATED, Kind.REPORTED, Kind.PHASE_OVERDUE})
MINUTE = "%Y-%m-%d %H:%M"


def rows(
    incident: Incident, cfg: RulesConfig, now: datetime
) -> list[tuple[str, str, str, str, str]]:
    """(phase, target, deadline, finished, verdict) of each phase, as text in the team's
    time zone."""
    zone = zone_of(incident, cfg)
    out = []
    for row in phases.table(incident, cfg, now):
        target = duration_text(row.target) if row.target is not None else "none"
        deadline = stamp(row.deadline, zone, MINUTE) if row.deadline is not None else "-"
        if row.ended is not None and row.took is not None:
            done = f"{stamp(row.ended, zone, MINUTE)} (took {duration_text(row.took)})"
        elif row.verdict in ("missed", "skipped"):
            done = "never (resolved without it)"
        else:
            done = "not yet"
        out.append((TITLES[row.phase], target, deadline, done, VERDICTS[row.verdict]))
    return out


def text_table(incident: Incident, cfg: RulesConfig, now: datetime) -> list[str]:
    """The phases as plain-text lines (none for a severity without phase targets)."""
    if phases.targets(cfg, incident.severity) is None:
        return []
    return [
        "Phases (each from the end of the one before):",
        *(f"  {p}: target {t}, due {d}; done {f}: {v}" for p, t, d, f, v in
          rows(incident, cfg, now)),
    ]  # fmt: skip


def wiki_table(incident: Incident, cfg: RulesConfig, now: datetime) -> list[str]:
    """The phases as a JIRA wiki table (none for a severity without phase targets)."""
    if phases.targets(cfg, incident.severity) is None:
        return []
    return [
        "h3. Phases against their targets",
        "||Phase||Target||Due||Done||Verdict||",
        *(f"|{'|'.join(wiki(cell) for cell in row)}|" for row in rows(incident, cfg, now)),
    ]


def _name(cfg: RulesConfig, who: object) -> str:
    return cfg.people[who].name if isinstance(who, str) and who in cfg.people else str(who)


def _next(incident: Incident, cfg: RulesConfig) -> str:
    """What the phase now begun must be done by, as a sentence's tail."""
    found = phases.next_deadline(incident, cfg)
    targets = phases.targets(cfg, incident.severity)
    if found is None or targets is None:
        return ""
    phase, at = found
    target = targets.of(phase)
    span = f", target {duration_text(target)}" if target is not None else ""
    return f" Next: {TITLES[phase].lower()} by {stamp(at, zone_of(incident, cfg), MINUTE)}{span}."


def sentence(kind: str, incident: Incident, events: Sequence[Event], cfg: RulesConfig) -> str:
    """A phase event in words, unescaped: the JIRA comment's and Slack reply's text."""
    zone = zone_of(incident, cfg)
    last = next((e for e in reversed(events) if e.event in _EVENTS), None)
    at = stamp(last.at, zone, MINUTE) if last else ""
    if kind == Kind.MITIGATED:
        also = " (and acknowledged)" if any(e.event == "acknowledged" for e in events) else ""
        return (
            f"Mitigated{also} by {_name(cfg, incident.mitigated_by)} at {at}.{_next(incident, cfg)}"
        )
    if kind == Kind.REPORTED:
        return f"Postmortem written: reported by {_name(cfg, incident.reported_by)} at {at}."
    data = last.data if last else {}
    phase = str(data.get("phase", "?"))
    due = data.get("deadline")
    when = stamp(datetime.fromisoformat(str(due)), zone, MINUTE) if due else "?"
    text = f"{TITLES.get(phase, phase)} overdue: target {data.get('target', '?')}, due {when}."
    owner = [_name(cfg, p) for p in data.get("owner") or []]
    others = [_name(cfg, p) for p in data.get("people") or [] if p not in (data.get("owner") or [])]
    if owner:
        text += f" Reminded {', '.join(owner)}."
    if others:
        text += f" Escalated (step {data.get('step', '?')}) to {', '.join(others)}."
    if not owner and not others:
        policy = cfg.severities.get(incident.severity)
        never = policy is not None and policy.page == "never"
        text += f" Nobody paged ({incident.severity} pages nobody)." if never else (
            " Nobody paged (pages wait for business hours).")  # fmt: skip
    return text


_EVENTS = frozenset({"mitigated", "reported", "phase_overdue"})


def jira_comment(kind: str, incident: Incident, events: Sequence[Event], cfg: RulesConfig) -> str:
    """The comment a phase event adds to the incident's issue."""
    return wiki(cut(sentence(kind, incident, events, cfg), NOTE_MAX * 4))


def slack_text(kind: str, incident: Incident, events: Sequence[Event], cfg: RulesConfig) -> str:
    """The alerts channel's line for a phase event."""
    head = f"[{incident.severity}][{incident.category}] {incident.summary}"
    return slack_render.fit(slack_render.shown(f"{sentence(kind, incident, events, cfg)} — {head}"))
