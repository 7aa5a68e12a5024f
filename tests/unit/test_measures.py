"""Alert-to-ack and time-to-resolve against their targets, as the postmortem and the
plain-text timeline show them: an incident resolved without an ack missed its ack target."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from receiver.domain.model import Incident, Status
from receiver.domain.timeline import measures
from tests.unit.test_slack_render import CFG

T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
P1 = Incident(
    id=1, key="k", rule="r", severity="P1", category="api", team="backend",
    status=Status.TRIGGERED, summary="s", group_labels={}, opened_at=T0, triggered_at=T0,
    first_starts_at=T0,
)  # fmt: skip
MIN = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("incident", "ack", "resolve"),
    [
        pytest.param(P1, ("not yet", "n/a"), ("not yet", "n/a"), id="open"),
        pytest.param(
            replace(P1, status=Status.ACKNOWLEDGED, acknowledged_at=T0 + 12 * MIN),
            ("12 min", "yes"), ("not yet", "n/a"), id="acked in time",
        ),
        pytest.param(
            replace(P1, status=Status.RESOLVED, acknowledged_at=T0 + 45 * MIN,
                    resolved_at=T0 + 65 * MIN),
            ("45 min", "no"), ("1 h 5 min", "yes"), id="acked late, resolved in time",
        ),
        pytest.param(
            replace(P1, status=Status.RESOLVED, resolved_at=T0 + 5 * 60 * MIN),
            ("never (resolved without it)", "no"), ("5 h", "no"), id="resolved without an ack",
        ),
        pytest.param(
            replace(P1, status=Status.RESOLVED, resolved_at=T0 + 10 * MIN),
            ("never (resolved without it)", "n/a"), ("10 min", "yes"),
            id="resolved by itself within the ack target: nothing missed",
        ),
    ],
)  # fmt: skip
def test_each_measure_against_its_target(
    incident: Incident, ack: tuple[str, str], resolve: tuple[str, str]
) -> None:
    [to_ack, to_resolve] = measures(incident, CFG)
    assert to_ack == ("Alert to ack", ack[0], "30 min (ack timeout)", ack[1])
    assert to_resolve == ("Time to resolve", resolve[0], "4 h (respond within)", resolve[1])
