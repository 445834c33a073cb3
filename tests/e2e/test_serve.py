"""The real ``revivatech-actors serve`` process: start, health, faults, signals and exit codes."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from ..conftest import free_port
from .conftest import ADMIN_TOKEN, generated_token, run_cli, service_env

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_serve_with_no_configuration_uses_sqlite_in_the_working_folder_and_generates_a_token(
    serve, tmp_path
):
    server = serve()
    assert (tmp_path / "revivatech.db").exists()
    token = generated_token(server)  # stderr is a file here: the token is in a file, not the log
    assert len(token) >= 32
    assert token not in server.output()

    health = httpx.get(server.base_url + "/api/analytics/health").json()
    assert (health["status"], health["database"], health["redis"], health["storageEngine"]) == (
        "healthy",
        "connected",
        "disabled",
        "sqlite",
    )
    assert httpx.get(server.base_url + "/api/analytics/actors").status_code == 401
    tree = httpx.get(
        server.base_url + "/api/analytics/actors", headers={"Authorization": f"Bearer {token}"}
    )
    assert tree.status_code == 200 and tree.json()["data"]["state"] == "running"


def test_sigterm_stops_in_order_and_exits_zero_within_the_deadline(serve):
    server = serve(env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN))
    assert "Bearer" not in server.output()  # a configured token is never printed
    sent = server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    took = time.monotonic() - sent
    assert took < 10.0, f"shutdown took {took:.2f} s"
    output = server.output()
    order = [
        output.index(f"root/{name} stopped")
        for name in ("web", "loop_monitor", "ingest", "batcher", "storage")
    ]
    assert order == sorted(order), output
    assert "stopped cleanly" in output


def test_sigint_exits_zero_too(serve):
    server = serve(env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN))
    server.signal(signal.SIGINT)
    assert server.wait_exit() == 0
    assert "Traceback" not in server.output()


def test_a_second_signal_forces_exit_one(serve):
    server = serve(env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN))
    # Two different signals back to back: trio coalesces repeats of one signal, not of two.
    server.signal(signal.SIGTERM)
    server.signal(signal.SIGINT)
    assert server.wait_exit() == 1
    assert "forced exit: second signal" in server.output()


def test_serve_on_postgresql(serve, postgres_url):
    server = serve(
        env=service_env(
            REVIVATECH_STORAGE_URL=postgres_url, REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN
        )
    )
    health = httpx.get(server.base_url + "/api/analytics/health").json()
    assert (health["status"], health["database"], health["storageEngine"]) == (
        "healthy",
        "connected",
        "postgresql",
    )
    server.signal()
    assert server.wait_exit() == 0


def test_serve_with_redis_reports_it_connected(serve, redis_url):
    server = serve(
        env=service_env(REVIVATECH_REDIS_URL=redis_url, REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN)
    )
    assert httpx.get(server.base_url + "/api/analytics/health").json()["redis"] == "connected"


def test_injected_crash_is_restarted_and_reported(serve):
    server = serve(
        env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN, REVIVATECH_FAULTS_ENABLED="true")
    )
    answer = httpx.post(server.base_url + "/api/analytics/actors/loop_monitor/crash", headers=AUTH)
    assert answer.status_code == 202
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        children = httpx.get(server.base_url + "/api/analytics/actors", headers=AUTH).json()[
            "data"
        ]["children"]
        monitor = next(child for child in children if child["name"] == "loop_monitor")
        if monitor["restarts"] == 1 and monitor["state"] == "running":
            break
        time.sleep(0.05)
    assert monitor["restarts"] == 1 and monitor["state"] == "running", monitor
    assert monitor["lastError"]["type"] == "InjectedCrash"
    assert "InjectedCrash" in server.output()  # logged with its traceback
    server.signal()
    assert server.wait_exit() == 0


def test_unreachable_database_stops_the_start_and_exits_non_zero(serve, closed_port_url):
    # Before any actor starts: one line, no supervisor restarts (tests/e2e/test_operator_e2e.py).
    server = serve(
        env=service_env(
            REVIVATECH_STORAGE_URL=closed_port_url, REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN
        ),
        ready=False,
    )
    assert server.wait_exit(timeout=30) == 1
    output = server.output()
    assert "cannot connect to PostgreSQL" in output and "restart" not in output


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"REVIVATECH_WEB_PORT": "abc"}, "web.port"),
        ({"REVIVATECH_BATCH_MAX_EVENTS": "-5"}, "batch.max_events"),
        ({"REVIVATECH_STORAGE_URL": "mysql://somewhere/db"}, "storage.url"),
        ({"REVIVATECH_WEB_PROT": "3011"}, "REVIVATECH_WEB_PROT"),
    ],
)
def test_a_bad_setting_stops_the_start_with_one_line_and_exit_two(tmp_path, env, named):
    result = run_cli("serve", cwd=tmp_path, **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert not (tmp_path / "revivatech.db").exists()


def test_unknown_key_in_config_file_and_serve_port_flag(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[web]\nprot = 1\n")
    result = run_cli("serve", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2 and "web.prot" in result.stderr
    result = run_cli("serve", "--port", "70000", cwd=tmp_path)
    assert result.returncode == 2 and "web.port" in result.stderr


def test_check_config_prints_effective_settings_with_secrets_masked(tmp_path):
    result = run_cli(
        "check-config",
        cwd=tmp_path,
        REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
        REVIVATECH_WEB_PORT="4000",
        REVIVATECH_STORAGE_URL="postgresql://app:hunter2hunter2@db.example:5432/analytics",
    )
    assert result.returncode == 0, result.stderr
    assert ADMIN_TOKEN not in result.stdout and "hunter2" not in result.stdout
    assert "port = 4000" in result.stdout
    assert 'admin_tokens = ["***"]' in result.stdout
    assert "postgresql://app:***@db.example:5432/analytics" in result.stdout


def test_migrate_applies_once(tmp_path, postgres_url):
    first = run_cli("migrate", cwd=tmp_path, REVIVATECH_STORAGE_URL=postgres_url)
    assert first.returncode == 0, first.stderr
    assert "applied 0001_init" in first.stdout
    second = run_cli("migrate", cwd=tmp_path, REVIVATECH_STORAGE_URL=postgres_url)
    assert (
        second.returncode == 0 and "0 new" in second.stdout and "applied 0001" not in second.stdout
    )


def test_every_command_has_help(tmp_path):
    for command in ("serve", "migrate", "check-config"):
        result = run_cli(command, "--help", cwd=tmp_path)
        assert result.returncode == 0 and "--config" in result.stdout
    assert "--port" in run_cli("serve", "--help", cwd=tmp_path).stdout


def test_partitions_that_cannot_be_applied_stop_the_start_with_exit_2(tmp_path, postgres_url):
    """profiles.partitions may only grow, to a multiple, with every instance stopped: anything
    else is a configuration error before anything starts (docs/scaling.md)."""
    assert (
        run_cli("migrate", cwd=tmp_path, REVIVATECH_STORAGE_URL=postgres_url).returncode == 0
    )  # 64
    for command in (("migrate",), ("serve", "--port", str(free_port()))):
        done = run_cli(
            *command,
            cwd=tmp_path,
            REVIVATECH_STORAGE_URL=postgres_url,
            REVIVATECH_PROFILES_PARTITIONS="48",
        )
        assert done.returncode == 2, done.stderr
        assert (
            "configuration error: profiles.partitions is 48, but the database holds 64 partitions"
            in done.stderr
        )
