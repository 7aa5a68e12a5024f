"""The fake JIRA server against the real ``jira`` client (run in a worker thread)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import aiohttp
import pytest
import requests
from jira import JIRA, JIRAError

from tests.fakes.jira import FakeJira, JqlError, Transition, parse_jql

T = TypeVar("T")

VALID: dict[str, Any] = {
    "project": {"key": "OPS"},
    "issuetype": {"name": "Incident"},
    "priority": {"name": "High"},
    "summary": "KISTokenRefreshFailed on kis-gateway",
    "description": "token refresh failing",
    "labels": ["alert-fp-0123abcd", "receiver"],
}


def connect(url: str, **kwargs: Any) -> JIRA:
    """The client as a service would build it, without the client's own retries."""
    return JIRA(url, max_retries=0, get_server_info=True, **kwargs)


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def jira_error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> JIRAError:
    with pytest.raises(JIRAError) as caught:
        await call(fn, *args, **kwargs)
    return caught.value


@pytest.fixture
async def fake() -> AsyncIterator[FakeJira]:
    async with FakeJira() as server:
        yield server


@pytest.fixture
async def cloud() -> AsyncIterator[FakeJira]:
    async with FakeJira(cloud=True) as server:
        yield server


@pytest.fixture
async def client(fake: FakeJira) -> AsyncIterator[JIRA]:
    jira = await call(connect, fake.url)
    yield jira
    jira.close()  # type: ignore[no-untyped-call]


@pytest.fixture
async def cloud_client(cloud: FakeJira) -> AsyncIterator[JIRA]:
    jira = await call(connect, cloud.url)
    yield jira
    jira.close()  # type: ignore[no-untyped-call]


async def raw(
    fake: FakeJira, method: str, path: str, **kwargs: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, fake.url + path, **kwargs) as response,
    ):
        body = await response.json(content_type=None) if await response.read() else {}
        return response.status, body, dict(response.headers)


# ------------------------------------------------------------------ server info


async def test_server_info_server_and_cloud(client: JIRA, cloud_client: JIRA) -> None:
    server = await call(client.server_info)
    assert server["deploymentType"] == "Server"
    assert server["versionNumbers"] == [9, 12, 0]
    assert not client._is_cloud
    info = await call(cloud_client.server_info)
    assert info["deploymentType"] == "Cloud"
    assert info["versionNumbers"] == [1000, 0, 0]
    assert cloud_client._is_cloud


# ----------------------------------------------------------------------- create


async def test_create_and_read_back(fake: FakeJira, client: JIRA) -> None:
    issue = await call(client.create_issue, fields=dict(VALID))
    assert issue.key == "OPS-1"
    again = await call(client.issue, "OPS-1")
    assert again.id == issue.id
    assert again.fields.summary == VALID["summary"]
    assert again.fields.description == "token refresh failing"
    assert again.fields.project.key == "OPS"
    assert again.fields.issuetype.name == "Incident"
    assert again.fields.priority.name == "High"
    assert again.fields.labels == ["alert-fp-0123abcd", "receiver"]
    assert again.fields.status.name == "Open"
    assert again.self == f"{fake.url}/rest/api/2/issue/{issue.id}"

    stored = fake.issues["OPS-1"]
    assert stored["fields"]["priority"] == "High"
    assert stored["status"] == "Open"
    assert fake.issue_by_label("alert-fp-0123abcd") is stored
    assert fake.issue_by_label("nope") is None
    creates = fake.requests_to("POST", "/rest/api/2/issue")
    assert [r.json["fields"]["summary"] for r in creates] == [VALID["summary"]]


async def test_create_by_project_key_and_type_name_and_default_priority(
    fake: FakeJira, client: JIRA
) -> None:
    # The client looks the project and issue type up (GET project/OPS, project/{id}).
    issue = await call(client.create_issue, project="SEC", summary="s", issuetype="Task")
    assert issue.key == "SEC-1"
    assert issue.fields.issuetype.name == "Task"
    assert issue.fields.priority.name == "Medium"
    assert fake.issues["SEC-1"]["fields"]["labels"] == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"summary": None}, "You must specify a summary of the issue."),
        ({"summary": "   "}, "You must specify a summary of the issue."),
        ({"project": {"key": "NOPE"}}, "valid project is required"),
        ({"issuetype": {"name": "Story"}}, "valid issue type is required"),
        ({"priority": {"name": "Urgent"}}, "Priority name 'Urgent' is not valid"),
        (
            {"summary": "line one\nline two"},
            "The summary is invalid because it contains newline characters.",
        ),
        ({"summary": "x" * 256}, "Summary must be less than 255 characters."),
        ({"labels": ["x y"]}, "The label 'x y' contains spaces which is invalid."),
        (
            {"labels": ["l" * 256]},
            f"The label '{'l' * 256}' exceeds the maximum length for a single label of 255 "
            "characters.",
        ),
        (
            {"description": "d" * 32768},
            "The entered text is too long. It exceeds the allowed limit of 32,767 characters.",
        ),
        (
            {"customfield_10010": "x"},
            "Field 'customfield_10010' cannot be set. It is not on the appropriate screen, "
            "or unknown.",
        ),
    ],
)
async def test_create_validation(
    fake: FakeJira, client: JIRA, change: dict[str, Any], message: str
) -> None:
    fields = {**VALID, **change}
    fields = {k: v for k, v in fields.items() if v is not None}
    error = await jira_error(client.create_issue, fields=fields)
    assert error.status_code == 400
    assert error.text == message
    assert fake.issues == {}


async def test_limits_are_inclusive(fake: FakeJira, client: JIRA) -> None:
    fields = {**VALID, "summary": "s" * 255, "labels": ["l" * 255], "description": "d" * 32767}
    issue = await call(client.create_issue, fields=fields)
    assert fake.issues[issue.key]["fields"]["summary"] == "s" * 255


async def test_create_without_project_reports_every_field(fake: FakeJira) -> None:
    status, body, _ = await raw(fake, "POST", "/rest/api/2/issue", json={"fields": {}})
    assert status == 400
    assert body == {
        "errorMessages": [],
        "errors": {
            "project": "project is required",
            "summary": "You must specify a summary of the issue.",
            "issuetype": "issue type is required",
        },
    }
    status, body, _ = await raw(
        fake, "POST", "/rest/api/2/issue", json={"fields": {"summary": "s"}}
    )
    assert status == 400
    assert body["errors"] == {
        "project": "project is required",
        "issuetype": "issue type is required",
    }


async def test_malformed_and_unknown_requests(fake: FakeJira) -> None:
    status, body, _ = await raw(
        fake,
        "POST",
        "/rest/api/2/issue",
        data=b"{nope",
        headers={"Content-Type": "application/json"},
    )
    assert status == 400
    assert body["errorMessages"]
    status, _, _ = await raw(fake, "POST", "/rest/api/2/issue", data=b"{}")
    assert status == 415
    status, body, _ = await raw(fake, "GET", "/rest/api/2/nothing-here")
    assert status == 404
    assert body["message"].startswith("null for uri")
    status, body, _ = await raw(fake, "GET", "/rest/api/2/issue/OPS-99")
    assert (status, body["errorMessages"]) == (404, ["Issue Does Not Exist"])


# ------------------------------------------------------------- edit and links


async def test_update_fields_and_labels(fake: FakeJira, client: JIRA) -> None:
    issue = await call(client.create_issue, fields=dict(VALID))
    await call(issue.update, fields={"summary": "renamed"}, labels=[{"add": "extra"}])
    assert issue.fields.summary == "renamed"
    assert issue.fields.labels == ["alert-fp-0123abcd", "receiver", "extra"]
    await call(issue.update, fields={"labels": ["only"], "priority": {"name": "Low"}})
    assert fake.issues[issue.key]["fields"]["labels"] == ["only"]
    assert fake.issues[issue.key]["fields"]["priority"] == "Low"
    error = await jira_error(issue.update, fields={"summary": "a\nb"})
    assert (error.status_code, error.text) == (
        400,
        "The summary is invalid because it contains newline characters.",
    )
    error = await jira_error(issue.update, fields={"labels": ["has space"]})
    assert error.text == "The label 'has space' contains spaces which is invalid."


async def test_issue_link(fake: FakeJira, client: JIRA) -> None:
    first = await call(client.create_issue, fields=dict(VALID))
    second = await call(client.create_issue, fields={**VALID, "project": {"key": "SEC"}})
    await call(client.create_issue_link, "Relates", first.key, second.key)
    assert fake.issues["OPS-1"]["links"] == fake.issues["SEC-1"]["links"]
    assert fake.issues["OPS-1"]["links"][0]["type"] == "Relates"
    linked = await call(client.issue, "SEC-1")
    assert linked.fields.issuelinks[0].inwardIssue.key == "OPS-1"
    error = await jira_error(client.create_issue_link, "Relates", "OPS-1", "OPS-77")
    assert error.status_code == 404


# ---------------------------------------------------------------------- comments


async def test_comments(fake: FakeJira, client: JIRA) -> None:
    issue = await call(client.create_issue, fields=dict(VALID))
    comment = await call(client.add_comment, issue.key, "Alert fired again at 01:05")
    assert comment.body == "Alert fired again at 01:05"
    await call(client.add_comment, issue, "second")
    assert fake.comments(issue.key) == ["Alert fired again at 01:05", "second"]
    listed = await call(client.comments, issue.key)
    assert [c.body for c in listed] == fake.comments(issue.key)

    error = await jira_error(client.add_comment, issue.key, "   ")
    assert (error.status_code, error.text) == (400, "Comment body can not be empty!")
    error = await jira_error(client.add_comment, issue.key, "c" * 32768)
    assert error.status_code == 400
    assert error.text == (
        "The entered text is too long. It exceeds the allowed limit of 32,767 characters."
    )
    error = await jira_error(client.add_comment, "OPS-404", "x")
    assert error.status_code == 404


# ------------------------------------------------------------------- transitions


async def test_transitions_by_id(fake: FakeJira, client: JIRA) -> None:
    issue = await call(client.create_issue, fields=dict(VALID))
    moves = await call(client.transitions, issue.key)
    assert [(t["id"], t["name"], t["to"]["name"]) for t in moves] == [("31", "Done", "Done")]

    error = await jira_error(client.transition_issue, issue.key, "41")
    assert (error.status_code, error.text) == (
        400,
        "Transition id '41' is not valid for this issue.",
    )
    await call(client.transition_issue, issue.key, "31", comment="resolved by receiver")
    assert fake.issues[issue.key]["status"] == "Done"
    assert fake.comments(issue.key) == ["resolved by receiver"]
    done = await call(client.issue, issue.key)
    assert done.fields.status.name == "Done"
    assert done.fields.status.statusCategory.key == "done"
    assert done.fields.resolution is not None
    assert done.fields.resolution.name == "Done"

    assert [t["id"] for t in await call(client.transitions, issue.key)] == ["41"]
    await call(client.transition_issue, issue.key, "41")
    assert fake.issues[issue.key]["status"] == "Reopened"
    assert fake.issues[issue.key]["resolution"] is None
    await call(client.transition_issue, issue.key, "31")
    assert fake.issues[issue.key]["status"] == "Done"


async def test_transition_needs_an_id(fake: FakeJira) -> None:
    key = fake.seed_issue("OPS", labels=["a"])["key"]
    status, body, _ = await raw(
        fake,
        "POST",
        f"/rest/api/2/issue/{key}/transitions",
        json={"transition": {"name": "Done"}},
    )
    assert status == 400
    assert body["errorMessages"] == ["Missing 'transition' identifier"]
    assert fake.issues[key]["status"] == "Open"


async def test_custom_workflow() -> None:
    workflow = {"To Do": [Transition("11", "Start", "In Progress")], "In Progress": []}
    async with FakeJira(workflow=workflow, initial_status="To Do") as fake:
        key = fake.seed_issue()["key"]
        status, _, _ = await raw(
            fake, "POST", f"/rest/api/2/issue/{key}/transitions", json={"transition": {"id": 11}}
        )
        assert status == 204
        assert fake.issues[key]["status"] == "In Progress"


# ------------------------------------------------------------------------ search


async def test_search_by_label_on_server(fake: FakeJira, client: JIRA) -> None:
    await call(client.create_issue, fields=dict(VALID))
    await call(client.create_issue, fields={**VALID, "labels": ["other"]})
    await call(client.create_issue, fields={**VALID, "project": {"key": "SEC"}})
    found = await call(client.search_issues, 'labels = "alert-fp-0123abcd"')
    assert sorted(i.key for i in found) == ["OPS-1", "SEC-1"]
    found = await call(client.search_issues, "labels = alert-fp-0123abcd AND project = OPS")
    assert [i.key for i in found] == ["OPS-1"]
    assert found[0].fields.labels == ["alert-fp-0123abcd", "receiver"]
    assert found.total == 1
    found = await call(client.search_issues, 'labels = "missing"')
    assert list(found) == []
    posted = await call(
        client.search_issues, "labels = receiver AND project = SEC", fields="labels", use_post=True
    )
    assert [(i.key, i.raw["fields"]) for i in posted] == [
        ("SEC-1", {"labels": ["alert-fp-0123abcd", "receiver"]})
    ]
    assert fake.jql_log == [
        'labels = "alert-fp-0123abcd"',
        "labels = alert-fp-0123abcd AND project = OPS",
        'labels = "missing"',
        "labels = receiver AND project = SEC",
    ]
    assert all("/search/jql" not in r.path for r in fake.requests)


async def test_search_with_escapes_and_order(fake: FakeJira, client: JIRA) -> None:
    odd = 'q"uo\\te'
    fake.seed_issue("OPS", labels=[odd])
    fake.seed_issue("OPS", labels=["plain"], status="Done")
    found = await call(client.search_issues, 'labels = "q\\"uo\\\\te"')
    assert [i.fields.labels for i in found] == [[odd]]
    found = await call(
        client.search_issues,
        "project = OPS AND (labels in (plain, other) OR labels = 'q\"uo\\\\te') "
        "AND statusCategory != Done ORDER BY key ASC",
    )
    assert [i.key for i in found] == ["OPS-1"]
    found = await call(client.search_issues, "project = OPS ORDER BY key DESC", maxResults=1)
    assert ([i.key for i in found], found.total) == (["OPS-2"], 2)


@pytest.mark.parametrize(
    ("jql", "message"),
    [
        ('labels = "unterminated', "The quoted string 'unterminated' has not been completed"),
        ("labels = a b", "Expecting either 'OR' or 'AND' but got 'b'"),
        ("labels =", "Expecting either a value, list or function but got the end of the query"),
        ("labels = and", "'and' is a reserved JQL word"),
        ("labels a", "Expecting operator but got 'a'"),
        ("nosuchfield = 1", "Field 'nosuchfield' does not exist"),
        ("labels ~ x", "The operator '~' is not supported by the 'labels' field."),
        ("labels = x#", "The character '#' is a reserved JQL character"),
        ('labels = "a\\qb"', "'\\q' is an illegal JQL escape sequence"),
        ("project = NOPE", "The value 'NOPE' does not exist for the field 'project'."),
        ("(labels = a", "Expecting ')' but got the end of the query"),
    ],
)
async def test_bad_jql_is_400(fake: FakeJira, client: JIRA, jql: str, message: str) -> None:
    fake.seed_issue("OPS", labels=["a"])
    error = await jira_error(client.search_issues, jql)
    assert error.status_code == 400
    assert error.text is not None
    assert message in error.text
    assert fake.jql_log == [jql]


def test_jql_parser() -> None:
    query = parse_jql('labels = "a\\"b\\\\c" AND project = OPS')
    assert repr(query.where).count("Clause") == 2
    assert parse_jql("").where is None
    assert parse_jql("ORDER BY created DESC").order_by == (("created", True),)
    with pytest.raises(JqlError):
        parse_jql("labels = a AND")


async def test_cloud_search_uses_enhanced_search(cloud: FakeJira, cloud_client: JIRA) -> None:
    await call(cloud_client.create_issue, fields=dict(VALID))
    await call(cloud_client.create_issue, fields={**VALID, "labels": ["other"]})
    found = await call(cloud_client.search_issues, 'labels = "alert-fp-0123abcd"')
    assert [i.key for i in found] == ["OPS-1"]
    assert found[0].fields.summary == VALID["summary"]
    paths = [r.path for r in cloud.requests if "/search" in r.path]
    assert paths == ["/rest/api/2/search/jql"]

    posted = await call(
        cloud_client.enhanced_search_issues, "project = OPS", maxResults=1, use_post=True
    )
    assert [i.key for i in posted] == ["OPS-2"]
    assert posted.nextPageToken
    rest = await call(
        cloud_client.enhanced_search_issues,
        "project = OPS",
        nextPageToken=posted.nextPageToken,
        maxResults=1,
    )
    assert ([i.key for i in rest], rest.nextPageToken) == (["OPS-1"], None)

    for path in ("/rest/api/2/search", "/rest/api/3/search"):
        status, body, _ = await raw(cloud, "GET", path, params={"jql": "project = OPS"})
        assert status == 410
        assert body["errorMessages"][0].startswith("The requested API has been removed.")
    status, body, _ = await raw(cloud, "POST", "/rest/api/2/search", json={"jql": "x = 1"})
    assert status == 410

    status, body, _ = await raw(
        cloud, "GET", "/rest/api/3/search/jql", params={"jql": "labels = other"}
    )
    assert (status, body) == (200, {"issues": [{"id": "10001"}], "isLast": True})
    status, body, _ = await raw(
        cloud,
        "POST",
        "/rest/api/3/search/jql",
        json={"jql": "labels = other", "fields": ["summary", "description"]},
    )
    assert body["issues"][0]["fields"]["description"]["type"] == "doc"
    status, body, _ = await raw(cloud, "GET", "/rest/api/3/search/jql", params={"jql": ""})
    assert status == 400
    assert "Unbounded JQL" in body["errorMessages"][0]


async def test_enhanced_search_is_cloud_only(fake: FakeJira) -> None:
    status, _, _ = await raw(fake, "GET", "/rest/api/2/search/jql", params={"jql": "labels = a"})
    assert status == 404
    status, _, _ = await raw(fake, "GET", "/rest/api/3/serverInfo")
    assert status == 404


# ------------------------------------------------------------- failure injection


async def test_injected_503_and_429(fake: FakeJira, client: JIRA) -> None:
    fake.fail_next(503)
    error = await jira_error(client.create_issue, fields=dict(VALID))
    assert error.status_code == 503
    assert fake.issues == {}

    fake.fail_next(429, retry_after=7, path_contains="/comment")
    issue = await call(client.create_issue, fields=dict(VALID))
    error = await jira_error(client.add_comment, issue.key, "x")
    assert error.status_code == 429
    assert error.response is not None
    assert error.response.headers["Retry-After"] == "7"
    assert fake.comments(issue.key) == []

    fake.fail_next(500, count=2, method="GET")
    for _ in range(2):
        assert (await jira_error(client.issue, issue.key)).status_code == 500
    assert (await call(client.issue, issue.key)).key == issue.key


async def test_down_and_up(fake: FakeJira, client: JIRA) -> None:
    fake.down()
    assert (await jira_error(client.server_info)).status_code == 503
    assert (await jira_error(client.search_issues, "labels = a")).status_code == 503
    fake.up()
    assert (await call(client.server_info))["deploymentType"] == "Server"


async def test_create_committed_then_500(fake: FakeJira, client: JIRA) -> None:
    fake.fail_next_create_after_commit()
    error = await jira_error(client.create_issue, fields=dict(VALID))
    assert error.status_code == 500
    assert list(fake.issues) == ["OPS-1"]
    found = await call(client.search_issues, "labels = alert-fp-0123abcd")
    assert [i.key for i in found] == ["OPS-1"]


async def test_create_committed_then_connection_dropped(fake: FakeJira, client: JIRA) -> None:
    fake.fail_next_create_after_commit(mode="drop")
    with pytest.raises(requests.ConnectionError):
        await call(client.create_issue, fields=dict(VALID))
    assert list(fake.issues) == ["OPS-1"]
    fake.drop_next(path_contains="/serverInfo")
    with pytest.raises(requests.ConnectionError):
        await call(client.server_info)
    assert (await call(client.server_info))["deploymentType"] == "Server"


async def test_create_committed_then_hang_times_out(fake: FakeJira) -> None:
    jira = await call(connect, fake.url, timeout=0.3)
    fake.fail_next_create_after_commit(mode="hang", hang_seconds=5)
    with pytest.raises(requests.Timeout):
        await call(jira.create_issue, fields=dict(VALID))
    assert list(fake.issues) == ["OPS-1"]
    jira.close()  # type: ignore[no-untyped-call]


async def test_create_delay_holds_creates_only(fake: FakeJira, client: JIRA) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await call(client.create_issue, fields=dict(VALID))).key == "OPS-1"
    assert loop.time() - started < 0.3  # no delay by default

    fake.create_delay = 0.4  # changed while the server runs
    started = loop.time()
    creating = asyncio.ensure_future(call(client.create_issue, fields=dict(VALID)))
    await asyncio.sleep(0.2)
    assert list(fake.issues) == ["OPS-1"]  # not handled yet
    assert (await call(client.server_info))["deploymentType"] == "Server"  # others unheld
    assert loop.time() - started < 0.4
    assert (await creating).key == "OPS-2"
    assert loop.time() - started >= 0.4
    assert list(fake.issues) == ["OPS-1", "OPS-2"]


async def test_create_delay_cut_short_by_stop() -> None:
    fake = FakeJira(create_delay=30)
    await fake.start()
    jira = await call(connect, fake.url)
    loop = asyncio.get_running_loop()
    started = loop.time()
    creating = asyncio.ensure_future(call(jira.create_issue, fields=dict(VALID)))
    await asyncio.sleep(0.2)
    await fake.stop()
    with pytest.raises(requests.ConnectionError):
        await creating
    assert loop.time() - started < 5
    assert fake.issues == {}
    jira.close()  # type: ignore[no-untyped-call]


# -------------------------------------------------------------------------- auth


async def test_basic_and_bearer_auth() -> None:
    async with FakeJira(user="svc-receiver", token="s3cret") as fake:
        basic = await call(connect, fake.url, basic_auth=("svc-receiver", "s3cret"))
        assert (await call(basic.myself))["name"] == "svc-receiver"
        bearer = await call(connect, fake.url, token_auth="s3cret")
        assert (await call(bearer.create_issue, fields=dict(VALID))).key == "OPS-1"
        for jira in (basic, bearer):
            jira.close()  # type: ignore[no-untyped-call]

        for kwargs in (
            {"basic_auth": ("svc-receiver", "wrong")},
            {"basic_auth": ("someone-else", "s3cret")},
            {"token_auth": "wrong"},
            {},
        ):
            error = await jira_error(connect, fake.url, **kwargs)
            assert error.status_code == 401
        status, body, headers = await raw(fake, "GET", "/rest/api/2/serverInfo")
        assert status == 401
        assert body["errorMessages"]
        assert "WWW-Authenticate" in headers


async def test_attachments_as_jira_takes_them(fake: FakeJira, client: JIRA) -> None:
    issue = await call(client.create_issue, fields=dict(VALID))
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    added = await call(client.add_attachment, issue.key, io.BytesIO(png), "1-screen.png")
    assert (added.filename, added.size, added.mimeType) == ("1-screen.png", len(png), "image/png")
    again = await call(client.issue, issue.key, fields="attachment")
    assert [a.filename for a in again.fields.attachment] == ["1-screen.png"]
    assert fake.issues[issue.key]["attachments"][0]["data"] == png
    url = f"{fake.url}/rest/api/2/issue/{issue.key}/attachments"
    async with aiohttp.ClientSession() as http:
        form = aiohttp.FormData()
        form.add_field("file", b"x", filename="x.txt")
        async with http.post(url, data=form) as refused:  # no X-Atlassian-Token: no-check
            assert refused.status == 403 and "XSRF" in await refused.text()
        token = {"X-Atlassian-Token": "no-check"}
        async with http.post(url, json={"file": "x"}, headers=token) as not_multipart:
            assert not_multipart.status == 415
        empty = aiohttp.FormData()
        empty.add_field("other", b"x", filename="x.txt")
        async with http.post(url, data=empty, headers=token) as no_file:
            assert no_file.status == 400
    assert len(fake.issues[issue.key]["attachments"]) == 1
