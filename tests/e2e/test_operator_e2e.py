"""An operator's first hour with the real ``serve`` and ``migrate`` processes: a start that
fails says why in one line, stops are prompt, a Redis outage is logged once each way, a SQLite
URL never makes folders, storage is announced once per start and migrations once each, and
``bench --mode ws`` runs on the runtime dependencies alone."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from ..conftest import free_port
from ..tcp_proxy import TcpProxy
from .conftest import ADMIN_TOKEN, next_of, run_cli, service_env, ws_url

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
REPOSITORY = Path(__file__).resolve().parents[2]
#: The longest a stop with nothing in flight may take, from SIGTERM to the process's exit.
IDLE_STOP_SECONDS = 0.5


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# ---------------------------------------------------------------- a start that fails


def test_a_port_in_use_stops_the_start_with_one_line_and_a_hint(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = run_cli("serve", "--port", str(port), cwd=tmp_path)
    assert refused.returncode == 1
    assert one_line(refused.stderr) == (
        f"revivatech-actors: error: cannot listen on 127.0.0.1:{port}: address already in use "
        "(is another serve running? set --port or REVIVATECH_WEB_PORT)"
    )


def test_a_free_port_is_served(serve):
    server = serve(env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN))
    assert httpx.get(server.base_url + "/healthz").status_code == 200


def test_an_unreachable_database_stops_the_start_with_one_line_and_a_hint(
    tmp_path, closed_port_url
):
    port = closed_port_url.rsplit(":", 1)[1].split("/")[0]
    refused = run_cli(
        "serve", "--port", str(free_port()), cwd=tmp_path, REVIVATECH_STORAGE_URL=closed_port_url
    )
    assert refused.returncode == 1
    line = one_line(refused.stderr)
    assert line.startswith(
        f"revivatech-actors: error: cannot connect to PostgreSQL at 127.0.0.1:{port}: "
    ), line
    assert line.endswith(
        "(is the database running? check storage.url or REVIVATECH_STORAGE_URL)"
    ), line


def test_the_traceback_of_a_failed_start_is_in_the_debug_log(tmp_path, closed_port_url):
    refused = run_cli(
        "serve",
        "--port",
        str(free_port()),
        cwd=tmp_path,
        REVIVATECH_STORAGE_URL=closed_port_url,
        REVIVATECH_LOG_LEVEL="debug",
    )
    assert refused.returncode == 1
    assert "Traceback" in refused.stderr and "StorageUnavailable" in refused.stderr
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .startswith("revivatech-actors: error: cannot connect")
    )


@pytest.mark.parametrize("host", ["not a host", "bad_host!", "-leading.example"])
def test_a_host_that_is_no_host_name_is_a_configuration_error(tmp_path, host):
    refused = run_cli("serve", f"--host={host}", "--port", str(free_port()), cwd=tmp_path)
    assert refused.returncode == 2
    line = one_line(refused.stderr)
    assert line.startswith(
        f"revivatech-actors: configuration error: web.host: must be an IP address or a host name, "
        f"got {host!r}"
    ), line
    assert not (tmp_path / "revivatech.db").exists()


def test_a_host_name_that_does_not_resolve_is_a_configuration_error(tmp_path):
    refused = run_cli(
        "serve", "--host", "nowhere.invalid", "--port", str(free_port()), cwd=tmp_path
    )
    assert refused.returncode == 2
    assert one_line(refused.stderr).startswith(
        "revivatech-actors: configuration error: web.host: cannot resolve 'nowhere.invalid'"
    ), refused.stderr


def test_a_host_name_that_resolves_is_served(serve):
    server = serve(
        env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN), args=("--host", "localhost")
    )
    assert httpx.get(server.base_url + "/healthz").status_code == 200


# ---------------------------------------------------------------- SQLite folders


@pytest.mark.parametrize("command", [("migrate",), ("serve", "--port")])
def test_a_sqlite_url_in_a_missing_folder_is_refused_naming_it(tmp_path, command):
    missing = tmp_path / "no" / "such"
    args = (*command, str(free_port())) if command[-1] == "--port" else command
    refused = run_cli(
        *args, cwd=tmp_path, REVIVATECH_STORAGE_URL=f"sqlite:///{missing}/analytics.db"
    )
    assert refused.returncode == 2
    assert one_line(refused.stderr) == (
        f"revivatech-actors: configuration error: storage.url: the folder {missing} does not exist "
        "(create it, or set storage.url or REVIVATECH_STORAGE_URL to a file in an existing folder)"
    )
    assert not (tmp_path / "no").exists()


def test_import_original_refuses_a_destination_in_a_missing_folder_in_one_line(
    tmp_path, postgres_url
):
    missing = tmp_path / "gone"
    refused = run_cli(
        "import-original",
        "--from",
        postgres_url,
        "--no-progress",
        cwd=tmp_path,
        REVIVATECH_STORAGE_URL=f"sqlite:///{missing}/analytics.db",
    )
    assert refused.returncode == 2
    assert one_line(refused.stderr).startswith(
        f"revivatech-actors: configuration error: storage.url: the folder {missing} does not exist "
    ), refused.stderr
    assert not missing.exists()


def test_a_sqlite_url_in_an_existing_folder_is_created(tmp_path):
    (tmp_path / "data").mkdir()
    done = run_cli(
        "migrate", cwd=tmp_path, REVIVATECH_STORAGE_URL=f"sqlite:///{tmp_path}/data/analytics.db"
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "analytics.db").exists()


# ------------------------------------------------------------ one line per start, one per migration


def test_storage_is_announced_once_per_start_with_the_password_masked(serve, new_database):
    url = new_database().replace(
        "postgresql://postgres@", "postgresql://postgres:not-a-real-secret@"
    )
    server = serve(
        env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN, REVIVATECH_STORAGE_URL=url)
    )
    output = server.output()
    announced = [line for line in output.splitlines() if "storage open" in line]
    assert len(announced) == 1, output
    assert (
        "postgresql://postgres:***@127.0.0.1:5432/" in announced[0]
        and "(postgresql" in announced[0]
    )
    assert "not-a-real-secret" not in output


def test_storage_is_announced_once_by_the_parent_of_several_workers(
    serve, postgres_url, redis_url, redis_prefix
):
    server = serve(
        env=service_env(
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
            REVIVATECH_STORAGE_URL=postgres_url,
            REVIVATECH_REDIS_URL=redis_url,
            REVIVATECH_REDIS_KEY_PREFIX=redis_prefix,
        ),
        args=("--workers", "2"),
    )
    announced = [line for line in server.output().splitlines() if "storage open" in line]
    assert len(announced) == 1, server.output()
    assert announced[0].endswith(f"; starting 2 workers on 127.0.0.1:{server.port} (SO_REUSEPORT)")


def test_migrate_prints_each_migration_once(tmp_path):
    done = run_cli("migrate", cwd=tmp_path, REVIVATECH_STORAGE_URL=f"sqlite:///{tmp_path}/m.db")
    assert done.returncode == 0, done.stderr
    both = done.stdout + done.stderr
    names = re.findall(r"applied (\d{4}_\w+)", done.stdout)
    assert names and names[0] == "0001_init"
    for name in names:
        assert both.count(name) == 1, both


# ---------------------------------------------------------------- stops


def stop_seconds(server) -> float:
    sent = server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0, server.output()
    return time.monotonic() - sent


def test_a_stop_with_nothing_in_flight_is_prompt_even_with_an_idle_keep_alive_connection(serve):
    server = serve(env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN))
    with httpx.Client(base_url=server.base_url) as client:  # its connection stays open, idle
        assert client.get("/api/analytics/realtime", headers=AUTH).status_code == 200
        took = stop_seconds(server)
    assert took < IDLE_STOP_SECONDS, f"stop took {took:.2f} s\n{server.output()}"


def test_a_stop_with_nothing_in_flight_is_prompt_on_postgresql_with_redis(
    serve, postgres_url, redis_url, redis_prefix
):
    """The live feed's Redis listener polls in a thread; a stop does not wait out its poll."""
    server = serve(
        env=service_env(
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
            REVIVATECH_STORAGE_URL=postgres_url,
            REVIVATECH_REDIS_URL=redis_url,
            REVIVATECH_REDIS_KEY_PREFIX=redis_prefix,
        )
    )
    with httpx.Client(base_url=server.base_url) as client:
        assert client.get("/api/analytics/realtime", headers=AUTH).status_code == 200
    time.sleep(0.5)
    took = stop_seconds(server)
    assert took < IDLE_STOP_SECONDS, f"stop took {took:.2f} s\n{server.output()}"


def test_a_stop_after_a_websocket_client_came_and_went_is_prompt(serve):
    server = serve(env=service_env(REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN))

    async def come_and_go() -> None:
        async with open_websocket_url(ws_url(server)) as ws:
            await next_of(ws, "connection_established")
            await ws.send_message(json.dumps({"type": "ping"}))
            await next_of(ws, "pong")  # the server's first protocol ping came before it

    trio.run(come_and_go)
    time.sleep(0.2)
    took = stop_seconds(server)
    assert took < IDLE_STOP_SECONDS, f"stop took {took:.2f} s\n{server.output()}"


# ---------------------------------------------------------------- Redis away


class ProxyThread:
    """A TcpProxy to the real Redis on a trio loop of its own, so that the test can block."""

    def __init__(self, host: str, port: int) -> None:
        self.proxy = TcpProxy(host, port)
        self._token: trio.lowlevel.TrioToken | None = None
        self._started = threading.Event()
        self._done: trio.Event | None = None
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._done = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(self.proxy.run)
            self._started.set()
            await self._done.wait()
            nursery.cancel_scope.cancel()

    def __enter__(self) -> ProxyThread:
        self._thread.start()
        assert self._started.wait(5)
        return self

    def __exit__(self, *exc_info: object) -> None:
        trio.from_thread.run_sync(self._done.set, trio_token=self._token)
        self._thread.join(5)

    def switch_off(self) -> None:
        trio.from_thread.run_sync(self.proxy.switch_off, trio_token=self._token)

    def switch_on(self) -> None:
        trio.from_thread.run(self.proxy.switch_on, trio_token=self._token)


def redis_lines(output: str) -> list[str]:
    return [
        line
        for line in output.splitlines()
        if "redis" in line.lower() and re.search(r" (WARNING|ERROR|INFO) ", line)
    ]


def test_redis_away_is_logged_once_and_its_return_once(serve, redis_url, redis_prefix):
    host, port = redis_url.split("//")[1].split("/")[0].split(":")
    with ProxyThread(host, int(port)) as proxied:
        server = serve(
            env=service_env(
                REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN,
                REVIVATECH_REDIS_URL=f"redis://127.0.0.1:{proxied.proxy.port}/0",
                REVIVATECH_REDIS_KEY_PREFIX=redis_prefix,
                REVIVATECH_PROFILES_FLUSH_INTERVAL="0.2",
            )
        )
        before = len(redis_lines(server.output()))
        event = {"user_fingerprint": "fp-redis-away", "session_id": "s1", "event_type": "page_view"}
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            proxied.switch_off()
            for _ in range(8):  # every part that uses Redis, for 3 s and more
                assert client.post("/api/analytics/events", json=event).status_code == 200
                assert client.get("/api/analytics/realtime", headers=AUTH).status_code == 200
                assert client.get("/api/analytics/funnel", headers=AUTH).status_code == 200
                time.sleep(0.4)
            away = redis_lines(server.output())[before:]
            assert len(away) == 1 and " WARNING " in away[0], "\n".join(away)
            proxied.switch_on()
            deadline = time.monotonic() + 10
            while len(redis_lines(server.output())) < before + 2 and time.monotonic() < deadline:
                client.get("/api/analytics/realtime", headers=AUTH)
                time.sleep(0.2)
            for _ in range(5):  # back for good: nothing more is logged
                assert client.post("/api/analytics/events", json=event).status_code == 200
                assert client.get("/api/analytics/funnel", headers=AUTH).status_code == 200
                time.sleep(0.3)
        lines = redis_lines(server.output())[before:]
        assert len(lines) == 2, "\n".join(lines)
        assert " INFO " in lines[1] and "Redis reachable again" in lines[1], lines[1]


# ------------------------------------------------------------ bench --mode ws after a plain install

#: Runs the CLI with every distribution that only the ``test`` extra brings made unimportable,
#: as after ``pip install -e .`` without ``[test]``.
RUNTIME_ONLY = """
import importlib.metadata, re, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
def names(requirements):
    return {re.split(r"[\\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("_", "-")
            for r in requirements}
test_only = names(project["optional-dependencies"]["test"]) - names(project["dependencies"])
blocked = {module for module, dists in importlib.metadata.packages_distributions().items()
           if {d.lower().replace("_", "-") for d in dists} & test_only}
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (a test-only dependency)")
sys.meta_path.insert(0, Blocker())
from revivatech_actors.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_bench_ws_runs_on_the_runtime_dependencies_alone(serve, tmp_path):
    server = serve(
        env=service_env(
            REVIVATECH_AUTH_ADMIN_TOKENS=ADMIN_TOKEN, REVIVATECH_BROADCAST_MIN_INTERVAL="0.1"
        )
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            RUNTIME_ONLY,
            str(REPOSITORY / "pyproject.toml"),
            "bench",
            "--mode",
            "ws",
            "--url",
            server.base_url,
            "--clients",
            "2",
            "--rate",
            "100",
            "--duration",
            "2",
            "--token",
            ADMIN_TOKEN,
            "--json",
        ],
        cwd=tmp_path,
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["updates_received"] > 0


def test_the_blocker_refuses_what_only_the_test_extra_brings(tmp_path):
    """The check above can fail: httpx is a test-only dependency, and importing it is refused."""
    probe = RUNTIME_ONLY.replace(
        "from revivatech_actors.cli import main\nsys.exit(main(sys.argv[2:]))", "import httpx"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(REPOSITORY / "pyproject.toml")],
        cwd=tmp_path,
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1 and "a test-only dependency" in done.stderr


def test_serve_does_not_load_the_websocket_bench_client(tmp_path):
    probe = (
        "import sys; from revivatech_actors import cli; cli._parser(); "
        "print(sorted(m for m in sys.modules"
        " if m.startswith(('trio_websocket', 'revivatech_actors.bench'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=service_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
