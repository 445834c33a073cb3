"""Tests for revivatech_actors.config: layering, validation messages, masking, TOML rendering."""

import hashlib
import importlib.resources
import logging
import os
import re
import tomllib

import attrs
import pytest

from revivatech_actors.config import (
    ConfigError,
    Settings,
    env_var_name,
    is_host,
    load_settings,
    render_toml,
    settings_as_dict,
)

TOKEN_A = "tok-aaaaaaaaaaaaaaaa"  # 20 characters
TOKEN_B = "tok-bbbbbbbbbbbbbbbbbbbb"  # 24 characters

EXPECTED_DEFAULTS = {
    "web": {
        "host": "127.0.0.1",
        "port": 3011,
        "workers": 1,
        "access_log": False,
        "trusted_proxies": [],
        "header_timeout": 10.0,
        "body_timeout": 30.0,
        "max_connections": 15000,
        "max_header_size": 16384,
    },
    "storage": {
        "url": "sqlite:///revivatech.db",
        "connect_timeout": 5.0,
        "ping_timeout": 1.0,
        "health_interval": 2.0,
    },
    "redis": {"url": "", "ping_timeout": 1.0, "key_prefix": "revivatech:"},
    "auth": {
        "admin_tokens": [],
        "write_keys": [],
        "jwt_secret": "",
        "jwt_admin_roles": ["ADMIN", "SUPER_ADMIN"],
    },
    "cors": {
        "ingest_origins": ["*"],
        "allowed_origins": [],
        "allow_credentials": True,
        "max_age": 600,
    },
    "supervisor": {
        "max_restarts": 5,
        "max_seconds": 30.0,
        "backoff_initial": 0.1,
        "backoff_max": 5.0,
        "child_shutdown_timeout": 5.0,
    },
    "shutdown": {"timeout": 30.0},
    "faults": {"enabled": False},
    "log": {"level": "info", "format": "text"},
    "metrics": {"token": "", "port": 0, "host": "127.0.0.1"},
    "ingest": {
        "ack": "durable",
        "max_batch": 500,
        "max_body": 1048576,
        "enqueue_timeout": 0.5,
        "ack_timeout": 30.0,
        "inbox": 10000,
        "client_ip": "anonymized",
        "max_future_seconds": 3600.0,
        "max_age_days": 0,
    },
    "limits": {"admin_rate": "600/1m", "ingest_rate": "1200/1m", "ws_connect_rate": "120/1m"},
    "batch": {"max_events": 2000, "max_wait": 0.0},
    "broadcast": {
        "interval": 30.0,
        "min_interval": 0.05,
        "max_share": 0.5,
        "max_sends_per_second": 7500.0,
        "max_clients": 10000,
        "public_realtime": False,
        "max_public_clients": 1000,
        "ping_interval": 20.0,
        "stuck_timeout": 10.0,
        "max_message_size": 65536,
        "max_messages_per_second": 20.0,
        "max_subscriptions": 100,
    },
    "profiles": {
        "idle_timeout": 300.0,
        "max_active": 20000,
        "flush_interval": 1.0,
        "max_write_share": 0.1,
        "max_touchpoints": 500,
        "max_unwritten_events": 500000,
        "partitions": 64,
        "lease_ttl": 2.0,
        "poll_interval": 0.5,
    },
    "scoring": {
        "churned_after_days": 60,
        "at_risk_churn": 60.0,
        "loyal_min_bookings": 2,
        "engaged_min_engagement": 50.0,
        "record_threshold": 1.0,
        "max_share": 0.05,
        "rescore_interval": 3600.0,
        "horizon_days": 9.0,
        "backtest_cutoffs": 4,
        "learn_interval": 21600.0,
        "learn_work_share": 0.2,
        "learn_min_positives": 200,
        "learn_min_gain": 0.01,
        "engagement": {
            "sessions_weight": 30.0,
            "sessions_cap": 10.0,
            "pages_per_session_weight": 25.0,
            "pages_per_session_cap": 5.0,
            "session_seconds_weight": 25.0,
            "session_seconds_cap": 600.0,
            "days_active_weight": 20.0,
            "days_active_cap": 10.0,
            "recency_half_life_days": 30.0,
            "confidence_events": 20.0,
        },
        "lead": {
            "open_bookings_weight": 30.0,
            "open_bookings_cap": 1.0,
            "quotes_weight": 20.0,
            "quotes_cap": 1.0,
            "contacts_weight": 15.0,
            "contacts_cap": 1.0,
            "pricing_views_weight": 15.0,
            "pricing_views_cap": 3.0,
            "service_views_weight": 10.0,
            "service_views_cap": 5.0,
            "return_visits_weight": 10.0,
            "return_visits_cap": 2.0,
            "recency_half_life_days": 7.0,
            "after_booking_half_life_days": 30.0,
            "confidence_events": 15.0,
        },
        "churn": {
            "absence_weight": 50.0,
            "absence_scale_days": 30.0,
            "overdue_weight": 30.0,
            "overdue_cap": 3.0,
            "default_gap_days": 14.0,
            "few_bookings_weight": 20.0,
            "few_bookings_cap": 2.0,
            "confidence_days": 5.0,
        },
        "price_sensitivity": {
            "pricing_share_weight": 30.0,
            "pricing_share_cap": 0.3,
            "discounts_weight": 30.0,
            "discounts_cap": 2.0,
            "abandoned_weight": 25.0,
            "abandoned_cap": 2.0,
            "low_order_value_weight": 15.0,
            "reference_order_value": 100.0,
            "confidence_events": 25.0,
        },
    },
    "realtime": {"window": 300, "conversion_types": ["booking_completed"], "top_pages": 10},
    "funnel": {
        "steps": ["page_view", "service_viewed", "booking_started", "booking_completed"],
        "window": 86400.0,
        "range": 2592000.0,
        "cache_ttl": 30.0,
        "timeout": 30.0,
        "named": {
            "booking": ["page_view", "service_viewed", "booking_started", "booking_completed"]
        },
    },
    "retention": {"days": 0, "interval": 3600.0, "batch_size": 2000, "max_share": 0.02},
}


def load(**kwargs):
    kwargs.setdefault("environ", {})
    return load_settings(**kwargs)


def config_error(**kwargs) -> ConfigError:
    """The ConfigError that load() raises; also checks that its message is one line naming the
    key."""
    with pytest.raises(ConfigError) as info:
        load(**kwargs)
    err = info.value
    assert "\n" not in str(err)
    assert str(err).startswith(f"{err.key}: ")
    assert err.problem in str(err)
    return err


@pytest.fixture(autouse=True)
def _capture_config_warnings(caplog):
    """Deprecated names are logged by the loader; the tests below read those warnings."""
    caplog.set_level(logging.WARNING, logger="revivatech_actors.config")


def write(tmp_path, text: str):
    path = tmp_path / "revivatech.toml"
    path.write_text(text, encoding="utf-8")
    return path


def default_toml_text() -> str:
    return (
        importlib.resources.files("revivatech_actors._config")
        .joinpath("default.toml")
        .read_text("utf-8")
    )


# --- defaults and default.toml -----------------------------------------------------------------


def test_defaults_load_with_expected_values():
    settings = load()
    assert settings_as_dict(settings, mask_secrets=False) == EXPECTED_DEFAULTS
    assert settings.web.port == 3011
    assert settings.auth.admin_tokens == ()
    assert settings.faults.enabled is False
    assert isinstance(settings.batch.max_wait, float)


def is_table(field: attrs.Attribute) -> bool:
    return isinstance(field.type, type) and attrs.has(field.type)


def setting_paths(cls: type = Settings, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of every setting, ("web", "port") or ("scoring", "lead", "quotes_weight")."""
    paths = []
    for field in attrs.fields(cls):
        here = (*path, field.name)
        paths += setting_paths(field.type, here) if is_table(field) else [here]
    return paths


def table_count(cls: type = Settings) -> int:
    """How many [tables] (sections and subtables such as [scoring.lead]) are below ``cls``."""
    return sum(1 + table_count(field.type) for field in attrs.fields(cls) if is_table(field))


def test_every_field_is_in_default_toml_and_nothing_else():
    def check(cls: type, table: dict, where: str) -> None:
        assert set(table) == {field.name for field in attrs.fields(cls)}, where
        for field in attrs.fields(cls):
            if is_table(field):
                check(field.type, table[field.name], f"{where}.{field.name}")

    check(Settings, tomllib.loads(default_toml_text()), "default.toml")


def test_every_key_and_section_in_default_toml_has_a_comment_above():
    lines = default_toml_text().splitlines()
    checked = 0
    for number, line in enumerate(lines):
        if re.match(r"^\s*(\[[a-z_.]+\]|[a-z_]+\s*=)", line):
            above = lines[number - 1].strip()
            assert above.startswith("#") and len(above) > 2, (
                f"no comment above line {number + 1}: {line!r}"
            )
            checked += 1
    assert checked == len(setting_paths()) + table_count()


def test_settings_are_frozen():
    settings = load()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        settings.web.port = 1


# --- layering ----------------------------------------------------------------------------------


def test_file_overrides_defaults(tmp_path):
    path = write(
        tmp_path,
        f'[web]\nport = 8080\n[auth]\nadmin_tokens = ["{TOKEN_A}"]\n[batch]\nmax_wait = 1\n',
    )
    settings = load(config_file=path)
    assert settings.web.port == 8080
    assert settings.web.host == "127.0.0.1"
    assert settings.auth.admin_tokens == (TOKEN_A,)
    assert settings.batch.max_wait == 1.0 and isinstance(settings.batch.max_wait, float)


def test_file_accepts_comma_separated_tokens(tmp_path):
    path = write(tmp_path, f'[auth]\nadmin_tokens = "{TOKEN_A}, {TOKEN_B}"\n')
    assert load(config_file=str(path)).auth.admin_tokens == (TOKEN_A, TOKEN_B)


@pytest.mark.parametrize(
    ("name", "text", "path", "expected"),
    [
        ("REVIVATECH_WEB_HOST", "0.0.0.0", ("web", "host"), "0.0.0.0"),
        ("REVIVATECH_WEB_PORT", "8081", ("web", "port"), 8081),
        (
            "REVIVATECH_STORAGE_URL",
            "postgresql://app@db:5432/analytics",
            ("storage", "url"),
            "postgresql://app@db:5432/analytics",
        ),
        ("REVIVATECH_REDIS_URL", "redis://cache:6379/0", ("redis", "url"), "redis://cache:6379/0"),
        (
            "REVIVATECH_AUTH_ADMIN_TOKENS",
            f" {TOKEN_A} ,, {TOKEN_B} ",
            ("auth", "admin_tokens"),
            (TOKEN_A, TOKEN_B),
        ),
        ("REVIVATECH_AUTH_ADMIN_TOKENS", "", ("auth", "admin_tokens"), ()),
        ("REVIVATECH_INGEST_ACK", "accepted", ("ingest", "ack"), "accepted"),
        ("REVIVATECH_BATCH_MAX_EVENTS", "100", ("batch", "max_events"), 100),
        ("REVIVATECH_BATCH_MAX_WAIT", "0.25", ("batch", "max_wait"), 0.25),
        ("REVIVATECH_BROADCAST_INTERVAL", "5", ("broadcast", "interval"), 5.0),
        ("REVIVATECH_REALTIME_WINDOW", "60", ("realtime", "window"), 60),
    ],
)
def test_contract_environment_variables(name, text, path, expected):
    assert env_var_name(*path) == name
    settings = load(environ={name: text})
    assert getattr(getattr(settings, path[0]), path[1]) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("YES", True),
        ("On", True),
        ("1", True),
        ("false", False),
        ("no", False),
        ("OFF", False),
        ("0", False),
    ],
)
def test_env_booleans(text, expected):
    assert load(environ={"REVIVATECH_FAULTS_ENABLED": text}).faults.enabled is expected


def test_overrides_mapping():
    settings = load(overrides={"web.host": "0.0.0.0", "web.port": 9000, "batch.max_wait": None})
    assert (settings.web.host, settings.web.port) == ("0.0.0.0", 9000)
    assert settings.batch.max_wait == 0.0  # None is skipped
    assert load(overrides={"web.port": "9001"}).web.port == 9001


def test_precedence_overrides_env_file_defaults(tmp_path):
    path = write(tmp_path, '[web]\nport = 1001\nhost = "file-host"\n[realtime]\nwindow = 10\n')
    environ = {"REVIVATECH_WEB_PORT": "1002", "REVIVATECH_WEB_HOST": "env-host"}
    settings = load(config_file=path, environ=environ, overrides={"web.port": 1003})
    assert settings.web.port == 1003  # override beats env
    assert settings.web.host == "env-host"  # env beats file
    assert settings.realtime.window == 10  # file beats defaults
    assert settings.batch.max_events == 2000  # defaults fill the rest


def test_config_env_var_is_the_fallback_file(tmp_path):
    path = write(tmp_path, "[web]\nport = 4242\n")
    assert load(environ={"REVIVATECH_CONFIG": str(path)}).web.port == 4242
    other = tmp_path / "other.toml"
    other.write_text("[web]\nport = 4343\n")
    assert load(config_file=other, environ={"REVIVATECH_CONFIG": str(path)}).web.port == 4343


def test_test_suite_and_bench_variables_are_ignored():
    settings = load(
        environ={
            "REVIVATECH_TEST_POSTGRES_URL": "postgresql://x@y/z",
            "REVIVATECH_BENCH_TOKEN": "t" * 20,
            "PATH": "/bin",
        }
    )
    assert settings.storage.url == "sqlite:///revivatech.db"


# --- unknown names -----------------------------------------------------------------------------


def test_unknown_section_in_file(tmp_path):
    path = write(tmp_path, "[webb]\nport = 1\n")
    err = config_error(config_file=path)
    assert err.key == "webb"
    assert "unknown section" in err.problem
    assert str(path) in str(err)


def test_unknown_key_in_file(tmp_path):
    path = write(tmp_path, "[web]\nprot = 1\n")
    err = config_error(config_file=path)
    assert err.key == "web.prot"
    assert str(err) == (
        "web.prot: unknown setting (known in [web]: host, port, workers, access_log, "
        "trusted_proxies, header_timeout, body_timeout, max_connections, max_header_size) "
        f"(from {path})"
    )


def test_key_outside_a_section(tmp_path):
    err = config_error(config_file=write(tmp_path, "port = 1\n"))
    assert err.key == "port"
    assert "[section]" in err.problem


def test_unknown_env_var_is_named_with_a_hint():
    err = config_error(environ={"REVIVATECH_WEB_PROT": "8080"})
    assert err.key == "REVIVATECH_WEB_PROT"
    assert (
        str(err)
        == "REVIVATECH_WEB_PROT: unknown environment variable; did you mean REVIVATECH_WEB_PORT?"
    )


def test_unknown_override():
    err = config_error(overrides={"web.prot": 1})
    assert err.key == "web.prot"
    assert "(from override)" in str(err)


# --- wrong types and impossible values ---------------------------------------------------------


def test_env_string_for_int_names_key_problem_and_variable():
    err = config_error(environ={"REVIVATECH_WEB_PORT": "abc"})
    assert (
        str(err)
        == "web.port: must be an integer between 1 and 65535, got 'abc' (from REVIVATECH_WEB_PORT)"
    )
    assert (err.key, err.source) == ("web.port", "REVIVATECH_WEB_PORT")


@pytest.mark.parametrize(
    ("toml", "key", "message"),
    [
        ('[web]\nport = "8080"', "web.port", "must be an integer between 1 and 65535, got '8080'"),
        ("[web]\nport = true", "web.port", "must be an integer between 1 and 65535, got True"),
        ("[web]\nport = 80.0", "web.port", "must be an integer between 1 and 65535, got 80.0"),
        ("[faults]\nenabled = 1", "faults.enabled", "must be true or false, got 1"),
        ("[batch]\nmax_wait = false", "batch.max_wait", "must be a number >= 0, got False"),
        (
            "[storage]\nurl = 5",
            "storage.url",
            "must be a URL like sqlite:///revivatech.db or postgresql://host/db",
        ),
        (
            "[auth]\nadmin_tokens = [1, 2]",
            "auth.admin_tokens",
            "must be a list of strings or one comma-separated string",
        ),
    ],
)
def test_wrong_types_in_file(tmp_path, toml, key, message):
    path = write(tmp_path, toml + "\n")
    err = config_error(config_file=path)
    assert err.key == key
    assert err.problem.startswith(message)
    assert str(err).endswith(f"(from {path})")


@pytest.mark.parametrize(
    ("env", "key", "problem"),
    [
        ({"REVIVATECH_WEB_PORT": "0"}, "web.port", "must be an integer between 1 and 65535, got 0"),
        (
            {"REVIVATECH_WEB_PORT": "70000"},
            "web.port",
            "must be an integer between 1 and 65535, got 70000",
        ),
        ({"REVIVATECH_WEB_HOST": " "}, "web.host", "must be an IP address or a host name, got ' '"),
        (
            {"REVIVATECH_BATCH_MAX_EVENTS": "-1"},
            "batch.max_events",
            "must be an integer >= 1, got -1",
        ),
        (
            {"REVIVATECH_BATCH_MAX_WAIT": "-0.5"},
            "batch.max_wait",
            "must be a number >= 0, got -0.5",
        ),
        ({"REVIVATECH_SHUTDOWN_TIMEOUT": "0"}, "shutdown.timeout", "must be a number > 0, got 0.0"),
        (
            {"REVIVATECH_SHUTDOWN_TIMEOUT": "nan"},
            "shutdown.timeout",
            "must be a number > 0, got nan",
        ),
        (
            {"REVIVATECH_INGEST_MAX_BODY": "100"},
            "ingest.max_body",
            "must be an integer >= 1024, got 100",
        ),
        (
            {"REVIVATECH_INGEST_ACK": "maybe"},
            "ingest.ack",
            "must be one of durable, accepted, got 'maybe'",
        ),
        (
            {"REVIVATECH_LOG_LEVEL": "verbose"},
            "log.level",
            "must be one of debug, info, warning, error, got 'verbose'",
        ),
        (
            {"REVIVATECH_FAULTS_ENABLED": "maybe"},
            "faults.enabled",
            "must be true or false, got 'maybe'",
        ),
        (
            {"REVIVATECH_SUPERVISOR_BACKOFF_MAX": "0.05"},
            "supervisor.backoff_max",
            "must be >= backoff_initial (0.1), got 0.05",
        ),
        (
            {"REVIVATECH_STORAGE_URL": "mysql://db/x"},
            "storage.url",
            "unsupported scheme 'mysql' (use sqlite:/// or postgresql://)",
        ),
        (
            {"REVIVATECH_STORAGE_URL": "revivatech.db"},
            "storage.url",
            "is not a URL; use sqlite:/// or postgresql://",
        ),
        (
            {"REVIVATECH_STORAGE_URL": "sqlite:///"},
            "storage.url",
            "use sqlite:///relative.db, sqlite:////absolute.db or sqlite:///:memory:",
        ),
        (
            {"REVIVATECH_STORAGE_URL": "sqlite://revivatech.db"},
            "storage.url",
            "use sqlite:///relative.db, sqlite:////absolute.db or sqlite:///:memory:",
        ),
        (
            {"REVIVATECH_STORAGE_URL": "postgresql://"},
            "storage.url",
            "a postgresql URL needs a host or path",
        ),
        (
            {"REVIVATECH_STORAGE_URL": "postgresql://db:99999/x"},
            "storage.url",
            "cannot parse URL (check the host and port); use sqlite:/// or postgresql://",
        ),
        (
            {"REVIVATECH_REDIS_URL": "http://cache"},
            "redis.url",
            "unsupported scheme 'http' (use redis://, rediss:// or unix://, or leave empty)",
        ),
        ({"REVIVATECH_REDIS_URL": "redis:///0"}, "redis.url", "a redis URL needs a host"),
        ({"REVIVATECH_REDIS_URL": "unix://"}, "redis.url", "a unix URL needs a path"),
        (
            {"REVIVATECH_RETENTION_DAYS": "-1"},
            "retention.days",
            "must be an integer between 0 and 36500, got -1",
        ),
        (
            {"REVIVATECH_RETENTION_INTERVAL": "0"},
            "retention.interval",
            "must be a number > 0, got 0.0",
        ),
        (
            {"REVIVATECH_RETENTION_BATCH_SIZE": "0"},
            "retention.batch_size",
            "must be an integer between 1 and 100000, got 0",
        ),
        (
            {"REVIVATECH_RETENTION_MAX_SHARE": "1.5"},
            "retention.max_share",
            "must be a number > 0 and <= 1, got 1.5",
        ),
    ],
)
def test_impossible_values(env, key, problem):
    err = config_error(environ=env)
    (name,) = env
    assert (err.key, err.problem, err.source) == (key, problem, name)
    assert str(err) == f"{key}: {problem} (from {name})"


# --- web.workers, judged with the other settings ------------------------------------------------

POSTGRES = "postgresql://db.example/analytics"
REDIS = "redis://cache.example:6379/0"


def test_several_workers_with_postgresql_and_redis():
    env = {
        "REVIVATECH_WEB_WORKERS": "4",
        "REVIVATECH_STORAGE_URL": POSTGRES,
        "REVIVATECH_REDIS_URL": REDIS,
    }
    assert load(environ=env).web.workers == 4
    assert load(environ=env, overrides={"web.workers": "1"}).web.workers == 1


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"REVIVATECH_REDIS_URL": REDIS},
            "more than 1 needs PostgreSQL storage (storage.url is SQLite, whose one file "
            "cannot take several processes' writes), got 2",
        ),
        (
            {"REVIVATECH_STORAGE_URL": POSTGRES},
            "more than 1 needs redis.url (without Redis each worker would count its own "
            "realtime figures and send its own live updates), got 2",
        ),
        (
            {},
            "more than 1 needs PostgreSQL storage (storage.url is SQLite, whose one file "
            "cannot take several processes' writes), got 2",
        ),  # both missing: the storage is named first
    ],
)
def test_several_workers_need_postgresql_and_redis(env, problem):
    err = config_error(environ={**env, "REVIVATECH_WEB_WORKERS": "2"})
    assert (err.key, err.problem, err.source) == ("web.workers", problem, "REVIVATECH_WEB_WORKERS")
    err = config_error(environ=env, overrides={"web.workers": "2"})
    assert (err.key, err.source) == ("web.workers", "override")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0", "must be an integer >= 1, got 0"),
        ("-1", "must be an integer >= 1, got -1"),
        ("two", "must be an integer >= 1, got 'two'"),
        ("1.5", "must be an integer >= 1, got '1.5'"),
    ],
)
def test_workers_must_be_a_whole_number_from_one(text, problem):
    err = config_error(environ={"REVIVATECH_WEB_WORKERS": text})
    assert (err.key, err.problem) == ("web.workers", problem)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///revivatech.db",
        "sqlite:////var/lib/revivatech.db",
        "sqlite:///:memory:",
        "postgresql://user:pw@db:5432/analytics",
        "postgres://db/analytics",
        "postgresql:///analytics",
    ],
)
def test_valid_storage_urls(url):
    assert load(environ={"REVIVATECH_STORAGE_URL": url}).storage.url == url


@pytest.mark.parametrize(
    "url", ["", "redis://cache:6379/0", "rediss://:pw@cache", "unix:///run/redis.sock"]
)
def test_valid_redis_urls(url):
    assert load(environ={"REVIVATECH_REDIS_URL": url}).redis.url == url


def test_short_admin_token_is_refused_without_printing_it(tmp_path):
    short = "hunter2secret"  # 13 characters
    err = config_error(environ={"REVIVATECH_AUTH_ADMIN_TOKENS": f"{TOKEN_A},{short}"})
    assert err.key == "auth.admin_tokens"
    assert "at least 16 characters" in err.problem and "token 2 of 2" in err.problem
    assert short not in str(err) and TOKEN_A not in str(err)
    err = config_error(config_file=write(tmp_path, f'[auth]\nadmin_tokens = ["{short}"]\n'))
    assert err.key == "auth.admin_tokens" and short not in str(err)


JWT_SECRET = "jwt-secret-of-the-main-app-0123456789"  # 36 bytes


def test_jwt_settings_from_env_and_file(tmp_path):
    settings = load(
        environ={
            "REVIVATECH_AUTH_JWT_SECRET": JWT_SECRET,
            "REVIVATECH_AUTH_JWT_ADMIN_ROLES": "ADMIN, OWNER",
        }
    )
    assert (settings.auth.jwt_secret, settings.auth.jwt_admin_roles) == (
        JWT_SECRET,
        ("ADMIN", "OWNER"),
    )
    path = write(
        tmp_path, f'[auth]\njwt_secret = "{JWT_SECRET}"\njwt_admin_roles = ["SUPER_ADMIN"]\n'
    )
    assert load(config_file=path).auth.jwt_admin_roles == ("SUPER_ADMIN",)


def test_short_jwt_secret_is_refused_without_printing_it(tmp_path):
    short = "main-app-secret"
    err = config_error(environ={"REVIVATECH_AUTH_JWT_SECRET": short})
    assert (
        err.key == "auth.jwt_secret"
        and "at least 32 bytes" in err.problem
        and short not in str(err)
    )
    err = config_error(config_file=write(tmp_path, "[auth]\njwt_secret = 12345\n"))
    assert err.key == "auth.jwt_secret" and "12345" not in str(err)


def test_jwt_admin_roles_may_not_be_empty():
    err = config_error(environ={"REVIVATECH_AUTH_JWT_ADMIN_ROLES": " , "})
    assert (err.key, err.problem) == ("auth.jwt_admin_roles", "must name at least one role")


def test_cors_origins_from_env_and_file(tmp_path):
    settings = load(
        environ={
            "REVIVATECH_CORS_ALLOWED_ORIGINS": "http://localhost:3010, https://admin.example.com",
            "REVIVATECH_CORS_INGEST_ORIGINS": "https://shop.example.com",
            "REVIVATECH_CORS_ALLOW_CREDENTIALS": "false",
            "REVIVATECH_CORS_MAX_AGE": "0",
        }
    )
    cors = settings.cors
    assert cors.allowed_origins == ("http://localhost:3010", "https://admin.example.com")
    assert cors.ingest_origins == ("https://shop.example.com",)
    assert (cors.allow_credentials, cors.max_age) == (False, 0)
    path = write(
        tmp_path, '[cors]\ningest_origins = []\nallowed_origins = ["http://127.0.0.1:8080"]\n'
    )
    assert load(config_file=path).cors.ingest_origins == ()
    assert load(config_file=path).cors.allowed_origins == ("http://127.0.0.1:8080",)


@pytest.mark.parametrize(
    ("env", "key", "problem"),
    [
        (
            {"REVIVATECH_CORS_ALLOWED_ORIGINS": "*"},
            "cors.allowed_origins",
            '"*" is not allowed here: these origins may send credentials; list each origin',
        ),
        (
            {"REVIVATECH_CORS_ALLOWED_ORIGINS": "http://localhost:3010/"},
            "cors.allowed_origins",
            "an origin is scheme://host[:port], got 'http://localhost:3010/' "
            "(no path: 'http://localhost:3010')",
        ),
        (
            {"REVIVATECH_CORS_INGEST_ORIGINS": "example.com"},
            "cors.ingest_origins",
            "an origin is scheme://host[:port], got 'example.com'",
        ),
        (
            {"REVIVATECH_CORS_INGEST_ORIGINS": "https://x.example/path"},
            "cors.ingest_origins",
            "an origin is scheme://host[:port], got 'https://x.example/path'",
        ),
        (
            {"REVIVATECH_CORS_MAX_AGE": "86401"},
            "cors.max_age",
            "must be an integer between 0 and 86400, got 86401",
        ),
        (
            {"REVIVATECH_CORS_ALLOW_CREDENTIALS": "maybe"},
            "cors.allow_credentials",
            "must be true or false, got 'maybe'",
        ),
        (
            {"REVIVATECH_BROADCAST_MAX_PUBLIC_CLIENTS": "-1"},
            "broadcast.max_public_clients",
            "must be an integer >= 0, got -1",
        ),
        (
            {"REVIVATECH_BROADCAST_PUBLIC_REALTIME": "sometimes"},
            "broadcast.public_realtime",
            "must be true or false, got 'sometimes'",
        ),
        (
            {"REVIVATECH_BROADCAST_MAX_MESSAGE_SIZE": "100"},
            "broadcast.max_message_size",
            "must be an integer >= 128, got 100",
        ),
        (
            {"REVIVATECH_BROADCAST_MAX_MESSAGES_PER_SECOND": "0"},
            "broadcast.max_messages_per_second",
            "must be a number > 0, got 0.0",
        ),
        (
            {"REVIVATECH_BROADCAST_MAX_SUBSCRIPTIONS": "0"},
            "broadcast.max_subscriptions",
            "must be an integer >= 1, got 0",
        ),
        (
            {"REVIVATECH_WEB_HEADER_TIMEOUT": "0"},
            "web.header_timeout",
            "must be a number > 0, got 0.0",
        ),
        (
            {"REVIVATECH_WEB_BODY_TIMEOUT": "-1"},
            "web.body_timeout",
            "must be a number > 0, got -1.0",
        ),
        (
            {"REVIVATECH_WEB_MAX_CONNECTIONS": "0"},
            "web.max_connections",
            "must be an integer >= 1, got 0",
        ),
        (
            {"REVIVATECH_WEB_MAX_HEADER_SIZE": "512"},
            "web.max_header_size",
            "must be an integer >= 1024, got 512",
        ),
        (
            {"REVIVATECH_INGEST_MAX_FUTURE_SECONDS": "-1"},
            "ingest.max_future_seconds",
            "must be a number >= 0, got -1.0",
        ),
        (
            {"REVIVATECH_INGEST_MAX_AGE_DAYS": "-1"},
            "ingest.max_age_days",
            "must be an integer >= 0, got -1",
        ),
    ],
)
def test_impossible_cors_and_broadcast_values(env, key, problem):
    err = config_error(environ=env)
    assert (err.key, err.problem) == (key, problem)


def test_jwt_secret_is_masked_when_set_and_shown_empty_when_off():
    assert settings_as_dict(load())["auth"]["jwt_secret"] == ""
    shown = settings_as_dict(load(environ={"REVIVATECH_AUTH_JWT_SECRET": JWT_SECRET}))
    assert shown["auth"]["jwt_secret"] == "***"
    assert JWT_SECRET not in render_toml(shown)


def test_bad_value_in_file_is_reported_even_if_env_overrides_it(tmp_path):
    path = write(tmp_path, '[web]\nport = "x"\n')
    err = config_error(config_file=path, environ={"REVIVATECH_WEB_PORT": "8080"})
    assert err.key == "web.port" and str(path) in str(err)


# --- files -------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    err = config_error(config_file=path)
    assert err.key == str(path)
    assert "cannot read config file" in err.problem and "No such file" in err.problem


def test_missing_file_from_config_env_var(tmp_path):
    path = tmp_path / "nope.toml"
    err = config_error(environ={"REVIVATECH_CONFIG": str(path)})
    assert err.key == str(path)


def test_invalid_toml(tmp_path):
    path = write(tmp_path, "[web\nport = \n")
    err = config_error(config_file=path)
    assert err.key == str(path)
    assert err.problem.startswith("invalid TOML: ")


# --- display -----------------------------------------------------------------------------------


def test_settings_as_dict_masks_tokens_and_url_passwords():
    settings = load(
        environ={
            "REVIVATECH_AUTH_ADMIN_TOKENS": f"{TOKEN_A},{TOKEN_B}",
            "REVIVATECH_STORAGE_URL": "postgresql://app:s3cret@db:5432/analytics"
            "?password=other&sslmode=require",
            "REVIVATECH_REDIS_URL": "redis://:r3dis@cache:6379/0",
        }
    )
    shown = settings_as_dict(settings)
    assert shown["auth"]["admin_tokens"] == ["***", "***"]
    assert (
        shown["storage"]["url"]
        == "postgresql://app:***@db:5432/analytics?password=***&sslmode=require"
    )
    assert shown["redis"]["url"] == "redis://:***@cache:6379/0"
    text = render_toml(shown)
    for secret in (TOKEN_A, TOKEN_B, "s3cret", "other", "r3dis"):
        assert secret not in text
    plain = settings_as_dict(settings, mask_secrets=False)
    assert plain["auth"]["admin_tokens"] == [TOKEN_A, TOKEN_B]
    assert plain["redis"]["url"] == "redis://:r3dis@cache:6379/0"


def test_settings_as_dict_keeps_empty_tokens_and_plain_urls():
    shown = settings_as_dict(load())
    assert shown["auth"]["admin_tokens"] == []
    assert shown["storage"]["url"] == "sqlite:///revivatech.db"
    assert shown["redis"]["url"] == ""


def test_render_toml_round_trips():
    data = settings_as_dict(
        load(environ={"REVIVATECH_AUTH_ADMIN_TOKENS": TOKEN_A}), mask_secrets=False
    )
    assert tomllib.loads(render_toml(data)) == data
    odd = {
        "top": 1,
        "t": {"quote": 'a "b" \\ c\n\t\x7f é', "weird key": [True, False], "f": 1e-05, "n": -3},
    }
    assert tomllib.loads(render_toml(odd)) == odd


def test_rendered_settings_load_back_as_a_config_file(tmp_path):
    original = load(
        environ={"REVIVATECH_WEB_PORT": "8123", "REVIVATECH_AUTH_ADMIN_TOKENS": TOKEN_B}
    )
    path = write(tmp_path, render_toml(settings_as_dict(original, mask_secrets=False)))
    assert load(config_file=path) == original


def test_environ_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("REVIVATECH_WEB_PORT", "8999")
    assert load_settings().web.port == 8999


@pytest.mark.parametrize("url", ["postgresql://app:s3cret@db:99999/x", "mysql://app:s3cret@db/x"])
def test_url_errors_never_quote_the_password(url):
    err = config_error(environ={"REVIVATECH_STORAGE_URL": url})
    assert err.key == "storage.url" and "s3cret" not in str(err)


# --- client addresses ----------------------------------------------------------------------------


def test_trusted_proxies_take_addresses_and_cidrs_from_a_file_or_the_environment(tmp_path):
    path = write(tmp_path, '[web]\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8", "::1"]\n')
    assert load(config_file=path).web.trusted_proxies == ("127.0.0.1", "10.0.0.0/8", "::1")
    settings = load(environ={"REVIVATECH_WEB_TRUSTED_PROXIES": "192.0.2.1, 2001:db8::/32"})
    assert settings.web.trusted_proxies == ("192.0.2.1", "2001:db8::/32")


def test_a_trusted_proxy_that_is_not_an_address_is_named():
    with pytest.raises(ConfigError) as info:
        load(environ={"REVIVATECH_WEB_TRUSTED_PROXIES": "10.0.0.1, proxy.local"})
    assert str(info.value) == (
        "web.trusted_proxies: 'proxy.local' is not an IP address or CIDR network "
        "(from REVIVATECH_WEB_TRUSTED_PROXIES)"
    )


@pytest.mark.parametrize("mode", ["anonymized", "full", "none"])
def test_client_ip_modes(mode):
    assert load(environ={"REVIVATECH_INGEST_CLIENT_IP": mode}).ingest.client_ip == mode


def test_an_unknown_client_ip_mode_is_refused():
    with pytest.raises(
        ConfigError, match="ingest.client_ip: must be one of anonymized, full, none"
    ):
        load(environ={"REVIVATECH_INGEST_CLIENT_IP": "hashed"})


# --- funnel.named: a table of name -> steps ---------------------------------------------------


def test_named_funnels_from_a_file_in_order(tmp_path):
    path = write(
        tmp_path,
        '[funnel.named]\nquote = ["service_viewed", "quote_requested"]\nbooking = ["page_view"]\n',
    )
    funnel = load(config_file=path).funnel
    assert funnel.named_steps() == {
        "quote": ("service_viewed", "quote_requested"),
        "booking": ("page_view",),
    }
    assert list(funnel.named_steps()) == ["quote", "booking"]
    inline = write(tmp_path, "[funnel]\nnamed = {}\n")
    assert load(config_file=inline).funnel.named_steps() == {}


def test_named_funnels_from_the_environment_as_json():
    funnel = load(environ={"REVIVATECH_FUNNEL_NAMED": '{"b": ["x", "y"], "a": ["z"]}'}).funnel
    assert funnel.named == (("b", ("x", "y")), ("a", ("z",)))
    hash(funnel)  # settings stay hashable


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ('[funnel]\nnamed = ["booking"]', "must be a table of funnel name = list of event types"),
        (
            '[funnel.named]\nbooking = "page_view"',
            "must be a table of funnel name = list of event types",
        ),
        (
            "[funnel.named]\nbooking = [1, 2]",
            "must be a table of funnel name = list of event types",
        ),
        ("[funnel.named]\nbooking = []", "funnel 'booking' must name 1 to 10 event types, got 0"),
        (
            '[funnel.named]\nbooking = ["a","b","c","d","e","f","g","h","i","j","k"]',
            "funnel 'booking' must name 1 to 10 event types, got 11",
        ),
        (
            '[funnel.named]\n"two words" = ["a"]',
            "a funnel name is 1 to 64 letters, digits, _ or -, got 'two words'",
        ),
        ('[funnel.named]\n"" = ["a"]', "a funnel name is 1 to 64 letters, digits, _ or -, got ''"),
        (
            f'[funnel.named]\nx = ["{"e" * 101}"]',
            "funnel 'x' an event type is at most 100 characters",
        ),
        (
            "[funnel.named]\n" + "".join(f'f{i} = ["a"]\n' for i in range(21)),
            "at most 20 named funnels, got 21",
        ),
    ],
)
def test_bad_named_funnels_are_refused(tmp_path, toml, problem):
    err = config_error(config_file=write(tmp_path, toml + "\n"))
    assert err.key == "funnel.named" and err.problem.startswith(problem)


@pytest.mark.parametrize("text", ["booking", '["a"]', '{"a": "b"}', '{"a": [1]}', "{"])
def test_bad_named_funnels_in_the_environment(text):
    err = config_error(environ={"REVIVATECH_FUNNEL_NAMED": text})
    assert (err.key, err.source) == ("funnel.named", "REVIVATECH_FUNNEL_NAMED")
    assert err.problem.startswith(
        "must be a table of funnel name = list of event types (in the environment, a JSON object)"
    )


def test_named_funnels_render_as_an_inline_table_and_load_back(tmp_path):
    original = load(environ={"REVIVATECH_FUNNEL_NAMED": '{"q": ["a", "b"], "r-2": ["c"]}'})
    text = render_toml(settings_as_dict(original, mask_secrets=False))
    assert 'named = {q = ["a", "b"], r-2 = ["c"]}' in text
    assert load(config_file=write(tmp_path, text)) == original


# --- rate limits and hashed secrets (issue 16) ---------------------------------------------------


def test_rates_are_read_from_env_and_file_and_empty_turns_a_limit_off(tmp_path):
    settings = load(
        environ={
            "REVIVATECH_LIMITS_ADMIN_RATE": "100/15m",
            "REVIVATECH_LIMITS_INGEST_RATE": "50/10s",
            "REVIVATECH_LIMITS_WS_CONNECT_RATE": "",
        }
    )
    assert (
        settings.limits.admin_rate,
        settings.limits.ingest_rate,
        settings.limits.ws_connect_rate,
    ) == ("100/15m", "50/10s", "")
    path = write(tmp_path, '[limits]\nadmin_rate = "5/2h"\n')
    assert load(config_file=path).limits.admin_rate == "5/2h"


@pytest.mark.parametrize(
    "bad",
    [
        "600",
        "600/m",
        "600/1",
        "600/1d",
        "0/1m",
        "-5/1m",
        "1.5/1m",
        "600/0s",
        "10/25h",
        "600 per minute",
        "600/1m/2",
    ],
)
def test_a_badly_written_rate_is_refused_with_the_form_it_must_have(bad):
    err = config_error(environ={"REVIVATECH_LIMITS_INGEST_RATE": bad})
    assert err.key == "limits.ingest_rate" and err.source == "REVIVATECH_LIMITS_INGEST_RATE"
    assert (
        "N/<int>(s|m|h)" in err.problem
        or "the count of a rate" in err.problem
        or "the period" in err.problem
    )
    assert repr(bad) in err.problem


def test_a_rate_of_the_wrong_type_in_a_file_is_refused(tmp_path):
    err = config_error(config_file=write(tmp_path, "[limits]\nadmin_rate = 600\n"))
    assert err.key == "limits.admin_rate" and "N/<int>(s|m|h)" in err.problem


HASHED = "sha256:" + hashlib.sha256(TOKEN_A.encode()).hexdigest()


def test_write_keys_and_admin_tokens_may_be_sha256_hashes_and_are_masked(tmp_path):
    settings = load(
        environ={
            "REVIVATECH_AUTH_WRITE_KEYS": f"{TOKEN_B},{HASHED}",
            "REVIVATECH_AUTH_ADMIN_TOKENS": HASHED.upper().replace("SHA256:", "sha256:"),
        }
    )
    assert settings.auth.write_keys == (TOKEN_B, HASHED)
    shown = settings_as_dict(settings)["auth"]
    assert shown["write_keys"] == ["***", "***"] and shown["admin_tokens"] == ["***"]


@pytest.mark.parametrize(
    "bad", ["sha256:abc", "sha256:" + "g" * 64, "sha256:" + "a" * 65, "short-key"]
)
@pytest.mark.parametrize("key", ["auth.write_keys", "auth.admin_tokens"])
def test_a_bad_hash_or_a_short_secret_is_refused_without_printing_it(key, bad):
    err = config_error(environ={env_var_name(*key.split(".")): f"{TOKEN_A},{bad}"})
    assert err.key == key and "2 of 2" in err.problem
    assert (
        ("64 hex digits" in err.problem)
        if bad.startswith("sha256:")
        else ("at least 16" in err.problem)
    )
    assert bad not in str(err) and TOKEN_A not in str(err)


# --- [log] format and [metrics] ------------------------------------------------------------------

METRICS_TOKEN = "metrics-token-0123456789"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_formats(fmt):
    assert load(environ={"REVIVATECH_LOG_FORMAT": fmt}).log.format == fmt


def test_an_unknown_log_format_is_refused():
    err = config_error(environ={"REVIVATECH_LOG_FORMAT": "xml"})
    assert (err.key, err.problem) == ("log.format", "must be one of text, json, got 'xml'")


def test_metrics_settings_from_the_environment():
    settings = load(
        environ={
            "REVIVATECH_METRICS_TOKEN": METRICS_TOKEN,
            "REVIVATECH_METRICS_PORT": "9464",
            "REVIVATECH_METRICS_HOST": "10.0.0.5",
        }
    )
    assert (settings.metrics.token, settings.metrics.port, settings.metrics.host) == (
        METRICS_TOKEN,
        9464,
        "10.0.0.5",
    )


def test_a_short_metrics_token_is_refused_without_printing_it():
    err = config_error(environ={"REVIVATECH_METRICS_TOKEN": "short-secret"})
    assert (err.key, err.problem) == (
        "metrics.token",
        "must be empty or at least 16 characters (the token is never printed)",
    )
    assert "short-secret" not in str(err)


@pytest.mark.parametrize(
    ("port", "problem"),
    [
        ("-1", "must be an integer between 0 and 65535, got -1"),
        ("65536", "must be an integer between 0 and 65535, got 65536"),
        ("3011", "must differ from web.port (0 serves /metrics on web.port), got 3011"),
    ],
)
def test_impossible_metrics_ports(port, problem):
    err = config_error(environ={"REVIVATECH_METRICS_PORT": port})
    assert (err.key, err.problem) == ("metrics.port", problem)


def test_metrics_token_is_masked_when_set():
    shown = settings_as_dict(load(environ={"REVIVATECH_METRICS_TOKEN": METRICS_TOKEN}))
    assert shown["metrics"]["token"] == "***"
    assert METRICS_TOKEN not in render_toml(shown)


def test_retention_keeps_everything_by_default_and_takes_days_from_the_environment():
    assert load().retention.days == 0  # an upgrade never deletes history by itself
    settings = load(
        environ={"REVIVATECH_RETENTION_DAYS": "90", "REVIVATECH_RETENTION_BATCH_SIZE": "500"}
    )
    assert (settings.retention.days, settings.retention.batch_size) == (90, 500)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "0.0.0.0",
        "::",
        "::1",
        "localhost",
        "api.example.com",
        "api.example.com.",
        "a-b.c0",
        "x" * 63,
    ],
)
def test_web_host_takes_an_ip_address_or_a_host_name(host):
    assert is_host(host)
    assert load(environ={"REVIVATECH_WEB_HOST": host}).web.host == host


@pytest.mark.parametrize(
    "host",
    [
        "not a host",
        "",
        " ",
        "bad_host!",
        "-leading.example",
        "trailing-.example",
        "two..dots",
        "x" * 64,
        "[::1]",
        "http://localhost",
        "host:80",
    ],
)
def test_web_host_refuses_what_is_no_host(host):
    assert not is_host(host)
    with pytest.raises(ConfigError) as err:
        load(environ={"REVIVATECH_WEB_HOST": host})
    assert str(err.value) == (
        f"web.host: must be an IP address or a host name, got {host!r} (from REVIVATECH_WEB_HOST)"
    )


# --- [scoring]: a table per model; the old flat names still work, deprecated ------------------

# Before the models had tables of their own, [scoring.<table>] <key> was [scoring] <prefix><key>.
OLD_PREFIXES = {
    "engagement": "engagement_",
    "lead": "lead_",
    "churn": "churn_",
    "price_sensitivity": "price_",
}


def config_warnings(caplog) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "revivatech_actors.config" and record.levelno == logging.WARNING
    ]


def test_scoring_settings_are_read_from_the_model_tables(tmp_path, caplog):
    path = write(
        tmp_path,
        "[scoring]\nmax_share = 0.5\n[scoring.lead]\nquotes_weight = 12.5\n"
        "[scoring.price_sensitivity]\ndiscounts_cap = 4\n",
    )
    scoring = load(config_file=path).scoring
    assert scoring.max_share == 0.5
    assert scoring.lead.quotes_weight == 12.5 and scoring.lead.quotes_cap == 1.0
    assert scoring.price_sensitivity.discounts_cap == 4.0
    assert config_warnings(caplog) == []


def test_scoring_settings_from_the_environment_and_overrides(caplog):
    settings = load(
        environ={
            "REVIVATECH_SCORING_ENGAGEMENT_SESSIONS_WEIGHT": "12",
            "REVIVATECH_SCORING_PRICE_SENSITIVITY_DISCOUNTS_CAP": "3",
            "REVIVATECH_SCORING_MAX_SHARE": "0.2",
        },
        overrides={"scoring.churn.confidence_days": "7"},
    )
    scoring = settings.scoring
    assert (scoring.engagement.sessions_weight, scoring.price_sensitivity.discounts_cap) == (
        12.0,
        3.0,
    )
    assert (scoring.max_share, scoring.churn.confidence_days) == (0.2, 7.0)
    assert (
        env_var_name("scoring", "lead", "quotes_weight") == "REVIVATECH_SCORING_LEAD_QUOTES_WEIGHT"
    )
    assert (
        config_warnings(caplog) == []
    )  # the engagement, lead and churn variables kept their names


def test_every_setting_has_a_variable_of_its_own():
    names = [env_var_name(*path) for path in setting_paths()]
    assert len(set(names)) == len(names)


def test_every_old_flat_scoring_name_in_a_file_still_works_with_one_warning(tmp_path, caplog):
    defaults = EXPECTED_DEFAULTS["scoring"]
    doubled = {
        table: {key: value * 2 for key, value in defaults[table].items()} for table in OLD_PREFIXES
    }
    lines = [
        f"{OLD_PREFIXES[table]}{key} = {value!r}"
        for table, keys in doubled.items()
        for key, value in keys.items()
    ]
    path = write(tmp_path, "[scoring]\n" + "\n".join(lines) + "\n")
    shown = settings_as_dict(load(config_file=path))["scoring"]
    assert {table: shown[table] for table in OLD_PREFIXES} == doubled
    warnings = config_warnings(caplog)
    assert len(warnings) == len(lines) == 42
    assert warnings[0] == (
        f"deprecated setting name [scoring] engagement_sessions_weight (from {path}): "
        "use [scoring.engagement] sessions_weight"
    )
    assert (
        f"deprecated setting name [scoring] price_reference_order_value (from {path}): "
        "use [scoring.price_sensitivity] reference_order_value"
    ) in warnings


def test_an_old_flat_price_variable_still_works_with_one_warning(caplog):
    scoring = load(environ={"REVIVATECH_SCORING_PRICE_DISCOUNTS_CAP": "4"}).scoring
    assert scoring.price_sensitivity.discounts_cap == 4.0
    assert config_warnings(caplog) == [
        "deprecated setting name REVIVATECH_SCORING_PRICE_DISCOUNTS_CAP: "
        "use REVIVATECH_SCORING_PRICE_SENSITIVITY_DISCOUNTS_CAP"
    ]


def test_an_old_flat_override_still_works_with_one_warning(caplog):
    assert load(overrides={"scoring.lead_quotes_cap": "2"}).scoring.lead.quotes_cap == 2.0
    assert config_warnings(caplog) == [
        "deprecated setting name scoring.lead_quotes_cap (from override): "
        "use scoring.lead.quotes_cap"
    ]


def test_an_old_name_in_a_file_is_overridden_by_the_new_one_in_the_environment(tmp_path):
    path = write(tmp_path, "[scoring]\nprice_discounts_cap = 4\n")
    environ = {"REVIVATECH_SCORING_PRICE_SENSITIVITY_DISCOUNTS_CAP": "5"}
    assert load(config_file=path, environ=environ).scoring.price_sensitivity.discounts_cap == 5.0


def test_old_and_new_name_in_one_file_is_an_error(tmp_path):
    path = write(
        tmp_path, "[scoring]\nlead_quotes_weight = 12.0\n[scoring.lead]\nquotes_weight = 13.0\n"
    )
    err = config_error(config_file=path)
    assert (err.key, err.source) == ("scoring.lead.quotes_weight", str(path))
    assert err.problem == (
        "given twice, as [scoring.lead] quotes_weight and as its deprecated name "
        "[scoring] lead_quotes_weight; keep [scoring.lead] quotes_weight"
    )


def test_old_and_new_variable_at_once_is_an_error():
    err = config_error(
        environ={
            "REVIVATECH_SCORING_PRICE_DISCOUNTS_CAP": "4",
            "REVIVATECH_SCORING_PRICE_SENSITIVITY_DISCOUNTS_CAP": "5",
        }
    )
    assert err.key == "scoring.price_sensitivity.discounts_cap"
    assert err.problem == (
        "given twice, as REVIVATECH_SCORING_PRICE_SENSITIVITY_DISCOUNTS_CAP and as its "
        "deprecated name REVIVATECH_SCORING_PRICE_DISCOUNTS_CAP; "
        "keep REVIVATECH_SCORING_PRICE_SENSITIVITY_DISCOUNTS_CAP"
    )


def test_old_and_new_override_at_once_is_an_error():
    err = config_error(overrides={"scoring.lead.quotes_cap": 2, "scoring.lead_quotes_cap": 3})
    assert (err.key, err.source) == ("scoring.lead.quotes_cap", "override")


@pytest.mark.parametrize(
    ("toml", "key", "table"),
    [
        ("[scoring]\nlead_quotes_weigth = 1.0", "scoring.lead_quotes_weigth", "scoring"),
        ("[scoring.lead]\nquotes_weigth = 1.0", "scoring.lead.quotes_weigth", "scoring.lead"),
        ("[scoring.leads]\nquotes_weight = 1.0", "scoring.leads", "scoring"),
    ],
)
def test_an_unknown_scoring_key_is_named(tmp_path, toml, key, table):
    path = write(tmp_path, toml + "\n")
    err = config_error(config_file=path)
    assert (err.key, err.source) == (key, str(path))
    assert err.problem.startswith(f"unknown setting (known in [{table}]: ")


def test_the_known_settings_of_a_model_table_are_listed(tmp_path):
    err = config_error(config_file=write(tmp_path, "[scoring.churn]\nabsense_weight = 1.0\n"))
    assert err.problem == (
        "unknown setting (known in [scoring.churn]: absence_weight, absence_scale_days, "
        "overdue_weight, overdue_cap, default_gap_days, few_bookings_weight, "
        "few_bookings_cap, confidence_days)"
    )


def test_an_unknown_scoring_variable_gets_a_hint():
    err = config_error(environ={"REVIVATECH_SCORING_LEAD_QUOTES_WEIGTH": "1"})
    assert str(err) == (
        "REVIVATECH_SCORING_LEAD_QUOTES_WEIGTH: unknown environment variable; "
        "did you mean REVIVATECH_SCORING_LEAD_QUOTES_WEIGHT?"
    )


def test_a_model_table_given_a_value_is_refused(tmp_path):
    err = config_error(config_file=write(tmp_path, "[scoring]\nlead = 1\n"))
    assert (err.key, err.problem) == (
        "scoring.lead",
        "is a table of settings: write them under [scoring.lead]",
    )


def test_a_bad_value_under_an_old_name_is_reported_under_the_new_one(tmp_path):
    path = write(tmp_path, "[scoring]\nlead_quotes_cap = 0\n")
    err = config_error(config_file=path)
    assert (err.key, err.problem, err.source) == (
        "scoring.lead.quotes_cap",
        "must be a number > 0, got 0.0",
        str(path),
    )


def test_scoring_renders_as_model_tables_that_load_back(tmp_path):
    original = load(environ={"REVIVATECH_SCORING_LEAD_QUOTES_WEIGHT": "12"})
    text = render_toml(settings_as_dict(original, mask_secrets=False))
    assert "\n[scoring]\nchurned_after_days = 60\n" in text
    assert (
        "\n[scoring.lead]\nopen_bookings_weight = 30.0\nopen_bookings_cap = 1.0\n"
        "quotes_weight = 12.0\n" in text
    )
    assert "lead_quotes_weight" not in text
    assert load(config_file=write(tmp_path, text)) == original


def test_check_config_prints_the_model_tables(tmp_path, monkeypatch, capsys):
    from revivatech_actors.cli import main

    for name in [name for name in os.environ if name.startswith("REVIVATECH_")]:
        monkeypatch.delenv(name)
    path = write(tmp_path, "[scoring]\nchurn_overdue_cap = 4\n")
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr()
    assert "\n[scoring.churn]\n" in out.out and "\noverdue_cap = 4.0\n" in out.out
    assert "churn_overdue_cap" not in out.out
