"""Helpers to run the real ``revivatech-actors serve`` process in a test."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from ..conftest import free_port

ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef"


def service_env(**settings: str) -> dict[str, str]:
    """The test process's environment without any REVIVATECH_* setting, plus ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("REVIVATECH_")}
    env.update(settings)
    return env


class ServeProcess:
    """A ``revivatech-actors serve`` subprocess on a free port, its output captured in a file."""

    def __init__(
        self, cwd, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / f"serve-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        command = [
            sys.executable,
            "-m",
            "revivatech_actors",
            "serve",
            "--port",
            str(self.port),
            *args,
        ]
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env or service_env(), stdout=self._log, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        return self.log_path.read_text()

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"serve exited with {self.process.returncode} before it was ready:\n"
                    f"{self.output()}"
                )
            try:
                if httpx.get(self.base_url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        pytest.fail(f"serve was not ready within {timeout} s:\n{self.output()}")

    def signal(self, signum: int = signal.SIGTERM) -> float:
        """Send ``signum``; returns the monotonic time it was sent."""
        sent = time.monotonic()
        self.process.send_signal(signum)
        return sent

    def wait_exit(self, timeout: float = 20.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve did not exit within {timeout} s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


@pytest.fixture
def serve(tmp_path):
    """Start ``serve`` processes (killed at the end if still running): ``serve(env=...,
    args=...)``."""
    started: list[ServeProcess] = []

    def start(
        *, env: dict[str, str] | None = None, args: tuple[str, ...] = (), ready: bool = True
    ) -> ServeProcess:
        process = ServeProcess(tmp_path, env=env, args=args)
        started.append(process)
        if ready:
            process.wait_ready()
        return process

    yield start
    for process in started:
        process.stop()


def generated_token(server: ServeProcess) -> str:
    """The admin token ``server`` generated: with stderr not a terminal, it is written to an
    owner-only file whose path the log names, never to the log itself."""
    match = re.search(r"written to (\S+revivatech-admin-token-\S+\.txt)", server.output())
    assert match, server.output()
    with open(match.group(1)) as file:
        return file.read().strip()


def run_cli(*args: str, cwd, **env: str) -> subprocess.CompletedProcess:
    """``revivatech-actors *args`` to its end, with ``env`` as its only REVIVATECH_* settings."""
    return subprocess.run(
        [sys.executable, "-m", "revivatech_actors", *args],
        cwd=cwd,
        env=service_env(**env),
        capture_output=True,
        text=True,
        timeout=30,
    )


def ws_url(server: ServeProcess, token: str | None = ADMIN_TOKEN) -> str:
    """The live feed's URL on ``server``, with ``?token=`` unless ``token`` is None."""
    url = server.base_url.replace("http://", "ws://") + "/api/analytics/ws"
    return f"{url}?token={token}" if token else url


async def next_of(ws, kind: str, timeout: float = 5.0) -> dict:
    """The next live-feed message of type ``kind`` on ``ws`` (others are skipped)."""
    with trio.fail_after(timeout):
        while True:
            message = json.loads(await ws.get_message())
            if message["type"] == kind:
                return message


async def quiet_feed_delays(
    post_to: ServeProcess, watch_on: ServeProcess, *, clients: int = 3, events: int = 5
) -> list[float]:
    """Seconds from each acknowledgement to the arrival of the update that shows its event, for
    ``clients`` realtime subscribers on ``watch_on`` and ``events`` single events posted to
    ``post_to`` 0.3 s apart (the feed otherwise quiet). Negative: the update came first."""
    arrivals: list[list[tuple[int, float]]] = [[] for _ in range(clients)]

    async def listen(ws, seen: list[tuple[int, float]]) -> None:
        while True:
            message = json.loads(await ws.get_message())
            if message["type"] == "realtime_metrics":
                seen.append((message["data"]["overview"]["total_events"], time.monotonic()))

    delays = []
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=5))
        sockets = [
            await stack.enter_async_context(open_websocket_url(ws_url(watch_on)))
            for _ in range(clients)
        ]
        nursery = await stack.enter_async_context(trio.open_nursery())
        for ws, seen in zip(sockets, arrivals, strict=True):
            await ws.get_message()
            await ws.send_message(json.dumps({"type": "subscribe_realtime"}))
            nursery.start_soon(listen, ws, seen)
        with trio.fail_after(5):
            while not all(arrivals):
                await trio.sleep(0.01)
        before = arrivals[0][0][0]
        for n in range(1, events + 1):
            await trio.sleep(0.3)
            event = {"user_fingerprint": "quiet", "session_id": "s", "event_type": "page_view"}
            answer = await http.post(post_to.base_url + "/api/analytics/events", json=event)
            acked = time.monotonic()
            assert answer.status_code == 200, answer.text
            with trio.fail_after(5):
                while not all(seen[-1][0] >= before + n for seen in arrivals):
                    await trio.sleep(0.005)
            for seen in arrivals:
                delays.append(next(at for total, at in seen if total >= before + n) - acked)
        nursery.cancel_scope.cancel()
    return delays


# --- a real browser -------------------------------------------------------------------------------

#: The system's Chromium (Debian's ``chromium`` package); nothing is downloaded at test time.
CHROMIUM = os.environ.get("REVIVATECH_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium driven by Playwright (``--no-sandbox``: CI runs as root). Skipped
    without the browser, a failure under ``CI=true``."""
    from ..conftest import IN_CI

    if not os.path.exists(CHROMIUM):
        message = f"no browser at {CHROMIUM} (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"{message}; under CI=true this is a failure", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    """A fresh browser context and page (no cookies or storage shared between tests)."""
    context = chromium.new_context()
    page = context.new_page()
    yield page
    context.close()
