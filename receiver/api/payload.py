"""Alertmanager webhook payload, version 4, validated with pydantic."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import from_json

from receiver.domain.model import Alert, AlertStatus

# Times are stored as epoch seconds and deadlines are computed from them: near the end of
# datetime's range (year 9999) they round or overflow past it and the incident cannot be read.
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class PayloadProblem(ValueError):
    """A payload that passed the schema but cannot be taken: every field refused, in the
    order of the model's fields, and why."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.field, self.message = problems[0]
        super().__init__(f"{self.field}: {self.message}")
        self.problems = problems


class _BadTime(ValueError):
    """A time that is not taken: which of the alert's times, and why."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


def _when(value: datetime | None, name: str, required: bool) -> datetime | None:
    """Go's zero time, 0001-01-01T00:00:00Z, means "not set"; everything else in UTC."""
    if value is None or value.year == 1:
        if required:
            raise _BadTime(name, "must be a real time, not empty or Go's zero time")
        return None
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise _BadTime(name, "timestamp out of range") from None
    if utc >= LATEST:
        raise _BadTime(name, "timestamp out of range (must be before 9000-01-01)")
    return utc


# RFC 3339 with up to nanoseconds (Go's format); pydantic keeps microseconds. Go's zero
# time and the range are checked when the alerts are taken (WebhookPayload.domain_alerts):
# one pass in Python per alert rather than a validator call per field.
LabelSet = dict[Annotated[str, Field(max_length=1024)], Annotated[str, Field(max_length=65536)]]
# NUL cannot be stored as text by PostgreSQL, and no real label or annotation has one. In
# JSON it can only be written as the escape \u0000, so a body without that text has none.
NUL_ESCAPE = b"\\u0000"
NUL_MESSAGE = "must not contain NUL (\\u0000) characters"


def _nuls(labels: dict[str, str], field: str) -> list[tuple[str, str]]:
    """Label names (never echoed) and values holding NUL."""
    return [
        (f"{field}.[key]" if "\x00" in name else f"{field}.{name}", NUL_MESSAGE)
        for name, value in labels.items()
        if "\x00" in name or "\x00" in value
    ]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class WebhookAlert(_Model):
    """One alert of the payload."""

    status: Literal["firing", "resolved"]
    labels: LabelSet
    annotations: LabelSet = Field(default_factory=dict)
    startsAt: AwareDatetime | None  # null is refused below, with Go's zero time
    endsAt: AwareDatetime | None = None
    generatorURL: str = ""
    fingerprint: Annotated[str, Field(min_length=1, max_length=128)]

    def _domain(self, alertmanager_url: str) -> Alert:
        """The domain's view, its times checked; NUL characters are not looked for."""
        starts_at = _when(self.startsAt, "startsAt", required=True)
        ends_at = _when(self.endsAt, "endsAt", required=False)
        assert starts_at is not None
        return Alert(
            fingerprint=self.fingerprint,
            status=_STATUS[self.status],
            labels=self.labels,
            annotations=self.annotations,
            starts_at=starts_at,
            ends_at=ends_at,
            generator_url=self.generatorURL,
            alertmanager_url=alertmanager_url,
        )

    def problems(self, field: str, nul: bool = True) -> list[tuple[str, str]]:
        """This alert's refused fields: times, and with ``nul`` strings holding NUL."""
        found: list[tuple[str, str]] = []
        if nul:
            found += _nuls(self.labels, f"{field}.labels")
            found += _nuls(self.annotations, f"{field}.annotations")
        for name, value, required in (
            ("startsAt", self.startsAt, True),
            ("endsAt", self.endsAt, False),
        ):
            try:
                _when(value, name, required)
            except _BadTime as exc:
                found.append((f"{field}.{name}", exc.message))
        if nul:
            found += [
                (f"{field}.{name}", NUL_MESSAGE)
                for name in ("generatorURL", "fingerprint")
                if "\x00" in getattr(self, name)
            ]
        return found


class WebhookPayload(_Model):
    """The body Alertmanager POSTs to a webhook receiver."""

    version: Literal["4"]
    groupKey: str = ""
    truncatedAlerts: int = Field(default=0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: LabelSet = Field(default_factory=dict)
    commonLabels: LabelSet = Field(default_factory=dict)
    commonAnnotations: LabelSet = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[WebhookAlert] = Field(min_length=1)

    def domain_alerts(self, body: bytes | None = None) -> list[Alert]:
        """The alerts to ingest; raises PayloadProblem for what the schema lets through
        (NUL characters, Go's zero time or null as startsAt, times out of range). Given the
        JSON body it was read from, NUL is only looked for when the body can hold one."""
        nul = body is None or NUL_ESCAPE in body
        url = self.externalURL
        try:
            taken = [alert._domain(url) for alert in self.alerts]
        except _BadTime:
            taken = None
        if (taken is None or nul) and (problems := self.problems(nul)):
            raise PayloadProblem(problems)
        assert taken is not None  # a time refused is always among the problems
        return taken

    def domain_slices(self, body: bytes | None = None, size: int = 2000) -> Iterator[list[Alert]]:
        """``domain_alerts`` a slice of ``size`` alerts at a time, so that a caller may let
        its event loop run in between; PayloadProblem is raised before the last slice."""
        nul = body is None or NUL_ESCAPE in body
        if nul and (problems := self.problems(nul)):
            raise PayloadProblem(problems)
        url, step = self.externalURL, max(size, 1)
        for start in range(0, len(self.alerts), step):
            try:
                yield [alert._domain(url) for alert in self.alerts[start : start + step]]
            except _BadTime:
                # A time refused is always among the problems; they are listed in full.
                raise PayloadProblem(self.problems(nul)) from None

    def problems(self, nul: bool = True) -> list[tuple[str, str]]:
        """Every refused field: times, and with ``nul`` strings holding NUL."""
        found: list[tuple[str, str]] = []
        if nul:
            if "\x00" in self.groupKey:
                found.append(("groupKey", NUL_MESSAGE))
            for name in ("groupLabels", "commonLabels", "commonAnnotations"):
                found += _nuls(getattr(self, name), name)
            if "\x00" in self.externalURL:
                found.append(("externalURL", NUL_MESSAGE))
        for i, alert in enumerate(self.alerts):
            found += alert.problems(f"alerts[{i}]", nul)
        return found


_STATUS = {status.value: status for status in AlertStatus}
_ALERTS = TypeAdapter(list[WebhookAlert])

# Bodies up to this size are validated in one pass (a few milliseconds); larger ones, which
# only a raised RECEIVER_MAX_BODY_BYTES lets in, a slice of alerts at a time.
WHOLE_BODY_BYTES = 256 * 1024
SLICE_ALERTS = 2000


def read_webhook(body: bytes, size: int = SLICE_ALERTS) -> Iterator[tuple[str, list[Alert]]]:
    """The group key and the alerts of a JSON body, a slice of alerts at a time, so that a
    caller may let its event loop run in between; raises ValidationError or PayloadProblem
    with the errors that validating the whole body at once gives, before the last slice."""
    if len(body) <= WHOLE_BODY_BYTES or NUL_ESCAPE in body:
        yield from _whole(body, size)
        return
    try:
        parsed = from_json(body)
    except ValueError:
        parsed = None
    alerts = parsed.get("alerts") if isinstance(parsed, dict) else None
    if not isinstance(parsed, dict) or not isinstance(alerts, list) or not alerts:
        yield from _whole(body, size)  # refused: the whole-body pass names the error
        return
    try:
        head = WebhookPayload.model_validate({**parsed, "alerts": alerts[:1]})
    except ValidationError:
        yield from _whole(body, size)
        return
    del parsed
    key, url = head.groupKey, head.externalURL
    for start in range(0, len(alerts), size):
        stop = start + size
        try:
            part = [alert._domain(url) for alert in _ALERTS.validate_python(alerts[start:stop])]
        except (ValidationError, _BadTime):
            # Refused: the whole-body pass names every error, with its index, in order.
            for _, taken in _whole(body, len(alerts)):  # one slice, all the alerts
                yield key, taken[start:]
            return
        alerts[start:stop] = [None] * len(part)  # the parsed JSON goes as it is taken
        yield key, part


def _whole(body: bytes, size: int) -> Iterator[tuple[str, list[Alert]]]:
    payload = WebhookPayload.model_validate_json(body)
    if len(payload.alerts) <= size:  # an ordinary webhook: one slice, taken the direct way
        yield payload.groupKey, payload.domain_alerts(body)
        return
    for part in payload.domain_slices(body, size):
        yield payload.groupKey, part
