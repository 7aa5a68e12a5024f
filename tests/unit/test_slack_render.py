"""Slack messages: alert text is shown as written and every text fits Slack's limits."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from receiver.config import load_rules
from receiver.config.models import AnnouncementsConfig, AnnouncementTemplate
from receiver.domain import slack_render
from receiver.domain.announce import announcement
from receiver.domain.digest import Breach, Digest, OpenItem, render_digest
from receiver.domain.model import Incident, Status
from receiver.domain.slack_render import ZWSP, escape, fit
from tests.fuzzing import slack_problems
from tests.helpers import SHIPPED_RULES

G = ZWSP  # a guarded formatting mark is written G + mark + G

ESCAPES = [
    ("<!channel>", "&lt;!channel&gt;"),
    ("<!here|here> <!everyone>", "&lt;!here|here&gt; &lt;!everyone&gt;"),
    ("<https://x|y>", "&lt;https://x|y&gt;"),
    ("<@U0KIM> <#C0123>", "&lt;@U0KIM&gt; &lt;#C0123&gt;"),
    ("fish & chips", "fish &amp; chips"),
    ("&amp; stays as typed", "&amp;amp; stays as typed"),
    ("*bold*", f"{G}*{G}bold{G}*{G}"),
    ("_italic_", f"{G}_{G}italic{G}_{G}"),
    ("~struck~", f"{G}~{G}struck{G}~{G}"),
    ("`code`", f"{G}`{G}code{G}`{G}"),
    ("```block```", f"{G}`{G}" * 3 + "block" + f"{G}`{G}" * 3),
    ("http_requests_total", "http_requests_total"),
    ("a*b~c", "a*b~c"),
    ("x`y", f"x{G}`{G}y"),
    ("> quoted", f"{G}&gt; quoted"),
    ("a > b", "a &gt; b"),
    ("@channel look", f"@{G}channel look"),
    ("@here", f"@{G}here"),
    ("kim@example.com", "kim@example.com"),
    ("plain words, 100%", "plain words, 100%"),
]


@pytest.mark.parametrize(("raw", "escaped"), ESCAPES, ids=[raw for raw, _ in ESCAPES])
def test_escape(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped
    assert slack_problems(escape(raw)) == []


def test_a_value_is_shown_on_one_line() -> None:
    assert slack_render.shown("a\n> quote\n\t*b*") == f"a &gt; quote {G}*{G}b{G}*{G}"


CUTS = [
    ("x" * 3000, 3000, "x" * 3000),
    ("x" * 3001, 3000, "x" * 2999 + "…"),
    ("&amp;" * 10, 13, "&amp;&amp;…"),
    (f"ab{G}*{G}cd", 4, "ab…"),
    ("😀" * 10, 7, "😀😀😀…"),  # UTF-16: each counts two
    ("<@U0KIM> " + "x" * 20, 5, "…"),
]


@pytest.mark.parametrize(("text", "limit", "expected"), CUTS)
def test_fit_cuts_between_escapes(text: str, limit: int, expected: str) -> None:
    assert fit(text, limit) == expected


@pytest.mark.parametrize("raw", ["&" * 10_000, "<>" * 5000, "*_~`" * 2500, "x" * 10_000])
def test_a_cut_never_splits_an_escape(raw: str) -> None:
    cut = fit(escape(raw))
    assert len(cut) <= slack_render.TEXT_LIMIT
    assert slack_problems(cut) == []
    assert escape(raw).startswith(cut.removesuffix("…"))


HOSTILE = "<!channel> <https://evil.example/login|Click to re-auth> *now* `run` > x"


def snapshot(**kw: Any) -> dict[str, Any]:
    base = {
        "severity": "P1",
        "category": "api",
        "team": "backend",
        "status": "triggered",
        "summary": HOSTILE,
        "jira_key": None,
        "acknowledged_by": None,
        "resolved_by": None,
    }
    return {**base, **kw}


def texts_of(blocks: list[dict[str, Any]]) -> list[str]:
    found = []
    for block in blocks:
        if block["type"] == "section":
            found.append(block["text"]["text"])
        if block["type"] == "context":
            found += [e["text"] for e in block["elements"]]
    return found


INCIDENTS = [
    snapshot(),
    snapshot(summary="x" * 10_000),
    snapshot(summary="&" * 10_000, category="<!here>"),
    snapshot(status="acknowledged", acknowledged_by="kim"),
    snapshot(status="acknowledged", acknowledged_by="<!channel> *someone*"),
    snapshot(status="resolved", resolved_by="kim", team="<b|c>"),
    snapshot(jira_key="OPS-1 <https://evil.example|x>"),
]
KINDS = ["incident.opened", "incident.acknowledged", "incident.resolved",
         "incident.reopened", "incident.severity_raised", "incident.other"]  # fmt: skip


@pytest.mark.parametrize("incident", INCIDENTS)
def test_incident_messages_show_alert_text_as_text_within_limits(incident: dict[str, Any]) -> None:
    names = {"kim": "Kim *Minjun*"}
    note = "You are paged (step 0, as <!channel>)."
    blocks = slack_render.incident_blocks(7, incident, names, note)
    shown = texts_of(blocks) + [slack_render.event_text(k, incident, names) for k in KINDS]
    assert len(texts_of(blocks)) == 3
    for text in shown:
        assert slack_problems(text) == [], text


def test_the_hostile_summary_is_still_readable() -> None:
    [head, *_] = texts_of(slack_render.incident_blocks(7, snapshot(), {}))
    assert head.startswith(":red_circle: *[P1][api]* &lt;!channel&gt; &lt;https://evil.example")
    text = slack_render.event_text("incident.opened", snapshot(), {})
    assert text.startswith("New incident: [P1][api] &lt;!channel&gt;")


CFG = load_rules(SHIPPED_RULES)
T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def test_announcements_show_the_rules_wording_as_written() -> None:
    wording = AnnouncementTemplate(affected="<!channel> *orders*", opened="Down: {affected} > x")
    announcements = AnnouncementsConfig.model_validate({"api": wording.model_dump()})
    cfg = CFG.model_copy(update={"announcements": announcements})
    opened = Incident(
        id=1, key="k", rule="r", severity="P1", category="api", team="backend",
        status=Status.TRIGGERED, summary="s", group_labels={}, opened_at=T0,
        triggered_at=T0, first_starts_at=T0,
    )  # fmt: skip
    text = announcement("opened", opened, cfg)
    assert text == f"Down: &lt;!channel&gt; {G}*{G}orders{G}*{G} &gt; x"
    assert slack_problems(text) == []


def test_the_digest_shows_summaries_and_names_as_text() -> None:
    day = timedelta(days=1)
    digest = Digest(
        since=T0 - 7 * day,
        until=T0,
        opened_by_severity={"P1": 1},
        opened_by_category={"<!here>": 1},
        resolved_by_severity={},
        resolved_by_category={},
        still_open=(OpenItem(1, "P1", "*api*", "<!channel> `x`", False, day),),
        ack={},
        breaches=(Breach(1, "P1", "_api_", "<https://evil.example|y>", day, None),),
    )
    text = render_digest(digest)
    assert "&lt;!here&gt; 1" in text and "&lt;!channel&gt;" in text
    assert f"[P1][{G}*{G}api{G}*{G}]" in text
    # the digest's own headings are bold; everything else is text
    own = [re.sub(r"^\*[A-Z][A-Za-z\- ]*:?\*", "", line) for line in text.splitlines()]
    assert [p for line in own for p in slack_problems(line)] == []
