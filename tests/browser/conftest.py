"""The console in a real browser: Debian's Chromium driven by Playwright (no browser download) against
the whole system on random loopback ports (tests/system's Stack, two transcoders)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mpr_devstack.stack import DEV_API_TOKEN, Stack

pytestmark = pytest.mark.system

CHROMIUM = Path(os.environ.get("MPR_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
PART_BYTES = 5 * MiB  # S3's smallest part: a few MB make a multipart upload

STACK_ENV = {
    "TRANSCODER_PROGRESS_INTERVAL": "0.2",  # progress often enough to watch it move
    "API_AUTH_FAILURES_PER_MINUTE": "600",  # wrong sign-ins on purpose, all from 127.0.0.1
    "TRANSCODER_ACK_WAIT": "6",
    "TRANSCODER_RETRY_BASE": "0.5",
    "TRANSCODER_RETRY_MAX": "2",
    "TRANSCODER_MAX_DELIVER": "2",
    "TRANSCODER_SHUTDOWN_GRACE": "5",
    "API_UPLOAD_PART_BYTES": str(PART_BYTES),
    # a webhook created from the console points at a loopback receiver (no DNS needed)
    "WEBHOOK_ALLOW_HTTP": "1",
    "WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
}


# What the pages need from Chromium and no more (Playwright already turns off extensions, background
# networking, sync and the like): no GPU process emulating a GPU in software (pages and video are
# composited in software all the same), no sound, and media that plays without a click.
CHEAP_CHROMIUM = [
    "--disable-gpu",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-features=Translate,MediaRouter,OptimizationHints,DialMediaRouteProvider,PaintHolding",
]


@pytest.fixture(scope="module")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: scripts/bootstrap.sh installs Debian's chromium")
        pytest.skip(f"no Chromium at {CHROMIUM} (make test installs Debian's chromium package)")
    return CHROMIUM


@pytest.fixture(scope="module")
def stack(tmp_path_factory, chromium_path) -> Iterator[Stack]:
    st = Stack(tmp_path_factory.mktemp("console-stack"), transcoders=2, extra_env=STACK_ENV)
    try:
        st.start()
        yield st
    finally:
        st.stop()


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {DEV_API_TOKEN}"}, timeout=60
    ) as client:
        yield client


@pytest.fixture(scope="module")
def browser(chromium_path: Path, stack: Stack):
    """Started after the stack: Playwright's sync API keeps an event loop running in this thread, and
    the stack's setup runs one of its own. Module-scoped, as everything here: the loop must be gone
    before the rest of the suite's async tests run in this thread."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
        b = p.chromium.launch(executable_path=str(chromium_path), args=["--no-sandbox", *CHEAP_CHROMIUM])
        yield b
        b.close()


VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def signed_in_context(browser, stack: Stack):
    """A browser context signed in once through the page, shared by every test that needs no sign-in of
    its own: each test gets a tab of its own in it (``page``) or the shared tab (``rendered_page``). A
    context costs a renderer and its setup (more CPU than most tests); a tab closed after its test
    leaves nothing of its page behind, and the console keeps no state in the browser but the cookie."""
    context = browser.new_context(base_url=stack.api_url, viewport=VIEWPORT)
    page = context.new_page()
    page.goto("/console/sign-in")
    page.get_by_label("API token").fill(DEV_API_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/console/$"))
    page.close()
    yield context
    context.close()


@pytest.fixture(scope="module")
def signed_in_state(signed_in_context) -> dict:
    """The signed-in session's cookie (and the rest of the context's storage)."""
    return signed_in_context.storage_state()


def _signed_in_page(context) -> tuple:
    """A tab of the signed-in context, and the uncaught script errors it sees."""
    p = context.new_page()
    errors: list[str] = []  # uncaught script errors: a console test fails on any
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    return p, errors


@pytest.fixture
def page(signed_in_context):
    """A tab of its own, closed after the test (media played, uploads, listeners on its responses)."""
    p, errors = _signed_in_page(signed_in_context)
    yield p
    p.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture(scope="module")
def _shared_tab(signed_in_context):
    p, errors = _signed_in_page(signed_in_context)
    yield p, errors
    p.close()


@pytest.fixture
def rendered_page(_shared_tab):
    """``page`` for tests that need no browser state of their own (no media played, no sign-in or
    upload): one signed-in tab for all of them, each test starting at the desktop viewport with a page
    load of its own; a tab started per test costs more CPU than most tests."""
    p, errors = _shared_tab
    errors.clear()
    p.set_viewport_size(VIEWPORT)
    yield p
    assert not errors, f"script errors on the page: {errors}"


def screenshot(page, name: str) -> None:
    """Into docs/ when MPR_CONSOLE_SCREENSHOTS=1 (docs/console.md shows them), else only rendered."""
    if os.environ.get("MPR_CONSOLE_SCREENSHOTS") == "1":
        page.screenshot(path=str(ROOT / "docs" / f"console-{name}.png"), full_page=True)
    else:  # the whole page captured all the same; a JPEG costs a fraction of a PNG to encode
        page.screenshot(full_page=True, type="jpeg", quality=50)
