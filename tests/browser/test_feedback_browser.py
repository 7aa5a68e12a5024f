"""The report form and the feedback widget in a real (headless) Chromium: a tester fills
the form, attaches a screenshot, sends it and reads the reference; the widget on another
origin does the same through its dialog; hostile text is shown back as text only.

Selenium blocks, and the receiver runs in the test's event loop: every browser step runs
in a thread (asyncio.to_thread) so the servers keep answering meanwhile.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from receiver.api.keys import STORE
from receiver.domain.reports import FiledReport
from tests.browser.conftest import TIMEOUT, origin
from tests.conftest import API, ClientFactory
from tests.unit.test_reports import png

Client = TestClient[Any, web.Application]
REFERENCE = re.compile(r"R-\d{4}-\d{6}")
HOSTILE_TITLE = "<img src=x onerror=pwned=1> 차트가 비어 있어요"
HOSTILE_SUFFIX = "<img src=x onerror=pwned=2>"  # no dot: all of it is the suffix

pytestmark = pytest.mark.timeout(90)


def report_fields(**changes: str) -> dict[str, str]:
    """What the tester types, by field name."""
    fields = {
        "title": "차트가 비어 있어요",
        "description": "삼성전자 차트가 하얗게 나옵니다.\n새로고침해도 같아요.",
        "category": "ui",
        "steps": "1. 로그인\n2. 삼성전자 차트 열기",
        "expected": "차트가 보인다",
        "actual": "빈 화면",
        "reporter.name": "김하늘",
        "reporter.email": "sky@example.com",
    }
    fields.update(changes)
    return fields


def fill_and_send(driver: WebDriver, fields: dict[str, str], files: list[Path]) -> None:
    """Fill the form on the current page (or frame) once its script is ready, and send."""
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: d.find_element(By.ID, "feedback-form").get_attribute("data-ready") == "true"
    )
    for name, value in fields.items():
        element = driver.find_element(By.NAME, name)
        if element.tag_name == "select":
            Select(element).select_by_value(value)
        else:
            element.clear()
            element.send_keys(value)
    if files:
        driver.find_element(By.ID, "f-attachments").send_keys("\n".join(map(str, files)))
    driver.find_element(By.ID, "feedback-submit").click()


def reference_shown(driver: WebDriver) -> str:
    """The reference once the confirmation shows it."""
    shown = WebDriverWait(driver, TIMEOUT).until(
        ec.visibility_of_element_located((By.ID, "feedback-reference"))
    )
    return str(shown.text)


async def the_report(client: Client, reference: str) -> FiledReport:
    """The one report the receiver has, found through the incidents API."""
    resp = await client.get("/api/v1/incidents", headers=API)
    [incident] = (await resp.json())["incidents"]
    assert incident["source"] == "report"
    filed = await client.app[STORE].get_report(incident["id"])
    assert filed is not None and filed.reference == reference
    return filed


async def test_a_tester_files_a_report_with_a_screenshot_from_the_form(
    make_client: ClientFactory, browser: WebDriver, tmp_path: Path
) -> None:
    client = await make_client()
    shot = tmp_path / "screen.png"
    shot.write_bytes(png())
    url = str(client.server.make_url("/feedback?app_version=1.4.2"))

    def tester() -> tuple[str, str]:
        browser.get(url)
        fill_and_send(browser, report_fields(), [shot])
        reference = reference_shown(browser)
        summary = browser.find_element(By.ID, "f-env").get_attribute("textContent") or ""
        return reference, summary

    reference, summary = await asyncio.to_thread(tester)
    assert REFERENCE.fullmatch(reference), reference
    filed = await the_report(client, reference)
    report = filed.report
    assert (report.title, report.category, report.reporter.email) == (
        "차트가 비어 있어요", "ui", "sky@example.com",
    )  # fmt: skip
    # a browser sends a textarea's line breaks as CRLF; they are kept as plain line breaks
    assert report.steps == "1. 로그인\n2. 삼성전자 차트 열기"
    env = report.environment
    assert env.browser is not None and re.match(r"(Headless)?Chrom(e|ium) \d+", env.browser)
    assert env.os is not None and env.os.startswith("Linux")
    assert env.device is not None and "desktop" in env.device and "×" in env.device
    assert env.app_version == "1.4.2"
    assert env.browser in summary and "1.4.2" in summary  # shown to the tester as well
    assert [(a.filename, a.content_type, a.data) for a in report.attachments] == [
        ("screen.png", "image/png", png())
    ]


async def test_the_widget_on_the_web_app_files_a_report_through_its_dialog(
    make_client: ClientFactory, browser: WebDriver, aiohttp_server: Any
) -> None:
    where: dict[str, str] = {}

    async def trading_app(request: web.Request) -> web.Response:
        html = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Trading</title>"
            f"<script src='{where['receiver']}/feedback/widget.js' data-app-version='1.4.2'"
            " data-lang='en' defer></script></head><body><h1>Trading</h1></body></html>"
        )
        return web.Response(text=html, content_type="text/html")

    host_app = web.Application()
    host_app.router.add_get("/", trading_app)
    host: TestServer = await aiohttp_server(host_app)
    host_origin = str(host.make_url("/")).rstrip("/")
    client = await make_client(reports_origins=host_origin)
    where["receiver"] = origin(client)
    assert host_origin != where["receiver"]  # another port: another origin

    def tester() -> tuple[str, str, str, bool]:
        browser.get(str(host.make_url("/")))
        wait = WebDriverWait(browser, TIMEOUT)
        button = wait.until(ec.element_to_be_clickable((By.ID, "receiver-feedback-button")))
        label = str(button.text)
        button.click()
        frame = wait.until(ec.visibility_of_element_located((By.ID, "receiver-feedback-frame")))
        browser.switch_to.frame(frame)
        lang = browser.find_element(By.TAG_NAME, "html").get_attribute("lang") or ""
        fill_and_send(browser, report_fields(title="주문 버튼이 반응하지 않아요"), [])
        reference = reference_shown(browser)
        browser.switch_to.default_content()
        browser.find_element(By.ID, "receiver-feedback-close").click()
        closed = wait.until(
            lambda d: d.execute_script(
                "return !document.getElementById('receiver-feedback-dialog').open"
            )
        )
        return label, lang, reference, bool(closed)

    label, lang, reference, closed = await asyncio.to_thread(tester)
    assert (label, lang, closed) == ("Feedback", "en", True)
    assert REFERENCE.fullmatch(reference), reference
    report = (await the_report(client, reference)).report
    assert report.title == "주문 버튼이 반응하지 않아요"
    assert report.environment.app_version == "1.4.2"  # from the script tag's data attribute
    assert report.environment.browser and "Chrom" in report.environment.browser


async def test_hostile_text_is_shown_back_as_text_only(
    make_client: ClientFactory, browser: WebDriver, tmp_path: Path
) -> None:
    client = await make_client()
    # A PNG named as something else: refused, and the server's message quotes its name.
    misnamed = tmp_path / f"screen.{HOSTILE_SUFFIX}"
    misnamed.write_bytes(png())
    url = str(client.server.make_url("/feedback"))
    injected = (
        "return [document.querySelectorAll('img').length, window.pwned === undefined,"
        " document.getElementById('f-attachments-error').textContent,"
        " document.getElementById('f-attachments-list').textContent]"
    )

    def tester() -> tuple[list[Any], str, str, list[Any]]:
        browser.get(url)
        fill_and_send(browser, report_fields(title=HOSTILE_TITLE), [misnamed])
        wait = WebDriverWait(browser, TIMEOUT)
        wait.until(ec.visibility_of_element_located((By.ID, "f-attachments-error")))
        refused = browser.execute_script(injected)
        browser.find_element(By.ID, "f-attachments").clear()
        browser.find_element(By.ID, "feedback-submit").click()
        reference = reference_shown(browser)
        thanks = str(browser.find_element(By.ID, "feedback-done-text").text)
        return refused, reference, thanks, browser.execute_script(injected)

    refused, reference, thanks, accepted = await asyncio.to_thread(tester)
    images, clean, error, listed = refused
    assert (images, clean) == (0, True)
    assert f"named .{HOSTILE_SUFFIX}" in error and HOSTILE_SUFFIX in listed  # as text
    assert REFERENCE.fullmatch(reference)
    assert HOSTILE_TITLE in thanks
    assert accepted[:2] == [0, True]
    assert (await the_report(client, reference)).report.title == HOSTILE_TITLE


# Browsers without navigator.userAgentData, as their User-Agent strings name them.
USER_AGENTS = {
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1": ("iOS 18.1", "Safari 18.1"),
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0": (
        "Windows 10/11", "Firefox 133",
    ),
    "Mozilla/5.0 (Linux; Android 14; SM-S918N) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36": (
        "Android 14", "Samsung Internet 26",
    ),
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86": ("macOS 10.15.7", "Edge 131.0.2903.86"),
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1": ("iOS 17.4", "Chrome 131.0.6778.73"),
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0": (
        "Linux", "Firefox 128",
    ),
}  # fmt: skip


async def test_browsers_without_client_hints_are_named_from_their_user_agent(
    make_client: ClientFactory, browser: WebDriver
) -> None:
    client = await make_client()
    url = str(client.server.make_url("/feedback"))

    def parse() -> Any:
        browser.get(url)
        WebDriverWait(browser, TIMEOUT).until(
            lambda d: d.execute_script("return window.ReceiverFeedback !== undefined")
        )
        return browser.execute_script(
            "return arguments[0].map(ua => window.ReceiverFeedback.parseUserAgent(ua))",
            list(USER_AGENTS),
        )

    found = await asyncio.to_thread(parse)
    assert [(f["os"], f["browser"]) for f in found] == list(USER_AGENTS.values())
