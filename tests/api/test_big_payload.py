"""Bodies too big for one pass are read a slice at a time, with the very same answers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from receiver.api.payload import WHOLE_BODY_BYTES, PayloadProblem, WebhookPayload, read_webhook
from receiver.domain.model import Alert
from tests.helpers import alert, webhook

ALERTS = 3000  # about 1 MiB: read in slices, the last of them short
BAD = 2345  # an alert in the second slice


def big(edit: dict[str, Any] | None = None, at: int = BAD) -> bytes:
    """A body of ALERTS alerts, alert ``at`` changed by ``edit``."""
    alerts = [alert(service=f"svc-{n:04d}") for n in range(ALERTS)]
    if edit:
        alerts[at] = {**alerts[at], **edit}
    body = json.dumps(webhook(*alerts)).encode()
    assert len(body) > WHOLE_BODY_BYTES
    return body


def whole(body: bytes) -> list[Alert]:
    """What validating the whole body at once gives."""
    return WebhookPayload.model_validate_json(body).domain_alerts(body)


def sliced(body: bytes) -> tuple[str, list[Alert]]:
    keys, taken = set(), []
    for key, part in read_webhook(body, size=1000):
        keys.add(key)
        taken += part
    [key] = keys
    return key, taken


def test_big_body_gives_the_alerts_of_the_whole_body() -> None:
    body = big()
    key, taken = sliced(body)
    assert taken == whole(body)
    assert key == WebhookPayload.model_validate_json(body).groupKey


@pytest.mark.parametrize(
    "edit",
    [
        {"status": "pending"},
        {"labels": {"alertname": 3}},
        {"fingerprint": ""},
        {"startsAt": "yesterday"},
    ],
)
def test_schema_errors_are_those_of_the_whole_body(edit: dict[str, Any]) -> None:
    body = big(edit)
    with pytest.raises(ValidationError) as expected:
        whole(body)
    with pytest.raises(ValidationError) as got:
        sliced(body)
    assert got.value.errors() == expected.value.errors()
    assert got.value.errors()[0]["loc"][:2] == ("alerts", BAD)


@pytest.mark.parametrize(
    "edit",
    [
        {"startsAt": "0001-01-01T00:00:00Z"},  # Go's zero time
        {"endsAt": "9999-01-01T00:00:00Z"},  # out of range
        {"annotations": {"summary": "a\x00b"}},  # NUL
    ],
)
def test_refused_fields_are_those_of_the_whole_body(edit: dict[str, Any]) -> None:
    body = big(edit)
    with pytest.raises(PayloadProblem) as expected:
        whole(body)
    with pytest.raises(PayloadProblem) as got:
        sliced(body)
    assert got.value.problems == expected.value.problems
    assert got.value.field.startswith(f"alerts[{BAD}].")


def test_envelope_errors_are_those_of_the_whole_body() -> None:
    for body in (big()[:-1], big().replace(b'"version": "4"', b'"version": "3"')):
        with pytest.raises(ValidationError) as expected:
            whole(body)
        with pytest.raises(ValidationError) as got:
            sliced(body)
        assert got.value.errors() == expected.value.errors()
