"""geogit-internal-api: serve the API (the default), migrate the database, bootstrap an admin."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from geogit.common.http_listener import listener_limits, uvicorn_options
from geogit.common.logging import configure_logging
from geogit.internal_api.app import create_app
from geogit.internal_api.bootstrap import bootstrap_admin
from geogit.internal_api.config import InternalApiSettings
from geogit.internal_api.migrate import upgrade

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
MAX_HEAD_BYTES = 16 * 1024
"""h11's default, as before the listener had bounds of its own."""


class _Server(uvicorn.Server):
    """On SIGTERM or SIGINT uvicorn stops accepting, lets requests finish for the grace period
    and runs the lifespan's shutdown. It then re-raises the signal, so the process would end
    "killed by SIGTERM"; a server that drained cleanly exits 0 instead, as storage does."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(settings: InternalApiSettings) -> None:
    host, port = settings.http_host_port
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        **uvicorn_options(listener_limits(settings, MAX_HEAD_BYTES)),
    )
    _Server(config).run()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geogit-internal-api", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the HTTP server (the default)")
    commands.add_parser("migrate", help="apply the database migrations (alembic upgrade head)")
    admin = commands.add_parser(
        "bootstrap-admin", help="create the admin user if missing and print a new token"
    )
    admin.add_argument("--username", default="root")
    admin.add_argument("--email", default="root@example.com")
    secret = admin.add_mutually_exclusive_group(required=True)
    secret.add_argument("--password")
    secret.add_argument("--password-file", type=Path)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = InternalApiSettings()
    configure_logging("internal-api", settings.log_level)
    if args.command == "migrate":
        upgrade(settings.database_url)
    elif args.command == "bootstrap-admin":
        password = args.password or args.password_file.read_text().rstrip("\r\n")
        admin = asyncio.run(
            bootstrap_admin(
                settings.database_url, settings.site_name, args.username, args.email, password
            )
        )
        json.dump(
            {"user_id": admin.user_id, "username": admin.username, "token": admin.token},
            sys.stdout,
        )
        sys.stdout.write("\n")
    else:
        try:
            settings.check_required_secrets()
        except ValueError as exc:
            raise SystemExit(f"geogit-internal-api: {exc}") from exc
        serve(settings)


if __name__ == "__main__":
    main()
