"""The one line and exit code of a start that cannot work (revivatech_actors.start_checks)."""

from __future__ import annotations

import errno
import socket

import pytest

from revivatech_actors.start_checks import (
    EXIT_CONFIG,
    EXIT_FAILED,
    StartRefused,
    check_listen,
    listen_refusal,
    storage_refusal,
)
from revivatech_actors.storage import (
    MigrationError,
    PartitionsMismatch,
    StorageError,
    StorageMisconfigured,
    StorageUnavailable,
)

from .conftest import free_port


def test_a_taken_port_is_refused_with_a_hint():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartRefused) as refused:
            check_listen("127.0.0.1", port)
    assert refused.value.exit_code == EXIT_FAILED
    assert refused.value.line == (
        f"error: cannot listen on 127.0.0.1:{port}: address already in use "
        "(is another serve running? set --port or REVIVATECH_WEB_PORT)"
    )


def test_a_free_port_passes_and_stays_free():
    port = free_port()
    check_listen("127.0.0.1", port)
    check_listen("127.0.0.1", port)  # the trial let it go
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_an_address_of_no_interface_names_the_host_setting():
    refusal = listen_refusal(
        "192.0.2.1", 3011, OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
    )
    assert refusal.exit_code == EXIT_FAILED
    assert refusal.line == (
        "error: cannot listen on 192.0.2.1:3011: no interface of this machine has that address "
        "(set --host or REVIVATECH_WEB_HOST)"
    )


def test_ipv6_addresses_are_bracketed_and_unknown_errors_keep_their_text():
    refusal = listen_refusal("::1", 3011, OSError(errno.ENOBUFS, "No buffer space available"))
    assert refusal.line == (
        "error: cannot listen on [::1]:3011: no buffer space available "
        "(set --port or REVIVATECH_WEB_PORT)"
    )


def test_a_name_that_does_not_resolve_is_a_configuration_error():
    with pytest.raises(StartRefused) as refused:
        check_listen("nowhere.invalid", free_port())
    assert refused.value.exit_code == EXIT_CONFIG
    assert refused.value.line.startswith(
        "configuration error: web.host: cannot resolve 'nowhere.invalid' ("
    )
    assert refused.value.line.endswith("; set --host or REVIVATECH_WEB_HOST)")


@pytest.mark.parametrize(
    ("error", "line", "code"),
    [
        (
            StorageUnavailable("cannot connect to PostgreSQL at db:5432: refused"),
            "error: cannot connect to PostgreSQL at db:5432: refused (is the database running?"
            " check storage.url or REVIVATECH_STORAGE_URL)",
            EXIT_FAILED,
        ),
        (
            StorageMisconfigured("the folder /x does not exist (...)"),
            "configuration error: storage.url: the folder /x does not exist (...)",
            EXIT_CONFIG,
        ),
        (
            PartitionsMismatch("profiles.partitions is 48, but the database holds 64 partitions"),
            "configuration error: profiles.partitions is 48, but the database holds 64 partitions",
            EXIT_CONFIG,
        ),
        (
            MigrationError("0009_x.sql: syntax error"),
            "error: migration failed: 0009_x.sql: syntax error",
            EXIT_FAILED,
        ),
        (StorageError("something else"), "error: something else", EXIT_FAILED),
    ],
)
def test_storage_errors_before_a_start(error, line, code):
    refusal = storage_refusal(error)
    assert (refusal.line, refusal.exit_code) == (line, code)
