"""``GET /track.js`` over real HTTP: the packaged script as it is, open to any site, cacheable and
revalidated by its ETag. What the script does is tested in a browser
(tests/e2e/test_track_js_browser.py)."""

from __future__ import annotations

from pathlib import Path

from revivatech_actors.web.track_script import load_script

from .test_service import Running, make_service

SCRIPT = Path(__file__).resolve().parent.parent / "revivatech_actors" / "web" / "tracker"


async def test_the_script_is_served_to_any_site(sqlite_url):
    async with Running(make_service(sqlite_url)) as client:
        answer = await client.get("/track.js", headers={"Origin": "https://shop.example"})
    assert answer.status_code == 200
    assert answer.content == load_script() == (SCRIPT / "track.js").read_bytes()
    headers = answer.headers
    assert headers["content-type"] == "application/javascript; charset=utf-8"
    assert headers["cache-control"] == "public, max-age=300"
    assert headers["cross-origin-resource-policy"] == "cross-origin"
    assert headers["access-control-allow-origin"] == "*"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["etag"].startswith('"') and len(headers["etag"]) == 34


async def test_a_held_copy_is_revalidated_by_its_etag(sqlite_url):
    async with Running(make_service(sqlite_url)) as client:
        etag = (await client.get("/track.js")).headers["etag"]
        same = await client.get("/track.js", headers={"If-None-Match": etag})
        weak = await client.get("/track.js", headers={"If-None-Match": f"W/{etag}"})
        other = await client.get("/track.js", headers={"If-None-Match": '"0123"'})
        head = await client.head("/track.js")
    assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", etag)
    assert same.headers["cache-control"] == "public, max-age=300"
    assert weak.status_code == 304
    assert other.status_code == 200 and other.content == load_script()
    assert head.status_code == 200 and head.content == b""
