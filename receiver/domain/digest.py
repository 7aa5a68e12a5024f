"""The weekly digest: when it is due, what a week of incidents adds up to, and its text.

Pure functions; the incidents, the rules and the due time are arguments. The figures are
those of the week as it stood at its due time, so a digest sent late (the service was
down at 09:00) reads the same as one sent on time.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from receiver.config.models import PHASES, RulesConfig
from receiver.domain import phases
from receiver.domain.model import Incident, Status
from receiver.domain.slack_render import escape, shown

DIGEST_WEEKDAY = 0  # Monday
DIGEST_TIME = time(9, 0)
LIST_LIMIT = 10  # entries shown per list; the rest are counted
SUMMARY_LIMIT = 60  # with LIST_LIMIT, keeps a digest within one Slack section (3000)
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def digest_zone(cfg: RulesConfig) -> ZoneInfo:
    """The digest's time zone: that of the first rotation in the rules file."""
    return next(iter(cfg.rotations.values())).zone


def _due_on(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, DIGEST_TIME, tzinfo=zone)


def previous_due(at: datetime, zone: ZoneInfo) -> datetime:
    """The last Monday 09:00 local time at or before ``at``."""
    local = at.astimezone(zone)
    monday = local.date() - timedelta(days=(local.weekday() - DIGEST_WEEKDAY) % 7)
    due = _due_on(monday, zone)
    return due if due <= at else _due_on(monday - timedelta(days=7), zone)


def next_due(after: datetime, zone: ZoneInfo) -> datetime:
    """The first Monday 09:00 local time strictly after ``after``.

    Weeks are counted in wall-clock days, so the digest stays at 09:00 across a
    daylight-saving change (that week is an hour shorter or longer).
    """
    return _due_on(previous_due(after, zone).date() + timedelta(days=7), zone)


def week_start(due: datetime, zone: ZoneInfo) -> datetime:
    """The Monday 09:00 local time one week before a due time."""
    return _due_on(due.astimezone(zone).date() - timedelta(days=7), zone)


@dataclass(frozen=True)
class AckFigures:
    """Alert-to-ack of one severity's incidents acknowledged in the week."""

    count: int
    median: timedelta
    worst: timedelta


@dataclass(frozen=True)
class OpenItem:
    """An incident still open at the end of the week."""

    id: int | None
    severity: str
    category: str
    summary: str
    acknowledged: bool
    age: timedelta


@dataclass(frozen=True)
class Breach:
    """An ack deadline that passed in the week; ``late_by`` None: not acknowledged by the
    end of the week."""

    id: int | None
    severity: str
    category: str
    summary: str
    ack_timeout: timedelta
    late_by: timedelta | None


@dataclass(frozen=True)
class PhaseFigures:
    """One phase over the week: how many incidents finished it in the week and their median
    time, and the deadlines of the phase that passed in the week unmet, by severity."""

    finished: int = 0
    median: timedelta | None = None
    breaches: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Digest:
    """What one week of incidents adds up to; the week is ``since`` to ``until``."""

    since: datetime
    until: datetime
    opened_by_severity: dict[str, int]
    opened_by_category: dict[str, int]
    resolved_by_severity: dict[str, int]
    resolved_by_category: dict[str, int]
    still_open: tuple[OpenItem, ...]
    ack: dict[str, AckFigures]
    breaches: tuple[Breach, ...]
    phases: dict[str, PhaseFigures] = field(default_factory=dict)

    @property
    def quiet(self) -> bool:
        """Nothing opened, resolved, acknowledged, breached or left open."""
        return not (
            self.opened_by_severity
            or self.resolved_by_severity
            or self.still_open
            or self.ack
            or self.breaches
        )


def _ranked(names: Iterable[str], order: Iterable[str]) -> list[str]:
    """Names in the rules file's order; those it does not list come last, sorted."""
    present = set(names)
    known = [name for name in order if name in present]
    return [*known, *sorted(present - set(known))]


def _ordered(counts: Counter[str], order: Iterable[str]) -> dict[str, int]:
    return {name: counts[name] for name in _ranked(counts, order)}


def as_of(incident: Incident, due: datetime) -> Incident:
    """The incident as it stood at ``due``: what happened after it not yet done."""

    def then(moment: datetime | None) -> datetime | None:
        return moment if moment is not None and moment < due else None

    acked, resolved = then(incident.acknowledged_at), then(incident.resolved_at)
    status = Status.RESOLVED if resolved else Status.ACKNOWLEDGED if acked else Status.TRIGGERED
    return replace(
        incident, status=status, acknowledged_at=acked, resolved_at=resolved,
        mitigated_at=then(incident.mitigated_at), reported_at=then(incident.reported_at),
    )  # fmt: skip


def phase_figures(
    incidents: Iterable[Incident], cfg: RulesConfig, since: datetime, due: datetime
) -> dict[str, PhaseFigures]:
    """Each phase's figures over the week from ``since`` to ``due`` (phases with none
    left out; none at all when no severity has phase targets)."""
    if all(policy.phases is None for policy in cfg.severities.values()):
        return {}
    took: dict[str, list[float]] = {p: [] for p in PHASES}
    late: dict[str, Counter[str]] = {p: Counter() for p in PHASES}
    for incident in incidents:
        if incident.opened_at >= due:
            continue
        for row in phases.table(as_of(incident, due), cfg, due):
            if row.ended is not None and row.took is not None and since <= row.ended < due:
                took[row.phase].append(max(0.0, row.took.total_seconds()))
            missed = row.verdict in ("missed", "overdue")
            if missed and row.deadline is not None and since <= row.deadline < due:
                late[row.phase][incident.severity] += 1
    severities = list(cfg.severities)
    return {
        phase: PhaseFigures(
            len(took[phase]),
            timedelta(seconds=statistics.median(took[phase])) if took[phase] else None,
            _ordered(late[phase], severities),
        )
        for phase in PHASES
        if took[phase] or late[phase]
    }


def compute_digest(incidents: Iterable[Incident], cfg: RulesConfig, due: datetime) -> Digest:
    """The figures of the week ending at ``due``, as they stood at ``due``."""
    incidents = list(incidents)
    zone = digest_zone(cfg)
    due = due.astimezone(zone)
    since = week_start(due, zone)

    def within(moment: datetime | None) -> bool:
        return moment is not None and since <= moment < due

    def by_due(moment: datetime | None) -> datetime | None:
        return moment if moment is not None and moment < due else None

    opened: Counter[str] = Counter()
    opened_cat: Counter[str] = Counter()
    resolved: Counter[str] = Counter()
    resolved_cat: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {}
    still_open: list[OpenItem] = []
    breaches: list[tuple[datetime, Breach]] = []
    for i in incidents:
        if within(i.opened_at):
            opened[i.severity] += 1
            opened_cat[i.category] += 1
        if within(i.resolved_at):
            resolved[i.severity] += 1
            resolved_cat[i.category] += 1
        acked, resolved_at = by_due(i.acknowledged_at), by_due(i.resolved_at)
        if acked is not None and acked >= since:
            latency = (acked - i.first_starts_at).total_seconds()
            latencies.setdefault(i.severity, []).append(max(0.0, latency))
        if i.opened_at < due and resolved_at is None:
            age = due - i.opened_at
            still_open.append(
                OpenItem(i.id, i.severity, i.category, i.summary, acked is not None, age)
            )
        policy = cfg.severities.get(i.severity)
        if policy is None:
            continue
        deadline = i.triggered_at + policy.ack_timeout
        if not within(deadline) or (acked or resolved_at or due) <= deadline:
            continue  # not due this week, or acknowledged or resolved in time
        late_by = acked - deadline if acked is not None else None
        breach = Breach(i.id, i.severity, i.category, i.summary, policy.ack_timeout, late_by)
        breaches.append((deadline, breach))
    severities = list(cfg.severities)
    ack = {
        severity: AckFigures(
            len(latencies[severity]),
            timedelta(seconds=statistics.median(latencies[severity])),
            timedelta(seconds=max(latencies[severity])),
        )
        for severity in _ranked(latencies, severities)
    }
    return Digest(
        since=since,
        until=due,
        opened_by_severity=_ordered(opened, severities),
        opened_by_category=_ordered(opened_cat, cfg.categories),
        resolved_by_severity=_ordered(resolved, severities),
        resolved_by_category=_ordered(resolved_cat, cfg.categories),
        still_open=tuple(sorted(still_open, key=lambda o: (-o.age, o.id or 0))),
        ack=ack,
        breaches=tuple(b for _, b in sorted(breaches, key=lambda d: (d[0], d[1].id or 0))),
        phases=phase_figures(incidents, cfg, since, due),
    )


def span_text(span: timedelta) -> str:
    """A span in its largest unit and the next one: "3d 21h", "12m 30s", "1d", "0s"."""
    seconds = max(0, int(span.total_seconds()))
    counts: list[tuple[int, str]] = []
    for unit, size in _UNITS:
        count, seconds = divmod(seconds, size)
        counts.append((count, unit))
    first = next((n for n, (count, _) in enumerate(counts) if count), None)
    if first is None:
        return "0s"
    return " ".join(f"{count}{unit}" for count, unit in counts[first : first + 2] if count)


def _label(item: OpenItem | Breach) -> str:
    summary = " ".join(item.summary.split())
    if len(summary) > SUMMARY_LIMIT:
        summary = summary[: SUMMARY_LIMIT - 1] + "…"
    return f"#{item.id} [{shown(item.severity)}][{shown(item.category)}] {escape(summary)}"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{shown(name)} {count}" for name, count in counts.items())


def _tally(title: str, severities: Mapping[str, int], categories: Mapping[str, int]) -> str:
    if not severities:
        return f"*{title}:* none"
    total = sum(severities.values())
    return f"*{title}:* {total} ({_counts(severities)}); by category: {_counts(categories)}"


def _bullets(lines: list[str]) -> list[str]:
    shown = [f"• {line}" for line in lines[:LIST_LIMIT]]
    if len(lines) > LIST_LIMIT:
        shown.append(f"• … and {len(lines) - LIST_LIMIT} more")
    return shown


def _moment(at: datetime, with_year: bool) -> str:
    year = f" {at.year}" if with_year else ""
    return f"{at:%a} {at.day} {at:%b}{year} {at:%H:%M}"


def _phase_text(figures: PhaseFigures) -> str:
    done = (
        f"{span_text(figures.median)} ({figures.finished} done)"
        if figures.median is not None
        else "none done"
    )
    late = sum(figures.breaches.values())
    return (
        f"{done}; {late} missed ({_counts(figures.breaches)})" if late else f"{done}; none missed"
    )


def render_digest(digest: Digest) -> str:
    """The digest as Slack mrkdwn text."""
    zone = digest.until.tzname() or digest.until.strftime("%z")
    header = (
        f"*Weekly incident digest*: {_moment(digest.since, False)} to "
        f"{_moment(digest.until, True)} {zone}"
    )
    if digest.quiet:
        return f"{header}\nA quiet week: no incidents opened, resolved, acknowledged or open."
    lines = [
        header,
        _tally("Opened", digest.opened_by_severity, digest.opened_by_category),
        _tally("Resolved", digest.resolved_by_severity, digest.resolved_by_category),
    ]
    if digest.still_open:
        lines.append(f"*Still open:* {len(digest.still_open)}")
        lines += _bullets(
            [
                f"{_label(o)}: {'acknowledged' if o.acknowledged else 'not acknowledged'}, "
                f"open {span_text(o.age)}"
                for o in digest.still_open
            ]
        )
    else:
        lines.append("*Still open:* none")
    if digest.ack:
        lines.append("*Alert-to-ack* (median / worst):")
        lines += [
            f"• {shown(severity)}: {span_text(f.median)} / {span_text(f.worst)} "
            f"({f.count} incident{'s' if f.count != 1 else ''})"
            for severity, f in digest.ack.items()
        ]
    else:
        lines.append("*Alert-to-ack:* no incidents acknowledged")
    if digest.breaches:
        lines.append(f"*Ack SLA breaches:* {len(digest.breaches)}")
        lines += _bullets(
            [
                f"{_label(b)}: acknowledged {span_text(b.late_by)} after the "
                f"{span_text(b.ack_timeout)} ack timeout"
                if b.late_by is not None
                else f"{_label(b)}: not acknowledged within the {span_text(b.ack_timeout)} "
                "ack timeout"
                for b in digest.breaches
            ]
        )
    else:
        lines.append("*Ack SLA breaches:* none")
    if digest.phases:
        lines.append("*Phases* (median time, deadlines missed):")
        lines += [f"• {phase}: {_phase_text(f)}" for phase, f in digest.phases.items()]
    return "\n".join(lines)
