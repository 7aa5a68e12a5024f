"""Pydantic models of ``routing_rules.yaml``: every key is checked, unknown keys refused."""

from __future__ import annotations

import string
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as public_holidays
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from receiver.config.durations import format_duration, parse_duration
from receiver.config.matchers import Matcher, parse_matcher


@cache
def supported_countries() -> frozenset[str]:
    """The countries whose public holidays are known."""
    return frozenset(public_holidays.list_supported_countries())


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"duration must be a string like 15m, got {value!r}")
    return parse_duration(value)


def _label_name(value: Any) -> str:
    if not isinstance(value, str) or not value or not (value[0].isalpha() or value[0] == "_"):
        raise ValueError(f"invalid label name {value!r}")
    if not all(c.isalnum() or c == "_" for c in value) or not value.isascii():
        raise ValueError(f"invalid label name {value!r}")
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
LabelName = Annotated[str, BeforeValidator(_label_name)]
PageMode = Literal["always", "business_hours", "never"]
NOTIFY_KEYWORDS = ("oncall", "team", "team_lead", "tech_lead", "project_manager")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PHASES = ("ack", "mitigate", "resolve", "report")


class PhaseTargets(_Model):
    """How long each phase of an incident may take, each from the end of the one before
    (ack from the trigger: the ack timeout's clock); a phase left out has no deadline."""

    ack: Duration | None = None
    mitigate: Duration | None = None
    resolve: Duration | None = None
    report: Duration | None = None

    def of(self, phase: str) -> timedelta | None:
        """The target of a phase by name (one of PHASES)."""
        value: timedelta | None = getattr(self, phase)
        return value


class SeverityPolicy(_Model):
    """Response policy of one severity."""

    respond_within: Duration
    ack_timeout: Duration
    jira_priority: str = Field(min_length=1)
    page: PageMode = "always"
    announce: bool = False
    phases: PhaseTargets | None = None
    # Page (and announce) even while a maintenance window covers the alert.
    ignore_maintenance: bool = False

    @model_validator(mode="after")
    def _one_ack_clock(self) -> SeverityPolicy:
        """The ack phase is the ack timeout: one clock, said once or twice alike."""
        phases = self.phases
        if phases is not None and phases.ack is not None and phases.ack != self.ack_timeout:
            raise ValueError(
                f"phases.ack ({format_duration(phases.ack)}) differs from ack_timeout "
                f"({format_duration(self.ack_timeout)}): "
                "the ack phase is the ack timeout; leave phases.ack out or make them equal"
            )
        if phases is not None and phases.ack is None:
            object.__setattr__(self, "phases", phases.model_copy(update={"ack": self.ack_timeout}))
        return self


class CategoryConfig(_Model):
    """A category and its owning team; ``announce: false`` keeps its incidents from beta
    testers whatever their severity (e.g. security incidents, which call for care)."""

    team: str
    announce: bool = True


class TeamConfig(_Model):
    """An owning team: its rotation, lead, Slack channel and JIRA project."""

    rotation: str
    lead: str
    channel: str = Field(min_length=1)
    jira_project: str | None = None
    components: list[str] = Field(default_factory=list)


class RolesConfig(_Model):
    """People in escalation roles above the teams."""

    tech_lead: str
    project_manager: str


PAGE_CHANNELS = ("slack", "telegram", "email")
PageChannel = Literal["slack", "telegram", "email"]
DEFAULT_NOTIFY: tuple[PageChannel, ...] = ("slack",)


class PersonConfig(_Model):
    """Someone who can be paged, and the order of the channels a page tries (``notify``):
    the next one when a channel fails for good or nobody acknowledges within
    ``page_retry``."""

    name: str = Field(min_length=1)
    slack_id: str | None = None
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    jira_user: str | None = None
    telegram_id: int | None = None  # the person's Telegram user id (also their chat's)
    phone: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{6,14}$")  # E.164
    notify: list[PageChannel] = Field(default_factory=lambda: list(DEFAULT_NOTIFY), min_length=1)

    @field_validator("notify")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice")
        return value

    def address(self, channel: str) -> str | None:
        """Where a page on ``channel`` reaches this person; None if the rules do not say."""
        found = {"slack": self.slack_id, "email": self.email, "telegram": self.telegram_id}
        value = found.get(channel)
        return None if value is None else str(value)


def _local_time(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise ValueError(f"expected a local date-time like 2026-11-23T09:00, got {value!r}")
    if value.tzinfo is not None:
        raise ValueError("give local wall-clock time without an offset; the zone is the rotation's")
    return value


LocalTime = Annotated[datetime, BeforeValidator(_local_time)]


class OverrideConfig(_Model):
    """A person covering a rotation between two local times."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    person: str
    start: LocalTime = Field(alias="from")
    end: LocalTime = Field(alias="to")


def _zone_name(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


def _country(value: str) -> str:
    if value not in supported_countries():
        raise ValueError(
            f"unknown country {value!r} for public holidays (an ISO 3166 code such as KR)"
        )
    return value


ZoneName = Annotated[str, AfterValidator(_zone_name)]
Country = Annotated[str, AfterValidator(_country)]


class RotationConfig(_Model):
    """An on-call rotation."""

    timezone: ZoneName
    members: list[str] = Field(min_length=1)
    shift: Duration
    handoff: LocalTime
    hours: Literal["always", "business"] = "always"
    overrides: list[OverrideConfig] = Field(default_factory=list)
    fallback: str | None = None
    # Days that are not business days besides weekends: a country's public holidays (ISO
    # code, e.g. KR, through the `holidays` library) and dates of the team's own.
    holidays: Country | None = None
    days_off: list[date] = Field(default_factory=list)

    @field_validator("shift")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("shift must be longer than 0s")
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The rotation's time zone."""
        return ZoneInfo(self.timezone)


class EscalationStep(_Model):
    """Who is notified how long after the incident opened."""

    after: Duration
    notify: list[str] = Field(min_length=1)


class ChannelsConfig(_Model):
    """Slack channels for incident traffic, announcements, the digest and the standup."""

    alerts: str
    announce: str
    digest: str
    standup: str | None = None  # where the daily standup goes (with ``standup:``)
    # The beta testers' Telegram channel or group (``@name`` or a chat id such as
    # -1001234567890): announcements go there too.
    announce_telegram: str | None = Field(default=None, pattern=r"^(@[A-Za-z0-9_]{4,}|-?[0-9]+)$")

    @field_validator("announce_telegram", mode="before")
    @classmethod
    def _chat(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WORKWEEK: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")


def _clock_time(value: Any) -> time:
    """``"09:30"``: a wall-clock time, written in quotes (YAML reads 09:30 as a number)."""
    if isinstance(value, time):
        return value
    if not isinstance(value, str):
        raise ValueError(f'write the time in quotes, like at: "09:30" (got {value!r})')
    hours, colon, minutes = value.strip().partition(":")
    if not (colon and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"not a time like 09:30: {value!r}")
    if int(hours) > 23 or int(minutes) > 59:
        raise ValueError(f"not a time of day: {value!r}")
    return time(int(hours), int(minutes))


class StandupConfig(_Model):
    """The daily standup: posted at ``at`` local time on ``days`` (not on the public
    holidays of ``holidays``, a country code), in ``timezone`` (default: the first
    rotation's), to ``channels.standup``."""

    at: Annotated[time, BeforeValidator(_clock_time)]
    days: list[Weekday] = Field(default_factory=lambda: list(WORKWEEK))
    timezone: ZoneName | None = None
    holidays: Country | None = None

    @field_validator("days")
    @classmethod
    def _some_day(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one day (mon ... sun)")
        return value


def _matcher_text(value: Any) -> str:
    """A matcher kept as written (``name="v"``), checked as a matcher is."""
    if not isinstance(value, str):
        raise ValueError(f'expected a matcher like service="order-api", got {value!r}')
    parse_matcher(value)
    return value


class MaintenanceConfig(_Model):
    """A planned maintenance window: alerts matching every matcher open incidents that page
    and announce nobody from ``from`` to ``to`` (local times in ``timezone``, default the
    first rotation's), repeating ``every`` so long (e.g. 1w) when given."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    matchers: list[Annotated[str, BeforeValidator(_matcher_text)]] = Field(min_length=1)
    start: LocalTime = Field(alias="from")
    end: LocalTime = Field(alias="to")
    timezone: ZoneName | None = None
    reason: str = ""
    every: Duration | None = None

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceConfig:
        if self.name.startswith(("api-", "silence:")):
            raise ValueError(
                f"window name {self.name!r}: names starting api- or silence: are the receiver's"
                " own (API windows, Alertmanager silences)"
            )
        if self.end <= self.start:
            raise ValueError("'to' must come after 'from'")
        if self.every is not None and self.every < self.end - self.start:
            raise ValueError("'every' must be at least as long as the window ('to' - 'from')")
        if self.every is not None and self.every < timedelta(hours=1):
            raise ValueError("'every' must be at least 1h")
        return self


def _placeholders_known(text: str | None) -> str | None:
    """A template may use only {affected}, {since}, {until} and {duration}."""
    if text is None:
        return None
    known = {"affected", "since", "until", "duration"}
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise ValueError(f"bad template: {exc}") from None
    unknown = sorted(used - known)
    if unknown:
        raise ValueError(
            f"unknown placeholder {{{unknown[0]}}}; use {{affected}}, {{since}}, {{until}}, "
            "{duration}"
        )
    return text


Template = Annotated[str | None, AfterValidator(_placeholders_known)]


class AnnouncementTemplate(_Model):
    """Wording of beta-tester announcements for a category (or ``default``); what is not
    given falls back to the default's, then to the built-in wording."""

    affected: str | None = Field(default=None, min_length=1)
    opened: Template = None
    raised: Template = None
    resolved: Template = None


Locale = Literal["ko", "en"]


class AnnouncementsConfig(BaseModel):
    """The language of beta-tester announcements (``locale``) and, under a category's name
    (or ``default``), wording that replaces the built-in text of the catalogs."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, AnnouncementTemplate] = Field(init=False)

    locale: Locale = "ko"

    @property
    def wording(self) -> dict[str, AnnouncementTemplate]:
        """Category name (or ``default``) -> its wording."""
        return dict(self.__pydantic_extra__ or {})


def _rate(value: Any) -> tuple[int, timedelta]:
    """``10/h``: at most 10 in any hour (units s, m, h, d, or a duration such as 15m)."""
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"rate must look like 10/h, got {value!r}")
    count, _, per = value.partition("/")
    if not count.strip().isdigit() or int(count) < 1:
        raise ValueError(f"rate must start with a whole number of at least 1, got {value!r}")
    per = per.strip()
    window = parse_duration(per if per[:1].isdigit() else f"1{per}")
    if window <= timedelta(0):
        raise ValueError(f"rate must be per a positive time, got {value!r}")
    return int(count), window


Rate = Annotated[tuple[int, timedelta], BeforeValidator(_rate)]


class ReportMatch(_Model):
    """What a triage rule matches in a report; every condition given must hold."""

    category: str | None = None  # the category the reporter chose
    keywords: list[str] = Field(default_factory=list)  # any, in title or description
    os: str | None = None  # part of the reported OS, any case
    browser: str | None = None  # part of the reported browser, any case


class ReportRule(_Model):
    """A triage rule for beta-tester reports (first match wins)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    match: ReportMatch
    severity: str | None = None
    category: str | None = None


class ReportRateLimit(_Model):
    """How many reports one reporter, and one client address, may send."""

    per_reporter: Rate = (10, timedelta(hours=1))
    per_client: Rate = (30, timedelta(hours=1))


class ReportsConfig(_Model):
    """How beta-tester reports become incidents, and what their reporters read."""

    # Of a report no rule gives one; None: the least severe of ``severities``.
    default_severity: str | None = None
    # Of a report with none chosen and none from a rule; None: ``defaults.category``.
    default_category: str | None = None
    triage_within: Duration = timedelta(hours=4)
    rotation: str | None = None  # who triages; None: the category's team's rotation
    dedup_window: Duration = timedelta(hours=1)
    rate_limit: ReportRateLimit = Field(default_factory=ReportRateLimit)
    locale: Locale = "ko"
    rules: list[ReportRule] = Field(default_factory=list)


class HeartbeatConfig(_Model):
    """A dead man's switch: an alert matching ``matchers`` (or a ping through the API) is
    expected at least every ``every``; silent past ``every + grace``, the receiver opens
    its own incident ``heartbeat:<name>`` under ``severity`` and ``category``."""

    matchers: list[Annotated[str, BeforeValidator(_matcher_text)]] = Field(default_factory=list)
    every: Duration
    grace: Duration = timedelta(minutes=2)
    severity: str
    category: str
    # Whether beta testers are told (when the severity announces): the alert path being down
    # is no outage of the trading service, so not unless asked.
    announce: bool = False

    @model_validator(mode="after")
    def _positive(self) -> HeartbeatConfig:
        if self.every < timedelta(seconds=10):
            raise ValueError("'every' must be at least 10s")
        if self.grace < timedelta(0):
            raise ValueError("'grace' must not be negative")
        return self

    @property
    def silent_after(self) -> timedelta:
        """How long after the last sign of life the heartbeat counts as missed."""
        return self.every + self.grace


HEARTBEAT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# The receiver's own alert of a heartbeat's silence: alertname, and the label naming it.
HEARTBEAT_ALERTNAME = "HeartbeatMissing"
HEARTBEAT_LABEL = "heartbeat"


class PostmortemConfig(_Model):
    """Which severities get a postmortem issue on resolve."""

    severities: list[str] = Field(default_factory=list)
    issue_type: str = "Task"


class JiraConfig(_Model):
    """JIRA defaults and workflow names."""

    project: str = Field(min_length=1)
    issue_type: str = "Incident"
    reopen_window: Duration = timedelta(hours=24)
    resolve_transition: str = "Done"
    reopen_transition: str = "Reopen"
    postmortem: PostmortemConfig | None = None


class DefaultsConfig(_Model):
    """What an alert that matches no rule becomes."""

    severity: str
    category: str
    group_by: list[LabelName] = Field(default_factory=lambda: ["alertname"])


class SeverityFrom(_Model):
    """Severity taken from a label value through a map."""

    label: LabelName
    map: dict[str, str] = Field(min_length=1)
    default: str | None = None


def _matcher(value: Any) -> Matcher:
    if isinstance(value, Matcher):
        return value
    return parse_matcher(value)


MatcherField = Annotated[Matcher, BeforeValidator(_matcher)]


class RuleConfig(_Model):
    """One routing rule; the first rule whose matchers all accept an alert decides it."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    matchers: list[MatcherField] = Field(min_length=1)
    severity: str | None = None
    severity_from: SeverityFrom | None = None
    category: str | None = None
    group_by: list[LabelName] | None = None
    summary: str | None = None
    # Whether its incidents are announced to beta testers (when their severity announces);
    # None: as their category says.
    announce: bool | None = None


class RulesConfig(_Model):
    """The whole rules file."""

    defaults: DefaultsConfig
    severities: dict[str, SeverityPolicy] = Field(min_length=1)
    categories: dict[str, CategoryConfig] = Field(min_length=1)
    teams: dict[str, TeamConfig] = Field(min_length=1)
    roles: RolesConfig
    people: dict[str, PersonConfig] = Field(min_length=1)
    rotations: dict[str, RotationConfig] = Field(min_length=1)
    escalation: dict[str, list[EscalationStep]]
    channels: ChannelsConfig
    jira: JiraConfig
    # Optional: the language of announcements for beta testers and their wording.
    announcements: AnnouncementsConfig = Field(default_factory=AnnouncementsConfig)
    rules: list[RuleConfig] = Field(default_factory=list)
    reports: ReportsConfig = Field(default_factory=ReportsConfig)
    standup: StandupConfig | None = None
    maintenance: list[MaintenanceConfig] = Field(default_factory=list)
    # How long a page waits for an ack before the person's next channel is tried.
    page_retry: Duration = timedelta(minutes=5)
    heartbeats: dict[
        Annotated[str, Field(pattern=HEARTBEAT_NAME, max_length=100)], HeartbeatConfig
    ] = Field(default_factory=dict)

    @field_validator("page_retry")
    @classmethod
    def _retry_positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=30):
            raise ValueError("page_retry must be at least 30s")
        return value

    def severity_rank(self, severity: str) -> int:
        """Lower is more severe: severities are listed most severe first."""
        return list(self.severities).index(severity)

    def steps_for(self, severity: str) -> list[EscalationStep]:
        """The escalation steps that apply to a severity."""
        return self.escalation.get(severity) or self.escalation.get("default", [])
