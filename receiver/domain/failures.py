"""Why a delivery failed and whether trying again can help: one small classification that
every notifier raises and the outbox worker reads (a label of the delivery metrics)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime


class Reason(enum.StrEnum):
    """Why a delivery failed: a label of ``receiver_notifications_total``."""

    NONE = "none"  # it did not fail
    TIMEOUT = "timeout"  # no answer in time
    RATE_LIMITED = "rate_limited"  # 429, or the service's own "slow down"
    SERVER_ERROR = "server_error"  # 5xx, or the service unreachable
    CLIENT_ERROR = "client_error"  # a 4xx or a refusal that will not change on a retry
    CRASH = "crash"  # the notifier raised something unexpected: a bug


class DeliveryError(Exception):
    """A failed delivery; ``retryable`` says whether trying again can help."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        reason: Reason | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.reason = reason or (Reason.SERVER_ERROR if retryable else Reason.CLIENT_ERROR)


def is_retryable_status(status: int) -> bool:
    """429, 408 and 5xx are worth retrying; any other 4xx will fail the same way again."""
    return status in (408, 425, 429) or status >= 500


def reason_for_status(status: int) -> Reason:
    """The failure class of an HTTP status (0: no answer at all)."""
    if status == 429:
        return Reason.RATE_LIMITED
    if status in (0, 408, 504):
        return Reason.TIMEOUT
    if status >= 500:
        return Reason.SERVER_ERROR
    return Reason.CLIENT_ERROR


def reason_for_exception(
    exc: BaseException, timeouts: tuple[type[BaseException], ...] = ()
) -> Reason:
    """The failure class of a transport error: a timeout (TimeoutError, or one of the client
    library's ``timeouts``), or else the server unreachable."""
    return Reason.TIMEOUT if isinstance(exc, (TimeoutError, *timeouts)) else Reason.SERVER_ERROR


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" dates parse without a zone; they are UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
