"""Alertmanager webhook payload, version 4, validated with pydantic."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from receiver.domain.model import Alert, AlertStatus

_FRACTION = re.compile(r"(\.\d{6})\d+")
ZERO_TIME_YEAR = 1  # Go's zero time, 0001-01-01T00:00:00Z, means "not set"


def _timestamp(value: Any) -> datetime | None:
    """RFC 3339 with up to nanoseconds (Go's format); Go's zero time is None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("expected an RFC 3339 timestamp string")
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value))
    except ValueError:
        raise ValueError(f"invalid RFC 3339 timestamp {value[:64]!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value[:64]!r} has no time zone")
    if parsed.year == ZERO_TIME_YEAR:
        return None
    return parsed.astimezone(UTC)


Timestamp = Annotated[datetime | None, BeforeValidator(_timestamp)]
LabelSet = dict[Annotated[str, Field(max_length=1024)], Annotated[str, Field(max_length=65536)]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class WebhookAlert(_Model):
    """One alert of the payload."""

    status: Literal["firing", "resolved"]
    labels: LabelSet
    annotations: LabelSet = Field(default_factory=dict)
    startsAt: Timestamp
    endsAt: Timestamp = None
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1, max_length=128)

    @field_validator("startsAt")
    @classmethod
    def _starts_set(cls, value: datetime | None) -> datetime | None:
        if value is None:
            raise ValueError("startsAt must be a real time, not empty or Go's zero time")
        return value

    def to_domain(self) -> Alert:
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
        )


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
