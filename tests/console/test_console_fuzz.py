"""Any form a browser (or anyone) can post to the console, with a valid session and token:
answered with a page, never a 5xx; a refusal leaves every row alone."""

from __future__ import annotations

from functools import cache

from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from receiver.api.keys import CLOCK, STORE
from receiver.console.passwords import hash_password
from tests.conftest import AUTH, ClientFactory
from tests.console.helpers import PASSWORD, Client, sign_in, token_of
from tests.fuzzing import TEXT, fuzz, stored
from tests.helpers import alert, webhook

PATHS = (
    "/ui/incidents/1/act",
    "/ui/incidents/1/note",
    "/ui/incidents/1/reassign",
    "/ui/incidents/1/link",
    "/ui/incidents/1/retry",
    "/ui/incidents/x/act",
    "/ui/incidents/99999999999999999999/note",
    "/ui/reports/1/triage",
    "/ui/reports/-1/triage",
    "/ui/maintenance",
    "/ui/maintenance/1/end",
    "/ui/maintenance/abc/end",
    "/ui/deliveries/1/retry",
    "/ui/deliveries/0/retry",
    "/ui/route-test",
    "/ui/deliveries/%C2%B2/retry",
    "/ui/reports/%C2%B2/triage",
    "/ui/maintenance/%E2%91%A0/end",
)
FIELDS = ("action", "text", "to", "severity", "category", "assignee", "matchers", "starts",
          "ends", "reason", "labels", "at")  # fmt: skip
VALUES = TEXT | st.sampled_from(
    ["acknowledge", "escalate", "kim", "P0", "api", "#1", "0", "²", "①", "2026-12-06T25:00",
     "2026-12-06T10:00", 'service="x"', "a=b\nc", "=", "9" * 30, "\x00", " " * 5000]
)  # fmt: skip


@cache
def _hash() -> str:
    return hash_password(PASSWORD)


# One signed-in client for every example of a test (the factory is the test's own).
_SHARED: list[tuple[ClientFactory, Client, str]] = []


async def _client(make_client: ClientFactory) -> tuple[Client, str]:
    if _SHARED and _SHARED[0][0] is make_client:
        return _SHARED[0][1], _SHARED[0][2]
    _SHARED.clear()
    client = await make_client(ui_secret=SecretStr("f" * 40), run_worker=False)
    assert (await client.post("/webhook", json=webhook(alert()), headers=AUTH)).status == 200
    app = client.app
    assert app is not None
    await app[STORE].set_password("kim", _hash(), app[CLOCK]())
    assert (await sign_in(client)).status == 303
    token = token_of(await (await client.get("/ui/")).text())
    _SHARED.append((make_client, client, token))
    return client, token


@fuzz(150)
@given(
    path=st.sampled_from(PATHS),
    form=st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6),
    with_token=st.booleans(),
)
async def test_any_form_is_answered_without_a_server_error(
    make_client: ClientFactory, path: str, form: dict[str, str], with_token: bool
) -> None:
    client, token = await _client(make_client)
    before = stored(client)
    data = {**form, "csrf": token} if with_token else form
    async with client.post(path, data=data, allow_redirects=False) as answer:
        body = await answer.text()
        assert answer.status < 500, (answer.status, body[:300])
        assert answer.status in (200, 303, 400, 404, 403), answer.status
        if answer.status != 303:
            assert answer.content_type == "text/html"
    if not with_token:
        assert answer.status == 403
    if answer.status >= 400:
        assert stored(client) == before, f"{path} answered {answer.status} and changed the store"
