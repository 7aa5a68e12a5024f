"""The web console (/ui/) in a real headless Chromium against a real ``receiver serve``
with fake JIRA and Slack: sign-in, the list updating itself, acknowledging and mitigating,
triage, maintenance windows, retrying a dead letter, the language switch, and what is
refused (a form without its token, a forged cookie, an SSO header from anywhere else).

One receiver and one browser serve the whole module; each test makes its own incidents
and signs in again when it needs to, so each can run alone. Every wait is bounded. A
screenshot of each page visited goes to $RECEIVER_SCREENSHOTS (else
artifacts/console-screenshots), whose path is printed once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from receiver import i18n
from receiver.config import load_rules
from receiver.console.session import LANG_COOKIE, SESSION_COOKIE
from receiver.domain.digest import digest_zone
from tests.browser.conftest import TIMEOUT, chromium
from tests.browser.console_support import (
    PASSWORD,
    SECRET,
    Answer,
    Http,
    Screens,
    Stack,
    announce,
    forge,
    korean_font_missing,
    screenshot_folder,
    serving,
    start_receivers,
    stop_receivers,
    until,
)
from tests.reliability.harness import RECEIVER_LABEL, ReceiverProcess

pytestmark = pytest.mark.timeout(90)

DESKTOP = (1280, 1000)
PHONE = (390, 844)
ROW_WAIT = 15  # the list polls its rows every 5 s
SETTLE = 20.0  # the outbox delivers within a second or two; this bounds a slow machine
KIM = "Kim Minjun"


def ko(key: str) -> str:
    """A console message in Korean, as the catalog has it."""
    found = i18n.lookup("ko", f"console.{key}")
    assert found is not None, key
    return found


def en(key: str) -> str:
    found = i18n.lookup("en", f"console.{key}")
    assert found is not None, key
    return found


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One ``receiver serve`` for the module, with its fakes; kim and lee have passwords."""
    with serving(tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    """One headless Chromium (Korean) for the module."""
    with chromium(*DESKTOP) as browser:
        yield browser


@pytest.fixture(scope="module")
def screens(request: pytest.FixtureRequest) -> Screens:
    folder = screenshot_folder()
    announce(request.config, f"console screenshots: {folder}{korean_font_missing()}")
    return Screens(folder)


@pytest.fixture
def kim(driver: WebDriver, stack: Stack) -> Iterator[WebDriver]:
    """The browser signed in as kim (again, if a test before signed out or forged the
    cookie), in Korean, at desktop size; left that way afterwards."""
    driver.set_window_size(*DESKTOP)
    driver.get(stack.url + "/ui/")
    if "/ui/login" in driver.current_url:
        sign_in(driver, "kim")
    yield driver
    driver.set_window_size(*DESKTOP)
    driver.delete_cookie(LANG_COOKIE)


# --- browser steps ---------------------------------------------------------------------


def wait(driver: WebDriver, seconds: float = TIMEOUT) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, seconds)


def shown(driver: WebDriver, css: str, seconds: float = TIMEOUT) -> WebElement:
    """The element, once it is visible."""
    found: WebElement = wait(driver, seconds).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, css))
    )
    return found


def click(driver: WebDriver, css: str) -> None:
    wait(driver).until(ec.element_to_be_clickable((By.CSS_SELECTOR, css))).click()


def landed(driver: WebDriver, fragment: str) -> None:
    """Wait until the browser is on a URL containing ``fragment`` (a form's redirect)."""
    wait(driver).until(ec.url_contains(fragment))


def lang(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "html").get_attribute("lang"))


def heading(driver: WebDriver) -> str:
    return str(shown(driver, "main h1").text)


def sign_in(driver: WebDriver, person: str, password: str = PASSWORD) -> None:
    """Fill the sign-in form on the current (sign-in) page and land on the console."""
    person_field = shown(driver, "#login-person")
    person_field.clear()
    person_field.send_keys(person)
    driver.find_element(By.ID, "login-password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
    wait(driver).until(lambda d: "/ui/login" not in d.current_url)
    shown(driver, "header .me")


def session_cookie(driver: WebDriver) -> str:
    cookie = driver.get_cookie(SESSION_COOKIE)
    assert cookie is not None, "no session cookie in the browser"
    return str(cookie["value"])


def csrf_of(driver: WebDriver) -> str:
    """The CSRF token the current page's forms carry."""
    token = driver.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
    assert token
    return str(token)


# --- checks on the receiver and the fakes ----------------------------------------------


def timeline(view: dict[str, Any], event: str) -> list[dict[str, Any]]:
    return [e for e in view["timeline"] if e["event"] == event]


def jira_key(stack: Stack, incident_id: int) -> str:
    """The incident's JIRA key, once the outbox has created the issue."""
    key = until(
        lambda: stack.incident(incident_id)["jira_key"], SETTLE, "the JIRA issue", stack.logs
    )
    return str(key)


def jira_comments(stack: Stack, key: str) -> list[str]:
    return stack.host.call(lambda: stack.jira.comments(key))


def slack_updates(stack: Stack) -> list[tuple[str, str]]:
    """Every chat.update the fake Slack took: (channel, the new text and blocks as JSON)."""

    def read() -> list[tuple[str, str]]:
        return [
            (str(m["channel"]), json.dumps([u["text"], u["blocks"]], ensure_ascii=False))
            for m in stack.slack.messages
            for u in m["updates"]
        ]

    return stack.host.call(read)


def issues_of(stack: Stack, incident_id: int) -> list[dict[str, Any]]:
    """The fake JIRA's issues labelled as this incident's."""

    def read() -> list[dict[str, Any]]:
        return [
            {"key": issue["key"], "fields": dict(issue["fields"])}
            for issue in stack.jira.issues.values()
            for label in issue["fields"]["labels"]
            if (found := RECEIVER_LABEL.fullmatch(label))
            and found[1] == "incident"
            and int(found[3]) == incident_id
        ]

    return stack.host.call(read)


def no_jira_pending(stack: Stack) -> None:
    """Wait until the JIRA lane has nothing pending, so the next JIRA request is ours."""
    until(
        lambda: not [d for d in stack.deliveries(status="pending") if d["channel"] == "jira"],
        SETTLE,
        "the JIRA deliveries settled",
        stack.logs,
    )


# --- the tests -------------------------------------------------------------------------


def test_sign_in_then_a_new_incident_appears_and_is_acknowledged_and_mitigated(
    stack: Stack, driver: WebDriver, screens: Screens
) -> None:
    driver.set_window_size(*DESKTOP)
    driver.get(stack.url + "/ui/login")
    driver.delete_all_cookies()
    driver.get(stack.url + "/ui/")  # signed out: sent to the sign-in page
    landed(driver, "/ui/login?next=")
    assert lang(driver) == "ko"
    assert heading(driver) == "로그인"
    screens.shot(driver, "login")

    sign_in(driver, "kim")
    assert driver.current_url == stack.url + "/ui/"
    assert heading(driver) == ko("incidents.title")
    assert driver.find_element(By.CSS_SELECTOR, "header .me").text == KIM
    cookie = driver.get_cookie(SESSION_COOKIE)
    assert cookie is not None and cookie["httpOnly"] and cookie.get("sameSite") == "Lax"
    assert PASSWORD not in cookie["value"]

    # A new alert while the list is open: its row appears without a reload.
    driver.execute_script("window.consoleTestMarker = 'same page'")
    incident_id = stack.fire()  # KISTokenRefreshFailed on kis-gateway: P1, api, backend
    row = shown(driver, f'tr[data-id="{incident_id}"]', ROW_WAIT)
    assert driver.execute_script("return window.consoleTestMarker") == "same page"
    assert "fresh" in str(row.get_attribute("class"))  # added by the page's polling
    assert "P1" in row.text and "backend" in row.text
    live = driver.find_element(By.ID, "live-status").text
    assert live == ko("incidents.updated").format(count=1)
    screens.shot(driver, "incidents")

    row.find_element(By.CSS_SELECTOR, "td.summary a").click()
    landed(driver, f"/ui/incidents/{incident_id}")
    assert driver.find_element(By.ID, "incident-status").text == ko("status.triggered")
    click(driver, "#do-acknowledge")
    landed(driver, "done=acknowledge.applied")
    assert shown(driver, "p.notice[role=status]").text == ko("done.acknowledge.applied")
    assert driver.find_element(By.ID, "incident-status").text == ko("status.acknowledged")
    assert driver.find_element(By.ID, "acked-by").text.startswith(KIM)
    acked = driver.find_element(By.CSS_SELECTOR, '#timeline li[data-event="acknowledged"]')
    assert acked.find_element(By.CSS_SELECTOR, ".by").text == KIM
    assert not driver.find_elements(By.ID, "do-acknowledge")  # no second ack offered

    view = stack.incident(incident_id)
    assert (view["status"], view["acknowledged_by"]) == ("acknowledged", "kim")
    assert [e["by"] for e in timeline(view, "acknowledged")] == ["kim"]

    # The outbox tells JIRA (a comment) and Slack (the alerts message updated in place).
    key = jira_key(stack, incident_id)
    [comment] = until(
        lambda: [c for c in jira_comments(stack, key) if c.startswith(f"Acknowledged by {KIM}")],
        SETTLE,
        "the ack comment in JIRA",
        stack.logs,
    )
    assert "Escalation stopped" in comment
    updates = until(
        lambda: [
            channel
            for channel, content in slack_updates(stack)
            if f"#{incident_id} · Acknowledged by {KIM}" in content
        ],
        SETTLE,
        "the Slack message updated with the ack",
        stack.logs,
    )
    assert "#beta-alert" in updates, updates
    driver.refresh()  # the JIRA link, now that the issue exists
    assert shown(driver, "#jira-link").text == key
    screens.shot(driver, "incident")

    # The same page on a phone: nothing wider than the screen, the buttons within reach.
    driver.set_window_size(*PHONE)
    width = driver.execute_script("return window.innerWidth")
    assert driver.execute_script("return document.documentElement.scrollWidth") <= width
    button = shown(driver, "#do-mitigate")
    assert button.rect["x"] >= 0 and button.rect["x"] + button.rect["width"] <= width
    screens.shot(driver, "incident-phone")
    driver.set_window_size(*DESKTOP)

    click(driver, "#do-mitigate")
    landed(driver, "done=mitigate.applied")
    assert ko("status.mitigated") in driver.find_element(By.ID, "incident-status").text
    view = stack.incident(incident_id)
    assert (view["status"], view["mitigated_by"]) == ("acknowledged", "kim")
    assert [e["by"] for e in timeline(view, "mitigated")] == ["kim"]


def test_a_report_is_triaged_from_the_reports_page(
    stack: Stack, kim: WebDriver, screens: Screens
) -> None:
    email = "sky.tester@example.com"
    filed = stack.http.request("POST", "/api/v1/reports", json_body={
        "title": "차트 선 색이 배경과 같아요",
        "description": "보조지표 선이 배경색과 같아 보이지 않습니다.",
        "environment": {"os": "Windows 11", "browser": "Chrome 131"},
        "reporter": {"name": "김하늘", "email": email},
    })  # fmt: skip
    assert filed.status == 201, filed.text
    incident_id = int(filed.json()["id"])
    before = stack.incident(incident_id)
    assert before["source"] == "report" and before["severity"] != "P2"

    kim.get(stack.url + "/ui/reports")
    card = shown(kim, f"#report-{incident_id}")
    assert "차트 선 색이 배경과 같아요" in card.text
    assert filed.json()["reference"] in card.text
    assert ko("reports.untriaged") in card.text
    assert email not in kim.page_source  # how to reach the reporter stays out of the console
    screens.shot(kim, "reports")

    Select(kim.find_element(By.ID, f"sev-{incident_id}")).select_by_value("P2")
    Select(kim.find_element(By.ID, f"cat-{incident_id}")).select_by_value("ui")
    Select(kim.find_element(By.ID, f"who-{incident_id}")).select_by_value("choi")
    click(kim, f"#triage-{incident_id}")
    landed(kim, "done=triage.applied")
    card = shown(kim, f"#report-{incident_id}")
    assert ko("reports.untriaged") not in card.text
    assert email not in kim.page_source

    view = stack.incident(incident_id)
    assert (view["severity"], view["category"], view["team"]) == ("P2", "ui", "frontend")
    [triaged] = timeline(view, "triaged")
    assert triaged["by"] == "kim" and triaged.get("assignee") == "choi", triaged

    kim.get(f"{stack.url}/ui/incidents/{incident_id}")
    assert shown(kim, "#assignee").text == "Choi Yuna"
    assert email not in kim.page_source


def test_the_on_call_page_and_the_route_test(
    stack: Stack, kim: WebDriver, screens: Screens
) -> None:
    kim.get(stack.url + "/ui/oncall")
    assert heading(kim) == ko("oncall.title")
    backend = kim.find_element(By.XPATH, "//section[h2[@id='rot-backend']]")
    now = backend.find_element(By.CSS_SELECTOR, "p.now")
    assert now.find_element(By.CSS_SELECTOR, ".now-person").text == KIM  # the override
    assert ko("oncall.override") in now.text
    screens.shot(kim, "oncall")

    kim.get(stack.url + "/ui/route-test")
    kim.find_element(By.ID, "r-labels").send_keys(
        "alertname=KISTokenRefreshFailed\nservice=kis-gateway"
    )
    kim.find_element(By.CSS_SELECTOR, "#route-form button[type=submit]").click()
    result = shown(kim, "#route-result")
    assert "kis-token-refresh-failure" in result.text and "P1" in result.text
    assert KIM in result.find_element(By.CSS_SELECTOR, ".route-pages").text
    screens.shot(kim, "route-test")


def test_a_maintenance_window_is_created_and_ended(
    stack: Stack, kim: WebDriver, screens: Screens
) -> None:
    zone = digest_zone(load_rules(stack.rules))  # the console's times are the team's
    starts = datetime.now(UTC).astimezone(zone).replace(second=0, microsecond=0)
    ends = starts + timedelta(hours=2)
    reason = f"KIS 토큰 교체 점검 {starts:%H%M}"
    kim.get(stack.url + "/ui/maintenance")
    kim.find_element(By.ID, "w-matchers").send_keys('service="kis-gateway"')
    for field, moment in (("w-starts", starts), ("w-ends", ends)):
        kim.execute_script(
            "document.getElementById(arguments[0]).value = arguments[1]",
            field,
            moment.strftime("%Y-%m-%dT%H:%M"),
        )
    kim.find_element(By.ID, "w-reason").send_keys(reason)
    click(kim, "#w-create")
    landed(kim, "done=created")

    [window] = [
        w for w in stack.http.api("/api/v1/maintenance")["windows"] if w["reason"] == reason
    ]
    assert (window["source"], window["by"], window["active"]) == ("api", "kim", True)
    assert window["matchers"] == ['service="kis-gateway"']
    assert datetime.fromisoformat(window["ends_at"]) == ends
    row = kim.find_element(By.XPATH, f"//tr[.//button[@id='end-{window['id']}']]")
    assert "active" in str(row.get_attribute("class"))
    assert ko("maintenance.active") in row.text and reason in row.text and KIM in row.text
    screens.shot(kim, "maintenance")

    click(kim, f"#end-{window['id']}")
    landed(kim, "done=ended")
    assert not kim.find_elements(By.ID, f"end-{window['id']}")
    assert reason not in kim.find_element(By.CSS_SELECTOR, "table.windows").text
    listed = stack.http.api("/api/v1/maintenance")["windows"]
    assert [w for w in listed if w["reason"] == reason and w["active"]] == []


def test_a_dead_letter_is_retried_from_the_console(
    stack: Stack, kim: WebDriver, screens: Screens
) -> None:
    # JIRA refuses to create issues with a 400, for good: permanent, so each JIRA delivery of
    # the new incident that would create its issue (the open's, and step 0's comment) dies.
    no_jira_pending(stack)
    stack.host.call(
        lambda: stack.jira.fail_next(
            400, count=10**6, path_contains="/rest/api/2/issue", method="POST"
        )
    )
    try:
        incident_id = stack.fire(service="console-dead-letter")

        def all_dead() -> list[Any]:
            jira = [d for d in stack.deliveries(incident_id) if d["channel"] == "jira"]
            done = jira and all(d["status"] == "dead" for d in jira)
            return sorted(jira, key=lambda d: int(d["id"])) if done else []

        dead, *others = until(all_dead, SETTLE, "the JIRA deliveries dead-lettered", stack.logs)
    finally:
        stack.host.call(stack.jira.clear_failures)  # JIRA is healthy again
    assert "400" in str(dead["last_error"]), dead
    assert issues_of(stack, incident_id) == []
    assert stack.incident(incident_id)["jira_key"] is None

    kim.get(stack.url + "/ui/deliveries")
    row = shown(kim, f"#dead-row-{dead['id']}")
    assert "jira" in row.text
    screens.shot(kim, "deliveries")
    click(kim, f"#retry-{dead['id']}")
    landed(kim, "done=retry.applied")
    assert shown(kim, "p.notice[role=status]").text == ko("done.retry.applied")
    assert not kim.find_elements(By.ID, f"dead-row-{dead['id']}")
    for other in others:  # only the one retried
        assert kim.find_elements(By.ID, f"dead-row-{other['id']}")

    until(
        lambda: [d for d in stack.deliveries(incident_id) if d["id"] == dead["id"]
                 and d["status"] == "sent"],
        SETTLE,
        "the retried delivery sent",
        stack.logs,
    )  # fmt: skip
    [issue] = issues_of(stack, incident_id)
    assert jira_key(stack, incident_id) == issue["key"]
    [retried] = timeline(stack.incident(incident_id), "delivery_retried")
    assert (retried["by"], retried["delivery"]) == ("kim", dead["id"]), retried


def test_the_language_switch_sticks(stack: Stack, kim: WebDriver, screens: Screens) -> None:
    kim.get(stack.url + "/ui/")
    assert lang(kim) == "ko" and heading(kim) == ko("incidents.title")
    switch = kim.find_element(By.CSS_SELECTOR, "a.lang")
    assert switch.get_attribute("hreflang") == "en" and switch.text == "English"
    switch.click()
    wait(kim).until(lambda d: lang(d) == "en")
    assert kim.current_url == stack.url + "/ui/"
    assert heading(kim) == "Incidents"
    assert kim.find_element(By.CSS_SELECTOR, 'nav a[href="/ui/"]').text == "Incidents"
    screens.shot(kim, "incidents-en")

    kim.get(stack.url + "/ui/oncall")  # the next page: still English, whatever Chromium asks
    assert lang(kim) == "en" and heading(kim) == en("oncall.title")
    kim.find_element(By.CSS_SELECTOR, "a.lang[hreflang=ko]").click()
    wait(kim).until(lambda d: lang(d) == "ko")
    assert heading(kim) == ko("oncall.title")


def test_a_form_without_its_csrf_token_changes_nothing(stack: Stack, kim: WebDriver) -> None:
    incident_id = stack.fire(service="console-csrf")
    kim.get(f"{stack.url}/ui/incidents/{incident_id}")
    shown(kim, "#do-acknowledge")
    cookies = {SESSION_COOKIE: session_cookie(kim)}
    path = f"/ui/incidents/{incident_id}/act"

    for form in ({"action": "acknowledge"}, {"action": "acknowledge", "csrf": "x" * 43}):
        refused = stack.http.request("POST", path, form=form, cookies=cookies)
        assert refused.status == 403, refused.text[:300]
        assert 'id="error-message"' in refused.text and ko("error.csrf") in refused.text
    view = stack.incident(incident_id)
    assert (view["status"], view["acknowledged_by"]) == ("triggered", None)
    assert timeline(view, "acknowledged") == []

    # The same cookie with the page's token does act: the refusal was the token's.
    done = stack.http.request("POST", path, form={"action": "acknowledge", "csrf": csrf_of(kim)},
                              cookies=cookies)  # fmt: skip
    assert done.status == 303
    assert done.headers["Location"] == f"/ui/incidents/{incident_id}?done=acknowledge.applied"
    assert stack.incident(incident_id)["acknowledged_by"] == "kim"


def test_a_cookie_signed_with_another_secret_leads_to_sign_in(stack: Stack, kim: WebDriver) -> None:
    real = session_cookie(kim)
    forged = forge(real, "another-secret-of-at-least-32-characters")
    assert stack.http.request("GET", "/ui/", cookies={SESSION_COOKIE: real}).status == 200
    refused = stack.http.request("GET", "/ui/", cookies={SESSION_COOKIE: forged})
    assert refused.status == 303
    assert refused.headers["Location"].startswith("/ui/login?next=")

    kim.delete_cookie(SESSION_COOKIE)
    kim.add_cookie({"name": SESSION_COOKIE, "value": forged, "path": "/ui/", "httpOnly": True})
    kim.get(stack.url + "/ui/")
    landed(kim, "/ui/login")
    assert heading(kim) == "로그인"
    assert not kim.find_elements(By.CSS_SELECTOR, "header .me")


def test_the_sso_header_is_honoured_only_from_a_trusted_proxy(stack: Stack) -> None:
    def sso(name: str, proxies: str) -> ReceiverProcess:
        return ReceiverProcess(
            name, f"sqlite:///{stack.workdir}/{name}.db", stack.jira, stack.slack, stack.workdir,
            rules=str(stack.rules), ui_secret=SECRET, ui_trusted_header="X-Forwarded-User",
            ui_trusted_proxies=proxies,
        )  # fmt: skip

    untrusted, trusted = sso("sso-untrusted", "10.0.0.0/8"), sso("sso-trusted", "127.0.0.1")
    try:
        start_receivers(stack.host, untrusted, trusted)
        header = {"X-Forwarded-User": "kim"}

        refused = Http(untrusted.url).request("GET", "/ui/", headers=header)
        assert refused.status == 403, refused.text[:300]
        assert ko("error.untrusted_header") in refused.text
        assert not _session_set(refused), refused.cookies()
        plain = Http(untrusted.url).request("GET", "/ui/")  # without it: just signed out
        assert plain.status == 303 and plain.headers["Location"].startswith("/ui/login")

        honoured = Http(trusted.url).request("GET", "/ui/", headers=header)
        assert honoured.status == 200, honoured.text[:300]
        assert KIM in honoured.text
        [cookie] = _session_set(honoured)
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    finally:
        stop_receivers(stack.host, untrusted, trusted)


def _session_set(answer: Answer) -> list[str]:
    return [c for c in answer.cookies() if c.startswith(f"{SESSION_COOKIE}=")]
