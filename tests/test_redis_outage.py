"""One warning when Redis goes away and one line when it is back, however many calls fail."""

from __future__ import annotations

import logging

import pytest
import redis

from revivatech_actors.shared_state.redis import RedisConnection, RedisOutage

from .conftest import free_port

LOGGER = "revivatech_actors.shared_state.redis"


def test_an_outage_is_logged_once_each_way(caplog):
    now = [100.0]
    outage = RedisOutage(clock=lambda: now[0])
    caplog.set_level(logging.DEBUG, LOGGER)
    outage.worked()  # answering all along: nothing to say
    assert caplog.records == [] and not outage.away
    for _ in range(5):
        outage.failed(ConnectionError("refused"))
        now[0] += 1.0
    assert outage.away
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records] == [
        ("WARNING", "Redis unreachable (refused)")
    ]
    outage.worked()
    outage.worked()
    assert not outage.away
    assert len(caplog.records) == 2
    assert caplog.records[1].levelname == "INFO"
    assert caplog.records[1].getMessage().startswith("Redis reachable again after 5.0 s")


async def test_every_failing_call_and_probe_reports_to_one_outage(caplog, redis_url):
    caplog.set_level(logging.INFO, LOGGER)
    away = RedisConnection(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    for _ in range(3):
        with pytest.raises(redis.ConnectionError):
            await away.call(lambda client: client.get("x"))
        assert not (await away.check()).ok
    assert away.outage.away
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1
    here = RedisConnection(redis_url, outage=away.outage)  # the same outage, and Redis answers
    assert (await here.check()).ok
    assert not away.outage.away
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    away.close()
    here.close()
