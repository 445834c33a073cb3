"""``/track.js`` in a real browser: Debian's Chromium (Playwright) opens a page of a customer's
website, served from another site than the service (``localhost`` against ``127.0.0.1``), with
the one ``<script>`` tag; a real ``serve`` stores what the page sends, and the admin API shows it.

What left the browser is seen on the wire: the tag's ``data-endpoint`` points at an HTTP hop
that passes each request on to the service and keeps its headers and body. The browser's own
network events never show a beacon sent as the page goes away; the hop does, and its
``Sec-Fetch-Mode`` tells a beacon (``no-cors``) from the script's fetches (``cors``).
"""

from __future__ import annotations

import functools
import html
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx
import pytest
import trio

from ..tcp_proxy import TcpProxy
from .conftest import ADMIN_TOKEN, ServeProcess, service_env

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BATCH_PATH = "/api/analytics/events/batch"
#: Where the script keeps the visitor's id (localStorage) and the session (sessionStorage).
VISITOR_KEY = "revivatech:visitor"
SESSION_KEY = "revivatech:session"
#: Milliseconds the script waits for more events before it sends a batch (track.js).
BATCH_DELAY_MS = 1000
WRITE_KEY = "site-write-key-0123456789abcdef"
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Screen repairs</title>
<script src="{src}"{attributes}></script>
</head><body><h1>Screen repairs</h1></body></html>
"""


# --- the customer's website, the service, and a hop between them --------------------------------


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


class Site:
    """A customer's website: pages from a folder, on a port of 127.0.0.1 addressed as
    ``localhost``, which the browser counts as another site than the service's ``127.0.0.1``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = functools.partial(_QuietFiles, directory=str(root))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://localhost:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def page(self, name: str, service: ServeProcess, **data: str) -> str:
        """A page with the tag loading the script from ``service``; ``data`` are its ``data-*``
        attributes (``write_key`` -> ``data-write-key``). Returns the page's URL."""
        attributes = "".join(
            f' data-{key.replace("_", "-")}="{html.escape(value)}"' for key, value in data.items()
        )
        src = f"{service.base_url}/track.js"
        (self.root / name).write_text(PAGE.format(src=src, attributes=attributes))
        return f"{self.origin}/{name}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Batch(NamedTuple):
    """A batch request as it passed the hop."""

    headers: dict[str, str]  # names in lower case
    events: list[dict]
    write_key: str | None
    #: What the service answered, and the status the page got (they differ after fail_next).
    answer: dict[str, Any]
    status: int
    retry_after: str | None

    @property
    def beacon(self) -> bool:
        return self.headers.get("sec-fetch-mode") == "no-cors"

    def ids(self) -> list[str]:
        return [event["event_id"] for event in self.events]


class Hop:
    """An HTTP hop between the page and the service, for ``data-endpoint``: it passes each
    batch on and keeps it (:class:`Batch`). :meth:`fail_next` makes the hop answer the next
    batch 503 with ``Retry-After: 1`` *after* the service has handled it, as a gateway losing
    the service's answer would."""

    #: The service's answer headers the page gets: the hop hides nothing CORS would need.
    _PASSED_BACK = (
        "content-type",
        "retry-after",
        "access-control-allow-origin",
        "access-control-expose-headers",
    )

    def __init__(self, service: ServeProcess) -> None:
        self.target = service.base_url
        self.batches: list[Batch] = []
        self._failures = 0
        hop = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                hop._pass_on(self)

            def log_message(self, format, *args):  # noqa: A002 - the base class's name
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def fail_next(self) -> None:
        self._failures += 1

    def _pass_on(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in request.headers.items()}
        sent = {name: headers[name] for name in ("content-type", "origin") if name in headers}
        answer = httpx.post(self.target + request.path, content=body, headers=sent, timeout=10)
        status, content = answer.status_code, answer.content
        back = {name: answer.headers[name] for name in self._PASSED_BACK if name in answer.headers}
        if self._failures:
            self._failures -= 1
            status, back["retry-after"] = 503, "1"
            content = b'{"success":false,"error":"bad_gateway","message":"lost","details":[]}'
        envelope = json.loads(body)
        batch = Batch(
            headers,
            envelope["events"],
            envelope.get("write_key"),
            answer.json(),
            status,
            back.get("retry-after"),
        )
        self.batches.append(batch)
        request.send_response(status)
        for name, value in back.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(content)))
        request.end_headers()
        request.wfile.write(content)

    def carrying(self, event_type: str) -> list[Batch]:
        return [b for b in self.batches if any(e["event_type"] == event_type for e in b.events)]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def running(env: dict[str, str], cwd: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(cwd, env=env)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@contextmanager
def hop_to(service: ServeProcess) -> Iterator[Hop]:
    hop = Hop(service)
    try:
        yield hop
    finally:
        hop.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    website = Site(tmp_path_factory.mktemp("site"))
    yield website
    website.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[ServeProcess]:
    """One service for the tests that need no setting of their own: each test's browser context
    is a new visitor, so their events never mix."""
    env = service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN)
    with running(env, tmp_path_factory.mktemp("service")) as process:
        yield process


@pytest.fixture
def hop(service) -> Iterator[Hop]:
    with hop_to(service) as passing:
        yield passing


# --- what the service holds -------------------------------------------------------------------


def insights(service: ServeProcess, fingerprint: str) -> dict | None:
    """The visitor's insights (``data``), None while nothing of the visitor is stored."""
    answer = httpx.get(
        f"{service.base_url}/api/analytics/insights/{quote(fingerprint, safe='')}",
        headers=ADMIN,
        timeout=5,
    )
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def wait_until(page, check: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    """``check()``'s first true answer; it waits in the browser's time (``wait_for_timeout``),
    so that the page's own events reach the test meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        page.wait_for_timeout(200)
    pytest.fail(f"not within {timeout} s: {what}")


def wait_for_counts(page, service: ServeProcess, fingerprint: str, expected: dict) -> dict:
    """The visitor's insights once its ``eventCounts`` are ``expected``."""
    seen: list = [None]

    def check() -> dict | None:
        data = insights(service, fingerprint)
        seen[0] = data and data["profile"]["eventCounts"]
        return data if seen[0] == expected else None

    return wait_until(page, check, f"events {expected} (last seen: {seen})")


def event_count(service: ServeProcess) -> int:
    """Events in the service's SQLite database (in its working folder), read-only."""
    path = service.log_path.parent / "revivatech.db"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute("SELECT count(*) FROM analytics_events").fetchone()[0]


def visitor_of(page) -> str | None:
    return page.evaluate(f"localStorage.getItem({json.dumps(VISITOR_KEY)})")


def session_of(page) -> dict | None:
    raw = page.evaluate(f"sessionStorage.getItem({json.dumps(SESSION_KEY)})")
    return None if raw is None else json.loads(raw)


# --- the tests -----------------------------------------------------------------------------------


def test_a_page_view_and_a_custom_event_reach_the_visitors_insights(page, service, site):
    url = site.page("repairs.html", service) + "?utm_source=newsletter"
    requests: list = []
    page.on("request", lambda request: requests.append(request))
    page.goto(url)
    fingerprint = visitor_of(page)
    assert fingerprint, "no visitor id in localStorage"
    page.evaluate("revivatech.track('quote_requested', {service: 'screen', value: 89})")

    data = wait_for_counts(page, service, fingerprint, {"page_view": 1, "quote_requested": 1})
    assert data["profile"]["totalSessions"] == 1
    assert data["profile"]["sessionId"] == session_of(page)["id"]
    assert data["behavior"]["preferredDevice"] == "desktop"

    # from the customer's site to the service the script came from, without a preflight
    posts = [request for request in requests if request.url.endswith(BATCH_PATH)]
    assert [request.method for request in posts] == ["POST"] * len(posts), "a preflight"
    assert {request.url for request in posts} == {f"{service.base_url}{BATCH_PATH}"}
    assert {request.all_headers()["origin"] for request in posts} == {site.origin}
    # each event sent once (an answer the page could not read would have been retried), as the
    # page built it, and stored under the id the page gave it
    events = [event for request in posts for event in json.loads(request.post_data)["events"]]
    assert len(events) == 2, events
    sent = {event["event_type"]: event for event in events}
    path = service.log_path.parent / "revivatech.db"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT event_type, event_id, page_url, utm_source, screen_resolution,"
            " viewport_size, device_type, event_name, value, properties FROM analytics_events"
            " WHERE user_fingerprint = ? ORDER BY event_timestamp",
            (fingerprint,),
        ).fetchall()
    assert [row[:2] for row in rows] == [
        ("page_view", sent["page_view"]["event_id"]),
        ("quote_requested", sent["quote_requested"]["event_id"]),
    ]
    page_view, quote_requested = rows
    assert page_view[2:7] == (url, "newsletter", "1280x720", "1280x720", "desktop")
    assert json.loads(page_view[9]) == {"page_title": "Screen repairs"}
    assert quote_requested[7:] == ("quote_requested", 89.0, '{"service":"screen"}')


@pytest.mark.parametrize("hide", ["navigate away", "switch tabs"])
def test_what_is_queued_is_beaconed_when_the_page_is_hidden(page, service, site, hop, hide):
    page.goto(site.page("hide.html", service, endpoint=hop.url))
    fingerprint = visitor_of(page)
    wait_for_counts(page, service, fingerprint, {"page_view": 1})
    assert [batch.beacon for batch in hop.batches] == [False]  # a fetch while the page is shown

    # Hidden at once, well within the batch delay: only the hiding can send this event.
    page.evaluate("revivatech.track('quote_hidden')")
    if hide == "navigate away":
        page.goto("about:blank")  # pagehide, and visibilitychange to hidden
    else:
        page.evaluate(
            """() => {
                Object.defineProperty(document, 'visibilityState', {value: 'hidden'});
                document.dispatchEvent(new Event('visibilitychange'));
            }"""
        )

    wait_for_counts(page, service, fingerprint, {"page_view": 1, "quote_hidden": 1})
    (beacon,) = hop.carrying("quote_hidden")
    assert beacon.beacon, beacon.headers
    assert beacon.headers["content-type"] == "text/plain"
    assert beacon.answer["results"][0]["status"] == "stored"


@pytest.mark.parametrize(
    "privacy_signal",
    [
        "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})",
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})",
    ],
    ids=["do-not-track", "global-privacy-control"],
)
def test_a_privacy_signal_means_nothing_is_sent_or_kept(page, service, site, hop, privacy_signal):
    before = event_count(service)
    page.add_init_script(privacy_signal)
    page.goto(site.page("private.html", service, endpoint=hop.url))
    page.evaluate("revivatech.track('quote_requested')")
    assert page.evaluate("revivatech.enabled") is False
    page.wait_for_timeout(BATCH_DELAY_MS + 500)
    assert visitor_of(page) is None and session_of(page) is None
    page.goto("about:blank")  # a hide sends nothing either
    page.wait_for_timeout(500)
    assert hop.batches == []
    assert event_count(service) == before


def test_pending_consent_holds_events_until_it_is_given(page, service, site, hop):
    page.goto(site.page("consent.html", service, endpoint=hop.url, consent="pending"))
    page.evaluate("revivatech.track('quote_requested')")
    page.wait_for_timeout(BATCH_DELAY_MS + 500)
    assert hop.batches == []
    assert visitor_of(page) is None, "an id was stored before consent"

    page.evaluate("revivatech.consent(true)")
    fingerprint = visitor_of(page)
    assert fingerprint
    wait_for_counts(page, service, fingerprint, {"page_view": 1, "quote_requested": 1})


def test_refused_consent_drops_everything(page, service, site, hop):
    before = event_count(service)
    page.goto(site.page("refused.html", service, endpoint=hop.url, consent="pending"))
    page.evaluate("revivatech.track('quote_requested')")
    page.evaluate("revivatech.consent(false)")
    page.evaluate("revivatech.track('booking_started')")
    page.wait_for_timeout(BATCH_DELAY_MS + 500)
    assert visitor_of(page) is None
    page.goto("about:blank")
    page.wait_for_timeout(500)
    assert hop.batches == []
    assert event_count(service) == before


def test_a_session_ends_after_30_minutes_without_events(page, service, site):
    page.goto(site.page("session.html", service))
    fingerprint = visitor_of(page)
    first = session_of(page)["id"]
    wait_for_counts(page, service, fingerprint, {"page_view": 1})

    def idle_for(minutes: int) -> None:
        page.evaluate(
            """([key, minutes]) => {
                const session = JSON.parse(sessionStorage.getItem(key));
                session.last = Date.now() - minutes * 60000;
                sessionStorage.setItem(key, JSON.stringify(session));
            }""",
            [SESSION_KEY, minutes],
        )

    idle_for(29)
    page.evaluate("revivatech.track('service_viewed')")
    assert session_of(page)["id"] == first
    idle_for(31)
    page.evaluate("revivatech.track('pricing_viewed')")
    second = session_of(page)["id"]
    assert second != first

    data = wait_for_counts(
        page, service, fingerprint, {"page_view": 1, "service_viewed": 1, "pricing_viewed": 1}
    )
    assert data["profile"]["totalSessions"] == 2
    assert data["profile"]["sessionId"] == second


def test_an_answer_lost_after_the_store_is_retried_with_the_same_event_ids(
    page, service, site, hop
):
    hop.fail_next()  # the service stores the page view; the page is answered 503
    page.goto(site.page("lost.html", service, endpoint=hop.url))
    fingerprint = visitor_of(page)
    wait_until(page, lambda: len(hop.batches) == 2, "the page's retry")

    first, retry = hop.batches
    assert (first.status, first.answer["results"][0]["status"]) == (503, "stored")
    assert (retry.status, retry.answer["results"][0]["status"]) == (200, "duplicate")
    assert retry.ids() == first.ids()
    page.wait_for_timeout(BATCH_DELAY_MS)
    assert len(hop.batches) == 2
    assert insights(service, fingerprint)["profile"]["eventCounts"] == {"page_view": 1}


@contextmanager
def tcp_proxy(port: int) -> Iterator[tuple[TcpProxy, trio.lowlevel.TrioToken]]:
    """The suite's TCP proxy in front of 127.0.0.1:``port``, run by trio in a thread of its own
    (the browser's API here is synchronous); call it through the token."""
    started: queue.Queue = queue.Queue()

    async def main() -> None:
        proxy = TcpProxy("127.0.0.1", port)
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.run)
            started.put((proxy, trio.lowlevel.current_trio_token(), nursery.cancel_scope))

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    proxy, token, scope = started.get(timeout=10)
    try:
        yield proxy, token
    finally:
        trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(10)


def test_a_service_out_of_reach_gets_the_same_events_when_it_is_back(page, service, site):
    with tcp_proxy(service.port) as (proxy, token):
        trio.from_thread.run_sync(proxy.switch_off, trio_token=token)  # connections refused
        sent: list = []
        failed: list = []
        page.on("request", lambda request: sent.append(request))
        page.on("requestfailed", lambda request: failed.append(request))
        page.goto(site.page("away.html", service, endpoint=f"http://127.0.0.1:{proxy.port}"))
        fingerprint = visitor_of(page)
        wait_until(page, lambda: len(failed) >= 2, "two failed tries")
        assert insights(service, fingerprint) is None

        trio.from_thread.run(proxy.switch_on, trio_token=token)
        wait_for_counts(page, service, fingerprint, {"page_view": 1})

    def batches() -> list:
        return [request for request in sent if request.url.endswith(BATCH_PATH)]

    # The stored event can be read before the browser has told the test of its request.
    wait_until(page, lambda: len(batches()) > len(failed), "the try that got through")
    tries = batches()
    assert len(tries) == len(failed) + 1, (tries, failed)  # then one got through
    ids = {event["event_id"] for r in tries for event in json.loads(r.post_data)["events"]}
    assert len(ids) == 1, ids


def test_a_429_is_retried_after_its_retry_after(page, site, tmp_path):
    # One request per 4 s: the page view takes it, and the next batch is refused for a while.
    env = service_env(
        REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN, REVIVATECH_LIMITS_INGEST_RATE="1/4s"
    )
    with running(env, tmp_path) as service, hop_to(service) as hop:
        page.goto(site.page("limited.html", service, endpoint=hop.url))
        fingerprint = visitor_of(page)
        wait_for_counts(page, service, fingerprint, {"page_view": 1})
        page.evaluate("revivatech.track('quote_requested')")
        wait_for_counts(page, service, fingerprint, {"page_view": 1, "quote_requested": 1})

        tries = hop.carrying("quote_requested")
        assert tries[0].status == 429 and tries[-1].status == 200, tries
        assert {event_id for batch in tries for event_id in batch.ids()} == set(tries[0].ids())
        # the script waited what Retry-After said before trying again
        waited = (tries[1].events[0]["sent_at"] - tries[0].events[0]["sent_at"]) / 1000
        assert tries[0].retry_after and waited >= int(tries[0].retry_after), (waited, tries)


def test_a_write_key_comes_from_the_tag_and_goes_with_beacons_too(page, site, tmp_path):
    env = service_env(
        REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN, REVIVATECH_AUTH_WRITE_KEYS=WRITE_KEY
    )
    with running(env, tmp_path) as service, hop_to(service) as hop:
        # without the key: refused once, never retried, and the page's console says why
        messages: list[str] = []
        page.on("console", lambda message: messages.append(message.text))
        page.goto(site.page("keyless.html", service, endpoint=hop.url))
        wait_until(page, lambda: hop.batches, "the page view's batch")
        page.wait_for_timeout(BATCH_DELAY_MS + 1500)
        assert [(batch.status, batch.write_key) for batch in hop.batches] == [(401, None)]
        assert any("missing_write_key" in message for message in messages), messages
        assert insights(service, visitor_of(page)) is None

        page.goto(site.page("keyed.html", service, endpoint=hop.url, write_key=WRITE_KEY))
        fingerprint = visitor_of(page)
        wait_for_counts(page, service, fingerprint, {"page_view": 1})
        page.evaluate("revivatech.track('quote_requested')")
        page.goto("about:blank")
        wait_for_counts(page, service, fingerprint, {"page_view": 1, "quote_requested": 1})
        (beacon,) = hop.carrying("quote_requested")
        assert beacon.beacon and beacon.write_key == WRITE_KEY
