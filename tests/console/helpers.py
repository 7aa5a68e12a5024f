"""Signing in to the console as a browser does: the form's token, the session cookie."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from receiver.api.keys import CLOCK, STORE
from receiver.console.passwords import hash_password

PASSWORD = "correct horse battery staple"
_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')

Client = TestClient[Any, web.Application]


def token_of(html: str) -> str:
    """The CSRF token of a page's forms."""
    found = _TOKEN.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


async def set_password(client: Client, person: str, password: str = PASSWORD) -> None:
    app = client.app
    assert app is not None
    await app[STORE].set_password(person, hash_password(password), app[CLOCK]())


async def sign_in(
    client: Client, person: str = "kim", password: str = PASSWORD, **headers: str
) -> Any:
    """Post the sign-in form; the response (a 303 when it worked), not followed."""
    form = await client.get("/ui/login", headers=headers)
    token = token_of(await form.text())
    return await client.post(
        "/ui/login",
        data={"csrf": token, "person": person, "password": password, "next": "/ui/"},
        allow_redirects=False,
        headers=headers,
    )


async def signed_in(client: Client, person: str = "kim") -> str:
    """Give ``person`` a password and sign in; the session's CSRF token."""
    await set_password(client, person)
    answer = await sign_in(client, person)
    assert answer.status == 303, await answer.text()
    page = await client.get("/ui/")
    assert page.status == 200
    return token_of(await page.text())
