"""A headless Chromium driven by Selenium: Debian's chromium and chromedriver, nothing
downloaded. Missing, the tests fail and say what to install (.ci/run installs them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Page loads, scripts and every explicit wait of these tests are bounded by this.
TIMEOUT = 20


@contextmanager
def chromium(width: int = 1280, height: int = 1000) -> Iterator[WebDriver]:
    """A headless Chromium in Korean (as the team's browsers are), quit on leaving whatever
    happened; fails the test, saying what to install, when Debian's packages are missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: the browser tests need Debian's chromium and "
            "chromedriver (apt-get install -y chromium chromium-driver; .ci/run does)"
        )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--lang=ko-KR"):  # fmt: skip
        options.add_argument(argument)
    # Headless Chromium ignores --lang for Accept-Language (it sends en-US): the preference
    # is what sets the header and navigator.languages.
    options.add_experimental_option("prefs", {"intl.accept_languages": "ko-KR,ko"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(TIMEOUT)
        driver.set_script_timeout(TIMEOUT)
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """A fresh headless Chromium for one test, quit after it whatever happened."""
    with chromium() as driver:
        yield driver


def origin(client: TestClient[Any, web.Application]) -> str:
    """The origin a browser gives the pages of this test server."""
    return str(client.server.make_url("/")).rstrip("/")
