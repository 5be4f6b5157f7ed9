"""The `taskapi` command: serve, migrate, token."""

import argparse
import asyncio
import atexit
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass

import psycopg
import uvicorn
from pydantic import ValidationError

from api.config import Settings, get_settings
from api.database.engine import Database
from api.edge.metrics import MULTIPROCESS_DIR
from api.identity.tokens import is_valid_user_id, mint_token
from api.ops import migrations
from api.ops.audit import SEVERITIES, render_text, run_audit
from api.ops.embedded import embedded_database_url, embedded_jwt_secret
from api.ops.preflight import PreflightError, check_database


def _database_url(settings: Settings) -> str:
    return settings.database_url or embedded_database_url(settings.data_dir)


def _jwt_secret(settings: Settings) -> str | None:
    """The HS256 secret: configured, generated for the embedded database, or none with a JWKS."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    if settings.embedded:
        return embedded_jwt_secret(settings.data_dir)
    if settings.jwt_jwks_url is not None:
        return None  # an identity provider's keys alone: HS256 tokens are refused
    raise SystemExit("set JWT_SECRET (at least 32 bytes), JWT_JWKS_URL, or both")


def migrate(_: argparse.Namespace) -> None:
    settings = get_settings()
    url = settings.direct_database_url or embedded_database_url(settings.data_dir)
    migrations.upgrade(url)
    print(f"migrated to {migrations.head_revision()}")


async def _preflight(url: str, settings: Settings) -> None:
    database = Database(url, settings)
    try:
        await check_database(database, expected_revision=migrations.head_revision())
    finally:
        await database.stop()


@dataclass(frozen=True)
class Launch:
    """What `taskapi serve` hands its server processes (the environment they read their
    settings from) and tells its user."""

    environment: dict[str, str]
    banner: str


def plan_launch(settings: Settings, *, database_url: str, jwt_secret: str | None, base_url: str) -> Launch:
    """The launch for these settings, once the database and the secret are known."""
    environment = {"DATABASE_URL": database_url}
    if jwt_secret is not None:
        environment["JWT_SECRET"] = jwt_secret
    if settings.embedded and settings.demo_page is None:
        environment["DEMO_PAGE"] = "true"  # local use: the demo page is on
    serves_demo_page = settings.serves_demo_page  # true for the embedded database unless DEMO_PAGE says no
    demo = f", demo page: {base_url}/demo/" if serves_demo_page else ""
    return Launch(environment, f"taskapi serving on {base_url}  (docs: {base_url}/docs{demo})")


def serve(args: argparse.Namespace) -> None:
    settings = get_settings()
    secret = _jwt_secret(settings)
    url = _database_url(settings)
    if settings.embedded:
        migrations.upgrade(url)
    try:
        asyncio.run(_preflight(url, settings))
    except PreflightError as exc:
        raise SystemExit(f"refusing to start: {exc}") from None
    base = f"http://{args.host}:{args.port}"
    launch = plan_launch(settings, database_url=url, jwt_secret=secret, base_url=base)
    if args.workers > 1 and settings.metrics_enabled:
        _share_metrics_between_workers()
    # The app reads its settings from the environment, in this process and in any worker.
    os.environ.update(launch.environment)
    get_settings.cache_clear()
    print(launch.banner, flush=True)
    if settings.embedded and secret is not None:
        _print_example(base, secret, settings)
    # uvicorn re-raises SIGTERM after a graceful shutdown; turning it into SystemExit lets exit
    # handlers run, so the embedded PostgreSQL stops with the server instead of lingering.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        timeout_graceful_shutdown=args.graceful_timeout,
        # X-Forwarded-* only from the proxies named in FORWARDED_ALLOW_IPS (uvicorn would trust loopback).
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_config=None,  # the app configures logging: JSON lines, or text in a terminal
        access_log=False,  # one line per request comes from api.requests instead
    )


def _share_metrics_between_workers() -> None:
    """Each worker writes its metrics to files in one directory, which every scrape reads.

    Set before the workers start (prometheus-client reads it as it is imported), emptied of an
    earlier run's files by being new, and removed when the server stops.
    """
    if os.environ.get(MULTIPROCESS_DIR):
        return  # the operator's own directory: theirs to manage
    directory = tempfile.mkdtemp(prefix="taskapi-metrics-")
    os.environ[MULTIPROCESS_DIR] = directory
    atexit.register(shutil.rmtree, directory, ignore_errors=True)


def _print_example(base: str, secret: str, settings: Settings) -> None:
    token = mint_token(secret, "demo", ttl_seconds=24 * 3600)
    print(
        f"embedded PostgreSQL in {settings.data_dir}/pg; try it (token valid 24 h):\n"
        f"  export TOKEN={token}\n"
        f'  curl -si -X POST {base}/api/demo/tasks -H "Authorization: Bearer $TOKEN" '
        "-H 'Content-Type: application/json' -d '{\"title\": \"Try the task API\"}'\n"
        f'  curl -s {base}/api/demo/tasks -H "Authorization: Bearer $TOKEN"',
        flush=True,
    )


def token(args: argparse.Namespace) -> None:
    if not is_valid_user_id(args.user_id):
        raise SystemExit("USER_ID must be 1 to 255 printable characters")
    settings = get_settings()
    secret = _jwt_secret(settings)
    if secret is None:
        raise SystemExit("taskapi token signs with JWT_SECRET, which is not set; JWT_JWKS_URL's provider issues tokens")
    issuer, audience = settings.jwt_issuer, settings.jwt_audience
    print(mint_token(secret, args.user_id, ttl_seconds=args.ttl, issuer=issuer, audience=audience))


def audit(args: argparse.Namespace) -> None:
    settings = get_settings()
    try:
        report = run_audit(_database_url(settings), schemas=args.schema or ["public", "app"])
    except psycopg.OperationalError as exc:
        print(f"cannot connect: {exc}", file=sys.stderr)
        sys.exit(2)
    print(report.to_json() if args.json else render_text(report))
    if report.fails(args.fail_on):
        sys.exit(1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskapi", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="serve the API")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    serve_parser.add_argument(
        "--graceful-timeout",
        type=float,
        default=20,
        help="on SIGTERM, seconds to let in-flight requests finish (default 20)",
    )
    serve_parser.set_defaults(handler=serve)

    migrate_parser = commands.add_parser("migrate", help="apply database migrations")
    migrate_parser.set_defaults(handler=migrate)

    audit_parser = commands.add_parser(
        "audit", help="report RLS, policies, roles and findings; exit 1 at or above --fail-on"
    )
    audit_parser.add_argument("--json", action="store_true", help="machine-readable output")
    audit_parser.add_argument("--fail-on", choices=SEVERITIES, default="high", help="default: high")
    audit_parser.add_argument("--schema", action="append", help="schema to audit (repeatable; default public, app)")
    audit_parser.set_defaults(handler=audit)

    token_parser = commands.add_parser("token", help="print a signed token for local use")
    token_parser.add_argument("user_id", metavar="USER_ID")
    token_parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token_parser.set_defaults(handler=token)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        sys.exit(f"invalid settings: {problems}")
    except KeyboardInterrupt:
        sys.exit(130)
