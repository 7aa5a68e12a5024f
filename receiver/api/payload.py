"""Alertmanager webhook payload, version 4, validated with pydantic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from receiver.domain.model import Alert, AlertStatus

# Times are stored as epoch seconds and deadlines are computed from them: near the end of
# datetime's range (year 9999) they round or overflow past it and the incident cannot be read.
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _go_time(value: datetime | None) -> datetime | None:
    """Go's zero time, 0001-01-01T00:00:00Z, means "not set"; everything else in UTC."""
    if value is None or value.year == 1:
        return None
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp out of range") from None
    if utc >= LATEST:
        raise ValueError("timestamp out of range (must be before 9000-01-01)")
    return utc


# RFC 3339 with up to nanoseconds (Go's format); pydantic keeps microseconds.
Timestamp = Annotated[AwareDatetime | None, AfterValidator(_go_time)]
# NUL cannot be stored as text by PostgreSQL, and no real label or annotation has one.
NoNul = Field(pattern=r"^[^\x00]*$")
LabelSet = dict[
    Annotated[str, Field(max_length=1024), NoNul], Annotated[str, Field(max_length=65536), NoNul]
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class WebhookAlert(_Model):
    """One alert of the payload."""

    status: Literal["firing", "resolved"]
    labels: LabelSet
    annotations: LabelSet = Field(default_factory=dict)
    startsAt: Timestamp
    endsAt: Timestamp = None
    generatorURL: Annotated[str, NoNul] = ""
    fingerprint: Annotated[str, Field(min_length=1, max_length=128), NoNul]

    @field_validator("startsAt")
    @classmethod
    def _starts_set(cls, value: datetime | None) -> datetime | None:
        if value is None:
            raise ValueError("startsAt must be a real time, not empty or Go's zero time")
        return value

    def to_domain(self, alertmanager_url: str = "") -> Alert:
        """The domain's view of this alert."""
        assert self.startsAt is not None
        return Alert(
            fingerprint=self.fingerprint,
            status=AlertStatus(self.status),
            labels=self.labels,
            annotations=self.annotations,
            starts_at=self.startsAt,
            ends_at=self.endsAt,
            generator_url=self.generatorURL,
            alertmanager_url=alertmanager_url,
        )


class WebhookPayload(_Model):
    """The body Alertmanager POSTs to a webhook receiver."""

    version: Literal["4"]
    groupKey: Annotated[str, NoNul] = ""
    truncatedAlerts: int = Field(default=0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: LabelSet = Field(default_factory=dict)
    commonLabels: LabelSet = Field(default_factory=dict)
    commonAnnotations: LabelSet = Field(default_factory=dict)
    externalURL: Annotated[str, NoNul] = ""
    alerts: list[WebhookAlert] = Field(min_length=1)
