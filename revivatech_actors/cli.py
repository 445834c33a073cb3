"""The ``revivatech-actors`` command: serve · migrate · check-config · bench · import-original."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING, Any

import trio

from . import __version__
from .config import (
    SHARE_RULE,
    ConfigError,
    Settings,
    env_var_name,
    is_share,
    load_settings,
    render_toml,
    settings_as_dict,
)
from .logs import Redactor, configure_logging
from .start_checks import EXIT_CONFIG

if TYPE_CHECKING:
    from .service import Service
    from .start_checks import StartRefused
    from .storage import AppliedMigration

__all__ = ["EXIT_CONFIG", "main"]

logger = logging.getLogger("revivatech_actors")

#: Rows per chunk of import-original (importer.DEFAULT_CHUNK_SIZE; not imported from there, which
#: would load the whole service for every command).
IMPORT_CHUNK_SIZE = 2000
#: Generation thresholds of the cyclic garbage collector while serving (see _serve).
GC_THRESHOLDS = (100_000, 50, 10)
#: Name prefix of the owner-only file holding a generated admin token when stderr is no terminal.
TOKEN_FILE_PREFIX = "revivatech-admin-token-"
#: Variable naming a directory prometheus-client's multiprocess mode keeps its values in
#: (prometheus.MULTIPROC_ENV; not imported from there, which would load prometheus-client here).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file overriding config/default.toml (default: $REVIVATECH_CONFIG if set)",
    )


def _work_share(text: str) -> float:
    value = float(text)
    if not is_share(value):
        msg = f"{SHARE_RULE}, not {text}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="revivatech-actors",
        description="Real-time analytics backend built as supervised trio actors.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the service until SIGINT or SIGTERM")
    _add_config_argument(serve)
    serve.add_argument("--host", help="address to listen on (overrides web.host)")
    serve.add_argument("--port", help="TCP port to listen on (overrides web.port)")
    serve.add_argument(
        "--workers",
        metavar="N",
        help="processes serving the port, each a whole service (overrides web.workers; "
        "more than 1 needs PostgreSQL and Redis)",
    )
    # Set by the parent of `serve --workers N` on the processes it starts: serve as worker INDEX.
    serve.add_argument("--worker", type=int, metavar="INDEX", help=argparse.SUPPRESS)

    migrate = commands.add_parser("migrate", help="apply pending database migrations and exit")
    _add_config_argument(migrate)

    check = commands.add_parser(
        "check-config", help="validate the configuration and print it, secrets masked"
    )
    _add_config_argument(check)

    # Only this command loads the bench client: its options are parsed by its own parser
    # (revivatech_actors.bench), from the arguments this one leaves unrecognised.
    commands.add_parser(
        "bench",
        add_help=False,
        help="load a running server over HTTP and report events/s and latency",
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="backtest the lead and churn scores on the stored history and print their figures",
        description="Rebuild every visitor's profile as of past cut-offs from the stored events, "
        'score it, and compare with what the visitor did next (docs/scoring.md, "How the '
        'scores are checked"). Reads only; the database must be migrated.',
    )
    _add_config_argument(evaluate)
    evaluate.add_argument(
        "--json",
        action="store_true",
        help="print the figures as JSON, as GET /api/analytics/models serves them",
    )
    evaluate.add_argument(
        "--record",
        action="store_true",
        help="also store the figures in the database, where GET /api/analytics/models reads them",
    )
    evaluate.add_argument(
        "--nice",
        type=int,
        default=0,
        metavar="N",
        help="lower this process's scheduling priority by N first (the service runs it with 10)",
    )
    evaluate.add_argument(
        "--work-share",
        type=_work_share,
        default=1.0,
        metavar="F",
        help="pace the scan of the history to this share of the wall time, 0 < F <= 1 (the "
        "service runs it with scoring.learn_work_share); 1, the default, does not pace",
    )

    imported = commands.add_parser(
        "import-original",
        help="store the original RevivaTech service's history (analytics_events, "
        "customer_journeys) as events",
        description="Read the original service's analytics_events and customer_journeys from its "
        "PostgreSQL database and store them in storage.url through this service's pipeline, with "
        "their original times and ids. Idempotent; an interrupted run is resumed by running it "
        "again.",
    )
    _add_config_argument(imported)
    imported.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="POSTGRESQL_URL",
        help="the original's database, postgresql://user@host:5432/db (a password may come from "
        "PGPASSWORD or ~/.pgpass instead of the URL)",
    )
    imported.add_argument(
        "--chunk-size",
        type=int,
        default=IMPORT_CHUNK_SIZE,
        metavar="ROWS",
        help=f"rows read and checkpointed at a time (default {IMPORT_CHUNK_SIZE})",
    )
    imported.add_argument(
        "--state",
        metavar="FILE",
        help="checkpoint file (default: revivatech-import-<hash of the two URLs>.json here)",
    )
    imported.add_argument(
        "--restart",
        action="store_true",
        help="ignore the checkpoint of an interrupted run and read from the first row",
    )
    imported.add_argument(
        "--source-timezone",
        default="UTC",
        metavar="ZONE",
        help="time zone the original wrote its TIMESTAMP WITHOUT TIME ZONE columns in "
        "(IANA name, default UTC)",
    )
    imported.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    imported.add_argument(
        "--verbose", action="store_true", help="log at log.level (default: warnings only)"
    )
    return parser


def _configure_logging(
    settings: Settings, level: str | None = None, *, worker: int | None = None
) -> Redactor:
    """Log to stderr in ``log.format`` at ``level`` (default ``log.level``), masking every
    configured secret."""
    return configure_logging(
        level or settings.log.level,
        fmt=settings.log.format,
        worker=worker,
        secrets=_configured_secrets(settings),
    )


def _configured_secrets(settings: Settings) -> list[str]:
    """The secrets in ``settings`` that no log line may show: tokens, the JWT secret, URL
    passwords."""
    from urllib.parse import urlsplit

    found = [*settings.auth.admin_tokens, settings.auth.jwt_secret, settings.metrics.token]
    for url in (settings.storage.url, settings.redis.url):
        with contextlib.suppress(ValueError):
            password = urlsplit(url).password
            if password:
                found.append(password)
    return [secret for secret in found if secret]


def _admin_tokens(settings: Settings, redact: Redactor) -> tuple[tuple[str, ...], str | None]:
    """The configured admin tokens, or one generated for this run, and the path of the file it
    was written to (None when configured, or printed).

    A generated token is printed once to stderr when stderr is a terminal (a person reads it).
    Otherwise stderr is a log, which others may read or ship: the token goes to a new file
    readable by its owner only, and the log says where.
    """
    if settings.auth.admin_tokens:
        return settings.auth.admin_tokens, None
    generated = secrets.token_urlsafe(32)
    redact.add(generated)
    if sys.stderr.isatty():
        # Printed once, like Jupyter's token: the first run is usable and still closed.
        print(
            "No admin token is configured (auth.admin_tokens / REVIVATECH_AUTH_ADMIN_TOKENS).\n"
            "Generated one for this run; admin endpoints and the WebSocket need it:\n"
            f"    Authorization: Bearer {generated}\n",
            file=sys.stderr,
            flush=True,
        )
        return (generated,), None
    path = _write_token_file(generated)
    logger.warning(
        "no admin token is configured (auth.admin_tokens): generated one for this run, "
        "written to %s (readable by its owner only; removed at exit)",
        path,
    )
    return (generated,), path


def _write_token_file(token: str) -> str:
    """Write ``token`` to a new file (mode 0600, created so: never readable by others, even
    for an instant) in the working folder, or the temporary folder if that is not writable."""
    for folder in (os.getcwd(), tempfile.gettempdir()):
        try:
            descriptor, path = tempfile.mkstemp(prefix=TOKEN_FILE_PREFIX, suffix=".txt", dir=folder)
        except OSError as exc:
            logger.warning(
                "cannot write the generated admin token in %s: %s", folder, exc.strerror or exc
            )
            continue
        with os.fdopen(descriptor, "w") as file:
            file.write(token + "\n")
        return os.path.abspath(path)
    raise SystemExit(
        "revivatech-actors: nowhere to write the generated admin token; configure auth.admin_tokens"
    )


def _remove_token_file(path: str | None) -> None:
    if path is None:
        return
    try:
        os.unlink(path)
    except FileNotFoundError:  # removed by hand already: nothing is left to protect
        return
    except OSError as exc:
        logger.warning(
            "could not remove the generated admin token's file %s: %s", path, exc.strerror or exc
        )


def _serve(settings: Settings, redact: Redactor, *, worker: int | None = None) -> int:
    """Run the service in this process; ``worker`` is its index under `serve --workers N`."""
    from .service import Service
    from .start_checks import StartRefused

    if worker is None:  # a worker's parent did this already
        # A port taken or a database away would otherwise make the supervisor restart the actor
        # concerned until it gives up, with a traceback per attempt: say it in one line instead.
        try:
            _check_ports(settings)
            applied, known, where, engine = _prepare_storage(settings)
        except StartRefused as refused:
            return _refuse(refused)
        logger.info("%s", _storage_line(applied, known, where, engine))
    # A worker's tokens come from its parent (the environment), so it never prints one.
    tokens, token_file = _admin_tokens(settings, redact)
    try:
        return _run_service(Service.build(settings, tokens, worker=worker), worker)
    finally:
        _remove_token_file(token_file)


def _check_ports(settings: Settings) -> None:
    """Raises StartRefused if ``web.port`` (or ``metrics.port``, when set) cannot be listened on."""
    from .start_checks import check_listen

    check_listen(settings.web.host, settings.web.port)
    if settings.metrics.port:
        check_listen(settings.metrics.host, settings.metrics.port)


def _run_service(service: Service, worker: int | None) -> int:
    from .service import serve_until_signalled

    # Python's cyclic collector, at its default thresholds, runs every 700 allocations: a large
    # share of request handling in the measurements behind docs/performance.md. Objects here
    # are short-lived and freed by reference counting, so collect far less often.
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()  # what start-up allocated lives as long as the process: never scan it again
    if worker is None:
        return trio.run(serve_until_signalled, service)
    from .workers import run_as_worker

    return trio.run(run_as_worker, lambda: serve_until_signalled(service))


def _serve_workers(settings: Settings, args: argparse.Namespace, redact: Redactor) -> int:
    """`serve --workers N`, N > 1: apply migrations once, then keep N worker processes running
    (revivatech_actors.workers). This process never builds the service itself."""
    from .start_checks import StartRefused
    from .workers import reuse_port_problem

    problem = reuse_port_problem()
    if problem is not None:
        print(f"revivatech-actors: {problem}", file=sys.stderr)
        return 1
    try:
        _check_ports(settings)
    except StartRefused as refused:
        return _refuse(refused)
    env = dict(os.environ)
    token_file = None
    if not settings.auth.admin_tokens:  # one token for every worker, shown once, here
        tokens, token_file = _admin_tokens(settings, redact)
        env[env_var_name("auth", "admin_tokens")] = tokens[0]
    # A fresh directory for this run's metrics: each worker writes its values there and any
    # worker's /metrics sums them all (prometheus-client's multiprocess mode).
    metrics_dir = tempfile.mkdtemp(prefix="revivatech-metrics-")
    env[MULTIPROC_ENV] = metrics_dir
    logger.info("workers' metrics kept in %s (removed at exit)", metrics_dir)
    try:
        return _run_workers(settings, args, env, metrics_dir)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        _remove_token_file(token_file)


def _run_workers(
    settings: Settings, args: argparse.Namespace, env: dict[str, str], metrics_dir: str
) -> int:
    from prometheus_client.multiprocess import mark_process_dead

    from .start_checks import storage_refusal
    from .storage import StorageError
    from .workers import STOP_MARGIN, WorkerPool, serve_workers

    web = settings.web
    # The worker reads the same files and environment; these make its settings the parent's.
    passed = [
        arg
        for name in ("config", "host", "port", "workers")
        if getattr(args, name) is not None
        for arg in (f"--{name}", getattr(args, name))
    ]

    def command(index: int) -> list[str]:
        return [sys.executable, "-m", "revivatech_actors", "serve", *passed, "--worker", str(index)]

    pool = WorkerPool(
        command,
        web.workers,
        env,
        stop_deadline=settings.shutdown.timeout + STOP_MARGIN,
        on_exit=lambda pid: mark_process_dead(pid, metrics_dir),
    )

    async def run() -> int:
        try:
            applied, known, where, engine = await _apply_migrations(settings)
        except StorageError as exc:
            return _refuse(storage_refusal(exc))
        logger.info(
            "%s; starting %d workers on %s:%d (SO_REUSEPORT)",
            _storage_line(applied, known, where, engine),
            web.workers,
            web.host,
            web.port,
        )
        return await serve_workers(pool)

    return trio.run(run)


async def _apply_migrations(settings: Settings) -> tuple[list, list, str, str]:
    """Apply pending migrations: (those applied now, all applied, the database as logs show it
    (password masked), its engine).

    Raises:
        StorageError: the database cannot be reached or a migration failed.
    """
    from .storage import open_storage

    storage = open_storage(settings.storage.url, connect_timeout=settings.storage.connect_timeout)
    try:
        await storage.open()
        applied = await storage.migrate()
        await storage.ensure_partitions(
            settings.profiles.partitions
        )  # a mismatch stops here, not in an actor
        return applied, await storage.applied_migrations(), storage.url_for_display, storage.engine
    finally:
        await storage.close()


def _prepare_storage(settings: Settings) -> tuple[list, list, str, str]:
    """:func:`_apply_migrations` in its own ``trio.run``.

    Raises:
        StartRefused: the database cannot be reached, migrated or used as configured.
    """
    from .start_checks import storage_refusal
    from .storage import StorageError

    try:
        return trio.run(_apply_migrations, settings)
    except StorageError as exc:
        raise storage_refusal(exc) from exc


def _refuse(refused: StartRefused) -> int:
    """Print a StartRefused's one line (its traceback only in the debug log); its exit code."""
    logger.debug("start refused", exc_info=refused)
    print(f"revivatech-actors: {refused.line}", file=sys.stderr)
    return refused.exit_code


def _migration_name(migration: AppliedMigration) -> str:
    return f"{migration.version:04d}_{migration.name}"


def _storage_line(applied: list, known: list, where: str, engine: str) -> str:
    """The one line per start about the database: where (password masked), the engine, and the
    migrations, naming those this start applied."""
    new = f": {', '.join(_migration_name(m) for m in applied)}" if applied else ""
    return (
        f"storage open: {where} ({engine}), {len(known)} migration(s) applied, "
        f"{len(applied)} new{new}"
    )


def _migrate(settings: Settings) -> int:
    from .start_checks import StartRefused

    try:
        applied, known, where, _ = _prepare_storage(settings)
    except StartRefused as refused:
        return _refuse(refused)
    for migration in applied:
        print(f"applied {_migration_name(migration)}")
    print(f"{where}: {len(known)} migration(s) applied, {len(applied)} new")
    return 0


def _evaluate(settings: Settings, args: argparse.Namespace) -> int:
    from .evaluation import evaluate_history
    from .start_checks import storage_refusal
    from .storage import StorageError, open_storage

    if args.nice:
        os.nice(args.nice)

    async def run() -> Any:
        storage = open_storage(
            settings.storage.url, connect_timeout=settings.storage.connect_timeout
        )
        await storage.open()
        try:
            evaluation = await evaluate_history(
                storage, settings.scoring, work_share=args.work_share
            )
            if args.record:
                await storage.record_evaluation(evaluation.evaluated_at, evaluation.to_json())
            return evaluation
        finally:
            await storage.close()

    try:
        evaluation = trio.run(run)
    except StorageError as exc:
        return _refuse(storage_refusal(exc))
    if args.json:
        print(json.dumps(evaluation.to_json()))
        return 0
    print(
        f"{evaluation.visitors} visitors, {len(evaluation.cutoffs)} cut-off(s), "
        f"{evaluation.horizon_days:g}-day horizon: {evaluation.samples} samples in "
        f"{evaluation.seconds:.1f} s"
    )
    print(
        f"{'model':<18} {'in use':<8} {'held out':>8} {'positive':>9} {'fixed AUC':>10} "
        f"{'learned AUC':>12}"
    )
    for model, choice in evaluation.models.items():
        figures = choice.fixed
        learned = "-" if choice.learned is None else _figure(choice.learned.roc_auc)
        rate = "-" if figures.base_rate is None else f"{figures.base_rate:.1%}"
        print(
            f"{model:<18} {choice.in_use:<8} {figures.samples:>8} {rate:>9} "
            f"{_figure(figures.roc_auc):>10} {learned:>12}"
        )
        print(f"  {choice.reason}")
    return 0


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _import_original(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from .importer import ImportFailed, ImportOptions, run_import

    def refuse(message: str) -> int:
        print(f"revivatech-actors: import-original: {message}", file=sys.stderr)
        return EXIT_CONFIG

    if not args.source.startswith(("postgresql://", "postgres://")):
        return refuse("--from must be a postgresql:// URL of the original service's database")
    if args.chunk_size < 1:
        return refuse(f"--chunk-size must be at least 1, got {args.chunk_size}")
    try:
        zone = ZoneInfo(args.source_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return refuse(f"--source-timezone: unknown time zone {args.source_timezone!r}")
    options = ImportOptions(
        source_url=args.source,
        chunk_size=args.chunk_size,
        state_path=Path(args.state) if args.state else None,
        restart=args.restart,
        zone=zone,
        progress=not args.no_progress,
    )
    from .start_checks import StartRefused

    # As before serve: a destination that cannot work is one line, not the supervisor giving up.
    try:
        _prepare_storage(settings)
    except StartRefused as refused:
        return _refuse(refused)
    gc.set_threshold(
        *GC_THRESHOLDS
    )  # as serve: many short-lived objects, freed by reference counting
    try:
        return trio.run(run_import, settings, options)
    except ImportFailed as exc:
        return refuse(str(exc))
    except KeyboardInterrupt:  # before the import's own signal handling was in place
        print("revivatech-actors: import-original: interrupted", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":  # a client of a running server: its own configuration is not read
        from .bench import main as bench_main

        return bench_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    overrides = {}
    if args.command == "serve":
        overrides = {"web.host": args.host, "web.port": args.port, "web.workers": args.workers}
    try:
        settings = load_settings(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"revivatech-actors: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check-config":
        print(render_toml(settings_as_dict(settings, mask_secrets=True)), end="")
        return 0
    if args.command == "import-original":
        # The progress bar is the import's feedback; the actors' info lines would break it up.
        verbose = args.verbose or settings.log.level in ("warning", "error")
        _configure_logging(settings, None if verbose else "warning")
        return _import_original(settings, args)
    if args.command == "evaluate":
        _configure_logging(settings, "warning")  # stdout is the answer
        return _evaluate(settings, args)
    redact = _configure_logging(settings, worker=getattr(args, "worker", None))
    if args.command == "migrate":
        return _migrate(settings)
    if args.worker is None and settings.web.workers > 1:
        return _serve_workers(settings, args, redact)
    return _serve(settings, redact, worker=args.worker)


if __name__ == "__main__":
    sys.exit(main())
