"""An incident's timeline in words: for the plain-text API view and for postmortems."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from receiver.config.models import RulesConfig
from receiver.domain.model import Event, Incident


def duration_text(span: timedelta) -> str:
    """A span in words read at a glance: "2 h 5 min", "under a minute"."""
    minutes = int(span.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [
        f"{days} d" if days else "",
        f"{hours} h" if hours else "",
        f"{mins} min" if mins else "",
    ]
    return " ".join(p for p in parts if p)


def _names(cfg: RulesConfig, people: object) -> str:
    if not isinstance(people, list) or not people:
        return "nobody"
    return ", ".join(cfg.people[p].name if p in cfg.people else str(p) for p in people)


def _person(cfg: RulesConfig, person: object) -> str:
    return (
        cfg.people[person].name if isinstance(person, str) and person in cfg.people else str(person)
    )


def _zone(cfg: RulesConfig, data: dict[str, object]) -> ZoneInfo:
    """The zone an event's times are told in: its own, else the first rotation's."""
    if data.get("zone"):
        return ZoneInfo(str(data["zone"]))
    return next(iter(cfg.rotations.values())).zone if cfg.rotations else ZoneInfo("UTC")


CHANNEL_NAMES = {"slack": "Slack", "telegram": "Telegram", "email": "e-mail"}


def describe(event: Event, cfg: RulesConfig) -> str:
    """One event as a sentence."""
    d = event.data
    match event.event:
        case "opened" if d.get("source") == "report":
            via = {"web": "the feedback form", "email": "e-mail"}.get(
                str(d.get("via")), d.get("via")
            )
            rule = f", triage rule {d['rule']}" if d.get("rule") else ""
            return (
                f"Reported by a beta tester via {via} as {d.get('reference', '?')}: "
                f"{d.get('severity', '?')}{rule}"
            )
        case "opened":
            return f"Opened as {d.get('severity', '?')} with {d.get('alerts', '?')} alert(s)"
        case "linked":
            return f"Linked into incident #{d.get('to', '?')} by {_person(cfg, d.get('by'))}"
        case "report_linked":
            return f"Report #{d.get('report', '?')} linked into this incident"
        case "triage_overdue":
            return (
                f"Not triaged within {d.get('within', '?')}: paged {_names(cfg, d.get('people'))}"
            )
        case "pages_held":
            until = datetime.fromisoformat(str(d.get("until")))
            zone = ZoneInfo(str(d.get("zone") or "UTC"))
            window = str(d.get("window") or "")
            why = (
                f"Alertmanager silence {window.removeprefix('silence:')}"
                if window.startswith("silence:")
                else f"maintenance window {window}"
                if window
                else "business hours"
            )
            return f"Pages held for {why} until {stamp(until, zone, '%Y-%m-%d %H:%M')}"
        case "maintenance":
            until = datetime.fromisoformat(str(d.get("until")))
            reason = f" ({d['reason']})" if d.get("reason") else ""
            what = (
                "nobody paged or told; paged when it ends if still open"
                if d.get("held")
                else "paged anyway: this severity ignores maintenance"
            )
            return (
                f"During maintenance window {d.get('window', '?')}{reason}, until "
                f"{stamp(until, _zone(cfg, d), '%Y-%m-%d %H:%M')}: {what}"
            )
        case "maintenance_over" if str(d.get("window", "")).startswith("silence:"):
            silence = str(d["window"]).removeprefix("silence:")
            return f"Alertmanager silence {silence} over: still firing, paging now"
        case "maintenance_over":
            early = f", ended early by {_person(cfg, d['ended_by'])}" if d.get("ended_by") else ""
            return f"Maintenance window {d.get('window', '?')} over{early}: still open, paging now"
        case "silenced":
            until = datetime.fromisoformat(str(d.get("until")))
            comment = f": {d['comment']}" if d.get("comment") else ""
            return (
                f"Silenced in Alertmanager by {d.get('by') or '?'}{comment} (silence "
                f"{d.get('silence', '?')}, until {stamp(until, _zone(cfg, d), '%Y-%m-%d %H:%M')})"
                ": paging paused"
            )
        case "alerts_gone":
            return (
                f"{d.get('count', '?')} alert(s) resolved: Alertmanager no longer has them "
                "(it sends no resolve for a silenced alert)"
            )
        case "reported_again":
            return "Reported again by the same tester"
        case "reporter_comment":
            files = int(d.get("attachments", 0) or 0)
            extra = f", with {files} attachment(s)" if files else ""
            return f"The reporter wrote again by {d.get('via', '?')}{extra} (in JIRA)"
        case "triaged":
            parts = [
                f"{name} {d[name][0]} → {d[name][1]}"
                for name in ("severity", "category")
                if name in d
            ]
            if d.get("assignee"):
                parts.append(f"assigned to {_person(cfg, d.get('assignee'))}")
            return f"Triaged by {_person(cfg, d.get('by'))}: {', '.join(parts)}"
        case "alerts_joined":
            return f"{d.get('count', '?')} more alert(s) joined"
        case "alerts_resolved":
            return f"{d.get('count', '?')} alert(s) resolved"
        case "page_fallback":
            to, was = (CHANNEL_NAMES.get(str(d.get(k)), str(d.get(k))) for k in ("channel", "from"))
            return (
                f"Paged {_person(cfg, d.get('person'))} by {to} instead of {was} "
                f"(step {d.get('step', 0)}): {d.get('why', '?')}"
            )
        case "paged":
            return f"Paged {_names(cfg, d.get('people'))} (step {d.get('step', 0)})"
        case "escalated" if d.get("by"):
            who = _names(cfg, d.get("people"))
            return f"{_person(cfg, d['by'])} escalated it to {who} (step {d.get('step', '?')})"
        case "escalated":
            return f"Escalated to {_names(cfg, d.get('people'))} (step {d.get('step', '?')})"
        case "ack_sla_breached":
            return f"Not acknowledged within the {d.get('severity', '?')} ack timeout"
        case "acknowledged" if d.get("with") == "mitigated":
            return f"Acknowledged by {_person(cfg, d.get('by'))}, with the mitigation"
        case "acknowledged":
            return f"Acknowledged by {_person(cfg, d.get('by'))}"
        case "mitigated":
            return f"Mitigated by {_person(cfg, d.get('by'))}"
        case "reported":
            return f"Postmortem written (reported by {_person(cfg, d.get('by'))})"
        case "phase_overdue":
            owner = d.get("owner") or []
            others = [p for p in d.get("people") or [] if p not in owner]
            text = (
                f"{str(d.get('phase', '?')).capitalize()} overdue (target {d.get('target', '?')})"
            )
            if owner:
                text += f": reminded {_names(cfg, owner)}"
            if others:
                text += f"; escalated to {_names(cfg, others)} (step {d.get('step', '?')})"
            return text
        case "severity_raised":
            return f"Severity raised from {d.get('from', '?')} to {d.get('to', '?')}"
        case "reopened":
            return f"Reopened: {d.get('alerts', '?')} alert(s) fired again"
        case "note":
            return f"{_person(cfg, d.get('by'))} added a note: {d.get('text', '')}"
        case "reassigned":
            was = f" (from {_person(cfg, d['from'])})" if d.get("from") else ""
            paged = f"; paged {_person(cfg, d.get('to'))}" if d.get("people") else ""
            to = _person(cfg, d.get("to"))
            return f"{_person(cfg, d.get('by'))} reassigned it to {to}{was}{paged}"
        case "unacknowledged":
            whose = f" of {_person(cfg, d['acknowledged_by'])}" if d.get("acknowledged_by") else ""
            return (
                f"{_person(cfg, d.get('by'))} took back the acknowledgement{whose}: triggered "
                "again, escalation restarts from step 0"
            )
        case "delivery_retried":
            which = f"#{d.get('delivery', '?')} ({d.get('channel', '?')})"
            return f"{_person(cfg, d.get('by'))} retried dead delivery {which}"
        case "deliveries_retried":
            shown = ", ".join(f"#{i}" for i in d.get("deliveries") or [])
            listed = f" ({shown})" if shown else ""
            count = d.get("count", "?")
            return f"{_person(cfg, d.get('by'))} retried {count} dead deliveries{listed}"
        case "jira_issue":
            return f"JIRA issue {d.get('key', '?')} created"
        case "resolved":
            if d.get("by"):
                return f"Resolved by {_person(cfg, d.get('by'))}"
            return f"Resolved: {d.get('reason', 'all alerts resolved')}"
    extra = ", ".join(f"{k}={v}" for k, v in d.items())
    return f"{event.event}" + (f" ({extra})" if extra else "")


def zone_of(incident: Incident, cfg: RulesConfig) -> ZoneInfo:
    """The owning team's rotation time zone (UTC when unknown)."""
    team = cfg.teams.get(incident.team)
    rotation = cfg.rotations.get(team.rotation) if team else None
    return ZoneInfo(rotation.timezone) if rotation else ZoneInfo("UTC")


def stamp(moment: datetime, zone: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A moment in a zone with the zone's abbreviation: ``2026-11-26 10:00:00 KST``."""
    local = moment.astimezone(zone)
    return f"{local.strftime(fmt)} {local.tzname() or local.strftime('%z')}"


def measures(incident: Incident, cfg: RulesConfig) -> list[tuple[str, str, str, str]]:
    """(measure, actual, target, met) for alert-to-ack and time-to-resolve."""
    policy = cfg.severities.get(incident.severity)
    rows: list[tuple[str, str, str, str]] = []

    def row(name: str, end: datetime | None, target: timedelta | None, what: str) -> None:
        actual = None if end is None else max(timedelta(0), end - incident.first_starts_at)
        goal = f"{duration_text(target)} ({what})" if target is not None else "none"
        if actual is None and incident.resolved_at is not None:  # over, and never done
            lasted = incident.resolved_at - incident.first_starts_at
            missed = target is not None and lasted > target  # else it ended within the target
            rows.append((name, "never (resolved without it)", goal, "no" if missed else "n/a"))
            return
        shown = duration_text(actual) if actual is not None else "not yet"
        met = "n/a" if actual is None or target is None else ("yes" if actual <= target else "no")
        rows.append((name, shown, goal, met))

    row("Alert to ack", incident.acknowledged_at, policy.ack_timeout if policy else None,
        "ack timeout")  # fmt: skip
    row("Time to resolve", incident.resolved_at, policy.respond_within if policy else None,
        "respond within")  # fmt: skip
    return rows


def _entry(event: Event, cfg: RulesConfig, zone: ZoneInfo) -> str:
    """One timeline line; the lines after the first of a note's text indented under it."""
    head = f"  {stamp(event.at, zone)}  "
    return head + describe(event, cfg).replace("\n", "\n" + " " * len(head))


def as_text(
    incident: Incident,
    events: Sequence[Event],
    cfg: RulesConfig,
    phase_lines: Sequence[str] = (),
) -> str:
    """The incident and its timeline as plain text, for pasting into a report, with its
    phases against their targets (``phase_lines``)."""
    zone = zone_of(incident, cfg)
    lines = [
        f"Incident #{incident.id}: [{incident.severity}][{incident.category}] {incident.summary}",
        f"Status: {incident.status.value}; team: {incident.team}"
        + (f"; JIRA: {incident.jira_key}" if incident.jira_key else ""),
        f"First alert: {stamp(incident.first_starts_at, zone)}",
        "",
        "Timeline:",
        *(_entry(e, cfg, zone) for e in events),
        "",
        *(f"{name}: {actual} (target {goal}; met: {met})" for name, actual, goal, met in
          measures(incident, cfg)),
        *(["", *phase_lines] if phase_lines else []),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"
