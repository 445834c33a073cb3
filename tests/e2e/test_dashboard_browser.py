"""The ``/dashboard`` page in a real browser (the system's Chromium) against a real ``serve``:
signing in (token or the main app's cookie), live figures over the WebSocket, the funnel and its
controls, a visitor lookup, the actor tree, a layout that fits a phone, and nothing that visitors
sent ever running as markup or script.

Set ``REVIVATECH_TEST_SCREENSHOTS=docs`` to write the screenshots of the documentation
(``docs/dashboard-laptop.png``, ``docs/dashboard-phone.png``); otherwise they go to the test's
temporary folder."""

from __future__ import annotations

import os
import re
import struct
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from revivatech_actors.bench._population import generate

from .conftest import ADMIN_TOKEN, run_cli, service_env

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SITE = "https://revivatech.example"
#: Milliseconds a browser expectation may take (two shared cores; the feed updates within 1 s).
WAIT = 15_000
ROOT = Path(__file__).resolve().parents[2]
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "require-trusted-types-for 'script'; trusted-types 'none'"
)


@pytest.fixture
def server(serve):
    return serve(
        env=service_env(
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
            # the actor-tree test makes an actor crash and watches the page show it
            REVIVATECH_FAULTS_ENABLED="true",
        )
    )


def tag() -> str:
    return uuid.uuid4().hex[:8]


def post(server, *events: dict) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        answer = client.post("/api/analytics/events/batch", json={"events": list(events)})
        assert answer.status_code == 200, answer.text


def post_step(server, step: dict) -> None:
    answer = httpx.post(f"{server.base_url}/api/analytics/track/journey", json=step, timeout=10)
    assert answer.status_code == 200, answer.text


def event(fingerprint: str, session: str, kind: str, page: str | None = None, **more) -> dict:
    found = {"user_fingerprint": fingerprint, "session_id": session, "event_type": kind, **more}
    if page is not None:
        found["page_url"] = SITE + page
    return found


def sign_in(page: Page, server, token: str = ADMIN_TOKEN) -> None:
    page.goto(f"{server.base_url}/dashboard")
    page.fill("#token", token)
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#dashboard")).to_be_visible(timeout=WAIT)
    expect(page.locator("#live-status")).to_have_text("Live", timeout=WAIT)


def look_up(page: Page, fingerprint: str) -> None:
    page.fill("#visitor-fingerprint", fingerprint)
    page.click("#visitor-form button[type=submit]")
    expect(page.locator("#visitor-name")).to_have_text(fingerprint, timeout=WAIT)


# --- the files and their headers --------------------------------------------------------------


def test_the_page_and_its_files_are_served_with_a_strict_policy(server):
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        for path, content_type in [
            ("/dashboard", "text/html; charset=utf-8"),
            ("/dashboard/dashboard.css", "text/css; charset=utf-8"),
            ("/dashboard/dashboard.js", "application/javascript; charset=utf-8"),
        ]:
            answer = client.get(path)  # open: the files hold no data
            assert answer.status_code == 200, (path, answer.text)
            assert answer.headers["Content-Type"] == content_type, path
            assert answer.headers["Content-Security-Policy"] == POLICY, path
            assert answer.headers["X-Content-Type-Options"] == "nosniff", path
            assert answer.headers["Referrer-Policy"] == "no-referrer", path
            assert answer.headers["Cache-Control"] == "no-cache", path
            again = client.get(path, headers={"If-None-Match": answer.headers["ETag"]})
            assert again.status_code == 304, path
            assert again.content == b""
            assert again.headers["Content-Security-Policy"] == POLICY
        page = client.get("/dashboard").text
        # nothing inline that the policy would have to allow
        assert not re.search(r"<script>|\sstyle=|\son[a-z]+=", page, re.IGNORECASE)
        # the data stays behind the admin routes
        assert client.get("/api/analytics/actors").status_code == 401


# --- signing in -------------------------------------------------------------------------------


def test_a_wrong_token_is_refused_and_the_right_one_kept_out_of_the_url(server, page: Page):
    page.goto(f"{server.base_url}/dashboard")
    expect(page.locator("#signin")).to_be_visible(timeout=WAIT)
    expect(page.locator("#dashboard")).to_be_hidden()
    page.fill("#token", "not-the-token")
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#signin-message")).to_contain_text("401", timeout=WAIT)
    expect(page.locator("#dashboard")).to_be_hidden()

    sign_in(page, server)
    assert ADMIN_TOKEN not in page.url
    kept = page.evaluate("() => sessionStorage.getItem('revivatech.adminToken')")
    assert kept == ADMIN_TOKEN
    page.reload()  # the tab keeps its token
    expect(page.locator("#live-status")).to_have_text("Live", timeout=WAIT)
    expect(page.locator("#signin")).to_be_hidden()

    page.click("#sign-out")
    expect(page.locator("#signin")).to_be_visible(timeout=WAIT)
    assert page.evaluate("() => sessionStorage.getItem('revivatech.adminToken')") is None


def test_a_refused_token_returns_to_the_sign_in_form(server, page: Page):
    page.goto(f"{server.base_url}/dashboard")
    # the page's own first try (no token) is over: it would clear a token set meanwhile
    page.wait_for_load_state("networkidle")
    # a token the tab kept from an earlier run of the service: refused now
    page.evaluate("() => sessionStorage.setItem('revivatech.adminToken', 'expired-token')")
    page.reload()
    expect(page.locator("#signin-message")).to_contain_text("401", timeout=WAIT)
    expect(page.locator("#dashboard")).to_be_hidden()


def test_the_main_apps_token_cookie_signs_in_without_the_form(server, chromium):
    context = chromium.new_context()
    try:
        context.add_cookies([{"name": "token", "value": ADMIN_TOKEN, "url": server.base_url}])
        page = context.new_page()
        page.goto(f"{server.base_url}/dashboard")
        # the feed connects on the cookie too (same origin)
        expect(page.locator("#live-status")).to_have_text("Live", timeout=WAIT)
        expect(page.locator("#signin")).to_be_hidden()
        expect(page.locator("#actor-rows")).to_contain_text("batcher", timeout=WAIT)
    finally:
        context.close()


# --- what it shows ----------------------------------------------------------------------------


def test_the_realtime_figures_change_live_when_an_event_is_posted(server, page: Page):
    sign_in(page, server)
    events = page.locator("#kpi-events")
    expect(events).to_have_text("0", timeout=WAIT)  # a fresh service
    expect(page.locator("#sparkline polyline")).to_have_count(1, timeout=WAIT)

    visitor = f"live-{tag()}"
    post(
        server,
        event(visitor, "s1", "page_view", "/repairs/iphone-screen"),
        event(visitor, "s1", "page_view", "/repairs/iphone-screen"),
        event(visitor, "s1", "booking_completed", "/book/done", value=89),
    )
    # the WebSocket brings it: nothing on the page polls the realtime route
    expect(events).to_have_text("3", timeout=WAIT)
    expect(page.locator("#kpi-pageviews")).to_have_text("2")
    expect(page.locator("#kpi-conversions")).to_have_text("1")
    expect(page.locator("#kpi-users")).to_have_text("1")
    top = page.locator("#top-pages li").first
    expect(top).to_contain_text(f"{SITE}/repairs/iphone-screen")
    expect(top).to_contain_text("2")
    # the sparkline plots the window's events per 10-s bucket: these three, in the newest ones
    counts = page.evaluate(
        "() => document.querySelector('#sparkline svg').getAttribute('data-events')"
    ).split(",")
    assert sum(map(int, counts)) == 3 and len(counts) > 1


def test_the_funnel_shows_bars_and_follows_its_controls(server, page: Page):
    base = tag()
    post(
        server,
        *[event(f"f{n}-{base}", f"s{n}", "page_view", "/") for n in range(4)],
        *[event(f"f{n}-{base}", f"s{n}", "service_viewed", "/repairs") for n in range(2)],
        event(f"f0-{base}", "s0", "booking_started", "/book"),
    )
    sign_in(page, server)
    steps = page.locator("#funnel-steps-list li")
    # the service's default steps (funnel.steps), filled in from the answer
    expect(steps).to_have_count(4, timeout=WAIT)
    expect(page.locator("#funnel-steps")).to_have_value(
        "page_view, service_viewed, booking_started, booking_completed"
    )
    expect(steps.nth(0)).to_contain_text("4 visitors")
    expect(steps.nth(1)).to_contain_text("2 visitors")
    expect(steps.nth(1)).to_contain_text("50.0 % of entrants")
    widths = page.evaluate(
        "() => [...document.querySelectorAll('#funnel-steps-list .bar-fill')]"
        ".map((bar) => bar.style.width)"
    )
    assert widths == ["100%", "50%", "25%", "0%"]

    page.fill("#funnel-steps", "service_viewed, booking_started")
    page.select_option("#funnel-window", "1h")
    page.select_option("#funnel-timeframe", "24 hours")
    page.click("#funnel-form button[type=submit]")
    expect(steps).to_have_count(2, timeout=WAIT)
    expect(steps.nth(0)).to_contain_text("2 visitors")
    expect(steps.nth(1)).to_contain_text("1 visitor")
    expect(page.locator("#funnel-meta")).to_contain_text("window 1.0 h")

    page.fill("#funnel-steps", ",".join("abcdefghijk"))  # too many: the service says why
    page.click("#funnel-form button[type=submit]")
    expect(page.locator("#funnel-message")).to_have_text(
        "steps: at most 10 steps, got 11", timeout=WAIT
    )


def test_a_visitor_lookup_shows_the_profile_scores_and_journey(server, page: Page):
    visitor = f"visitor-{tag()}"
    post(
        server,
        event(visitor, "s-a", "page_view", "/", device_type="mobile"),
        event(visitor, "s-a", "service_viewed", "/repairs/macbook-battery"),
        event(visitor, "s-a", "booking_started", "/book"),
        event(visitor, "s-a", "booking_completed", "/book/done", value=129),
    )
    post_step(
        server,
        {
            "user_fingerprint": visitor,
            "session_id": "s-a",
            "step": "pick-device",
            "stage": "consideration",
            "page_url": f"{SITE}/book",
        },
    )
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=10) as client:
        scores = client.get(f"/api/analytics/insights/{visitor}").json()["data"]["scores"]
    sign_in(page, server)
    look_up(page, visitor)
    facts = page.locator("#visitor-facts")
    expect(facts).to_contain_text("Events5")
    expect(facts).to_contain_text("Bookings1 of 1 started")
    expect(facts).to_contain_text("Booking value129")
    expect(facts).to_contain_text("Devicemobile")
    cards = page.locator("#visitor-scores .score")
    expect(cards).to_have_count(4)
    for index, (key, title) in enumerate(
        [
            ("engagement", "Engagement"),
            ("lead", "Lead"),
            ("churnRisk", "Churn risk"),
            ("priceSensitivity", "Price sensitivity"),
        ]
    ):
        expect(cards.nth(index).locator("h5")).to_have_text(title)
        expect(cards.nth(index).locator(".score-value")).to_have_text(f"{scores[key]:.0f}")
        assert cards.nth(index).locator(".factor").count() > 0, title
    session = page.locator("#journey-sessions .session-item")
    expect(session).to_have_count(1)
    expect(session).to_contain_text("s-a")
    touchpoints = session.locator(".touchpoint")
    expect(touchpoints).to_have_count(5)
    expect(session.locator(".touchpoint.step")).to_contain_text("pick-device")
    expect(session.locator(".touchpoint.step")).to_contain_text("stage: consideration")
    expect(session).to_contain_text(f"{SITE}/repairs/macbook-battery")

    look_up_missing = f"nobody-{tag()}"
    page.fill("#visitor-fingerprint", look_up_missing)
    page.click("#visitor-form button[type=submit]")
    expect(page.locator("#visitor-message")).to_have_text(
        "No events are stored for this visitor.", timeout=WAIT
    )
    expect(page.locator("#visitor")).to_be_hidden()


def test_the_actor_tree_is_refreshed_and_shows_a_crash(server, page: Page):
    sign_in(page, server)
    rows = page.locator("#actor-rows .actor-row")
    batcher = rows.filter(has_text="batcher")
    expect(batcher).to_have_count(1, timeout=WAIT)
    expect(batcher.locator(".badge")).to_have_text("running")
    expect(batcher.locator(".actor-error")).to_have_text("none")
    expect(batcher.locator(".inbox")).to_contain_text("/ 10,000")
    expect(rows.filter(has_text="root")).to_have_count(1)

    crashed = httpx.post(
        f"{server.base_url}/api/analytics/actors/batcher/crash", headers=AUTH, timeout=10
    )
    assert crashed.status_code == 202, crashed.text
    # the page asks again every few seconds; no reload
    expect(batcher.locator(".actor-error")).to_contain_text("InjectedCrash", timeout=WAIT)
    expect(batcher.locator("[data-label=Restarts]")).to_contain_text("1")


def test_the_score_models_show_the_backtest_side_by_side(server, page: Page, tmp_path):
    sign_in(page, server)
    status = page.locator("#models-status")
    expect(status).to_contain_text("not been backtested yet", timeout=WAIT)
    population = generate("regular", 300, now=datetime.now(UTC), seed=4)
    events = [e for v in population.visitors for e in v.events]
    for start in range(0, len(events), 500):
        post(server, *events[start : start + 500])
    # the service's own backtest comes every scoring.learn_interval; the command stores one now
    recorded = run_cli("evaluate", "--record", cwd=tmp_path)
    assert recorded.returncode == 0, recorded.stderr
    report = httpx.get(f"{server.base_url}/api/analytics/models", headers=AUTH).json()["data"]
    page.reload()
    expect(page.locator("#dashboard")).to_be_visible(timeout=WAIT)
    rows = page.locator("#model-rows .model-row")
    expect(rows).to_have_count(2, timeout=WAIT)
    lead = rows.filter(has_text="Lead")
    choice = report["models"]["lead_scoring"]
    expect(lead.locator(".badge")).to_have_text(choice["inUse"])
    expect(lead.locator("[data-label='Fixed ROC AUC']")).to_contain_text(
        f"{choice['fixed']['rocAuc']:.3f}"
    )
    expect(lead.locator("[data-label=Why]")).to_have_text(choice["reason"])
    expect(page.locator("#models-meta")).to_contain_text("300 visitors")
    expect(status).to_be_hidden()


# --- nothing that visitors send runs ----------------------------------------------------------

#: Each sets a global, opens a dialog or adds an element, if it ever runs.
IMG = '<img src=x onerror="window.__pwned=1;alert(1)">'
SCRIPT = "<script>window.__pwned=2;document.body.append(document.createElement('pwned'))</script>"
SVG = "<svg onload=\"window.__pwned=3\"><a href='javascript:alert(3)'>x</a></svg>"
NOTHING_RAN = """() => ({
    pwned: window.__pwned === undefined ? null : window.__pwned,
    foreign: document.querySelectorAll(
        'img, pwned, script:not([src]), a[href^="javascript"], [onerror], [onload]'
    ).length,
    scripts: [...document.scripts].map((script) => script.getAttribute('src')),
})"""


def post_payloads(server) -> tuple[str, str, str]:
    fingerprint = f'<img src=x onerror="window.__pwned=4">{tag()}'
    page_url = f"{SITE}/{IMG}?q={SCRIPT}"
    post(
        server,
        {
            "user_fingerprint": fingerprint,
            "session_id": SCRIPT[:100],
            "event_type": "page_view",
            "page_url": page_url,
            "referrer": f"https://evil.example/{SVG}",
            "properties": {"note": SCRIPT, IMG: SVG},
            "device_type": IMG,
        },
    )
    step = "<img src=x onerror=alert(5)>"
    post_step(
        server,
        {
            "user_fingerprint": fingerprint,
            "session_id": SCRIPT[:100],
            "step": step,
            "page_url": page_url,
            "entry_method": SVG,
            "content_consumed": {"html": SCRIPT},
        },
    )
    return fingerprint, page_url, step


@pytest.mark.parametrize("csp", ["with the policy", "without the policy"])
def test_markup_and_script_sent_by_visitors_is_shown_as_text_and_never_runs(server, chromium, csp):
    """Without the policy (Playwright bypasses it) the page's own rendering is what keeps the
    payloads inert; with it, both do."""
    fingerprint, page_url, step = post_payloads(server)
    context = chromium.new_context(bypass_csp=csp == "without the policy")
    dialogs: list[str] = []
    try:
        page = context.new_page()
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        answer = page.goto(f"{server.base_url}/dashboard")
        assert answer is not None and answer.headers["content-security-policy"] == POLICY
        sign_in(page, server)
        expect(page.locator("#top-pages .bar-label").first).to_have_text(page_url, timeout=WAIT)

        look_up(page, fingerprint)  # the fingerprint came back as text, exactly
        expect(page.locator("#visitor-facts")).to_contain_text(f"Device{IMG}")
        session = page.locator("#journey-sessions .session-item")
        expect(session.locator(".session-id")).to_have_text(SCRIPT[:100])
        expect(session.locator(".touch-page").first).to_have_text(page_url)
        expect(session.locator(".touchpoint.step .touch-type")).to_have_text(step)
        extra = session.locator(".touchpoint.step .touch-extra")
        expect(extra).to_contain_text(f"entry_method: {SVG}")
        expect(extra).to_contain_text(f'content_consumed: {{"html":"{SCRIPT}"}}')

        page.wait_for_timeout(500)  # an onerror would have fired by now
        assert page.evaluate(NOTHING_RAN) == {
            "pwned": None,
            "foreign": 0,
            "scripts": ["dashboard/dashboard.js"],
        }
        assert dialogs == []
    finally:
        context.close()


def test_the_policy_stops_script_that_is_not_the_pages_own(server, page: Page):
    sign_in(page, server)
    ran = page.evaluate(
        """() => {
            const script = document.createElement('script');
            try { script.textContent = 'window.__inline = 1'; } catch (error) {}
            document.body.append(script);
            const handler = document.createElement('div');
            try { handler.setAttribute('onclick', 'window.__inline = 2'); } catch (error) {}
            document.body.append(handler);
            handler.click();
            let markup = 'set';
            try { document.body.insertAdjacentHTML('beforeend', '<b>x</b>'); }
            catch (error) { markup = error.name; }
            return [window.__inline === undefined ? null : window.__inline, markup];
        }"""
    )
    # inline script and handlers refused (script-src 'self'), strings as markup refused
    # (Trusted Types)
    assert ran == [None, "TypeError"]


# --- laptop and phone -------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def test_the_dashboard_fits_a_laptop_and_a_phone(server, chromium, tmp_path):
    """With a few visitors' worth of events, dated over the last half minute (so the sparkline
    has points), screenshots at 1280x800 and 390x844; neither width scrolls sideways."""
    folder = Path(os.environ.get("REVIVATECH_TEST_SCREENSHOTS") or tmp_path)
    if not folder.is_absolute():
        folder = ROOT / folder
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        sign_in(page, server)
        pages = ["/", "/repairs/iphone-screen", "/prices", "/repairs/macbook-battery", "/book"]
        now = datetime.now(UTC)
        for wave in range(3):
            # each wave in its own 10-s bucket of the window: one more point each
            at = (now - timedelta(seconds=10 * (2 - wave))).isoformat()
            posted = []
            for n in range(3 + 2 * wave):
                visitor, session = f"v{wave}{n}-{tag()}", f"s{wave}{n}"
                posted += [
                    event(visitor, session, "page_view", pages[(n + wave) % len(pages)]),
                    event(visitor, session, "page_view", pages[n % 3]),
                ]
                if n % 2 == 0:
                    posted.append(event(visitor, session, "service_viewed", pages[1 + n % 2]))
                if n % 3 == 0:
                    posted.append(event(visitor, session, "booking_started", "/book"))
                if n == 3:
                    posted.append(
                        event(visitor, session, "booking_completed", "/book/done", value=149)
                    )
            post(server, *[{**e, "timestamp": at} for e in posted])
        expect(page.locator("#sparkline circle")).to_have_count(1, timeout=WAIT)
        expect(page.locator("#top-pages li")).to_have_count(len(pages), timeout=WAIT)
        page.click("#funnel-form button[type=submit]")  # the funnel with every wave in it
        expect(page.locator("#funnel-steps-list li").first).to_contain_text(
            "15 visitors", timeout=WAIT
        )
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 1280
        laptop = folder / "dashboard-laptop.png"
        page.screenshot(path=str(laptop))
        assert png_size(laptop) == (1280, 800)

        page.set_viewport_size({"width": 390, "height": 844})
        page.evaluate("() => window.scrollTo(0, 0)")
        expect(page.locator("#kpi-users")).to_be_visible()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        phone = folder / "dashboard-phone.png"
        page.screenshot(path=str(phone))
        assert png_size(phone) == (390, 844)
    finally:
        context.close()
