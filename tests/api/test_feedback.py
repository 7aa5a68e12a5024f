"""GET /feedback and /feedback/widget.js without a browser: the page in the reporter's
language, its policy (no inline script, framed only by the widget's hosts), escaping of
what the query brings, and the scripts served as cacheable JavaScript. The form at work
in a real browser is tests/browser/test_feedback_browser.py."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.api.feedback import content_security_policy
from receiver.api.keys import RULES
from receiver.i18n import text
from tests.conftest import ClientFactory

Client = TestClient[Any, web.Application]
HOST = "https://beta.trading.example"


class Page(HTMLParser):
    """The elements of a page, with their attributes, and the text of its data blocks."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self._script: dict[str, str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        self.elements.append((tag, found))
        if tag == "script":
            self._script = found
            self.scripts.append((found, ""))

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def find(self, tag: str, **wanted: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.elements
            if t == tag and all(a.get(k) == v for k, v in wanted.items())
        ]


async def feedback_page(client: Client, query: str = "") -> tuple[str, Page]:
    resp = await client.get(f"/feedback{query}")
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/html"
    html = await resp.text()
    return html, Page(html)


@pytest.mark.parametrize(
    ("query", "locale"), [("", "ko"), ("?lang=en", "en"), ("?lang=ko", "ko"), ("?lang=xx", "ko")]
)
async def test_the_page_is_in_the_reporters_language(
    make_client: ClientFactory, query: str, locale: str
) -> None:
    client = await make_client()
    html, page = await feedback_page(client, query)
    assert page.find("html", lang=locale)
    for key in ("feedback.heading", "feedback.submit", "feedback.title.label",
                "feedback.email.label", "feedback.noscript"):  # fmt: skip
        assert text(locale, key) in html, key
    assert ("보내기" in html) == (locale == "ko")
    assert ("Send report" in html) == (locale == "en")
    messages = json.loads(page.scripts[0][1])  # what the script says, in the same language
    assert messages["sending"] == text(locale, "feedback.sending")
    assert "{reference}" not in messages["done.text"] and "{title}" in messages["done.text"]


async def test_the_form_has_every_field_labelled_and_the_rules_categories(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    html, page = await feedback_page(client)
    names = {a["name"] for tag in ("input", "textarea", "select") for a in page.find(tag)}
    assert names == {
        "title", "description", "category", "steps", "expected", "actual", "attachments",
        "reporter.name", "reporter.email", "environment.os", "environment.browser",
        "environment.device", "environment.app_version",
    }  # fmt: skip
    labelled = {a["for"] for a in page.find("label")}
    for tag in ("input", "textarea", "select"):
        for attrs in page.find(tag):
            if attrs.get("type") != "hidden":
                assert attrs["id"] in labelled, attrs["name"]
    [files] = page.find("input", type="file")
    assert "multiple" in files and "image/png" in files["accept"] and ".json" in files["accept"]
    categories = [a["value"] for a in page.find("option")]
    assert categories == ["", *client.app[RULES].current.categories]  # "": not chosen
    assert "network" in categories and text("ko", "feedback.category.network") in html


async def test_the_page_runs_only_the_receivers_own_scripts(make_client: ClientFactory) -> None:
    client = await make_client(reports_origins=f"{HOST}, https://other.example/")
    resp = await client.get("/feedback")
    directives = [
        d.strip().partition(" ") for d in resp.headers["Content-Security-Policy"].split(";")
    ]
    policy = {name: value for name, _, value in directives}
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"].split() == ["'self'", HOST, "https://other.example"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    page = Page(await resp.text())
    assert page.scripts, "the page has its script"
    for attrs, body in page.scripts:
        if "src" in attrs:
            assert attrs["src"].startswith("/feedback/") and not body.strip()
        else:
            assert attrs.get("type") == "application/json", attrs
            json.loads(body)  # data, never run
    for tag, attrs in page.elements:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)  # no handlers
        assert "style" not in attrs and tag != "style", tag  # style-src 'self' only
    for src in [a["src"] for a, _ in page.scripts if "src" in a] + [
        a["href"] for a in page.find("link", rel="stylesheet")
    ]:
        asset = await client.get(src)
        assert asset.status == 200, src
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
        assert asset.content_type in ("text/javascript", "text/css")


def test_origins_that_would_break_the_policy_are_left_out_of_it() -> None:
    policy = content_security_policy([HOST, "https://x.example; script-src *", "http://[::1]:8080"])
    ancestors = policy.rsplit("frame-ancestors ", 1)[1].split()
    assert sorted(ancestors) == sorted(["'self'", HOST, "http://[::1]:8080"])
    assert "script-src *" not in policy


async def test_what_the_query_brings_is_escaped(make_client: ClientFactory) -> None:
    client = await make_client()
    hostile = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>"
    html, page = await feedback_page(
        client, "?" + urlencode({"app_version": hostile, "embed": "1"})
    )
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    [version] = page.find("input", name="environment.app_version")
    assert version["value"] == hostile  # shown back as the text it was, nothing more
    assert not page.find("img")
    assert page.find("body", **{"class": "embed"})


async def test_the_widget_is_cacheable_javascript_in_every_language(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    resp = await client.get("/feedback/widget.js")
    assert resp.status == 200
    assert resp.content_type == "text/javascript"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"].startswith("public, max-age=")
    body = await resp.text()
    config = json.loads(body.split("var CONFIG = ", 1)[1].split(";\n", 1)[0])
    assert config["locale"] == "ko" and config["path"] == "/feedback"
    assert {lang: m["widget.button"] for lang, m in config["messages"].items()} == {
        "ko": "피드백",
        "en": "Feedback",
    }
    assert "{{" not in body
    again = await client.get("/feedback/widget.js", headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304 and not await again.read()
    assert (await client.get("/feedback/other.js")).status == 404
