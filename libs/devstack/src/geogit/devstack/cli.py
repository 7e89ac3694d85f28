"""The `geogit` command. One dispatch table: `geogit dev up|down|status|demo|stop|start|restart`,
and `geogit status` (replication per site).

Exit status: 0 success, 1 failure (the reason on stderr), 2 usage, 3 `status` of a stack
that is down, 130 interrupted.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from geogit.devstack.commands import DevStack
from geogit.devstack.layout import LayoutError, RunLayout


def _up(stack: DevStack, args: argparse.Namespace) -> int:
    return stack.up(secondaries=args.secondaries, demo=args.demo)


def _down(stack: DevStack, args: argparse.Namespace) -> int:
    return stack.down(purge=args.purge)


def _status(stack: DevStack, args: argparse.Namespace) -> int:
    return stack.status()


def _demo(stack: DevStack, args: argparse.Namespace) -> int:
    return stack.demo()


def _stop(stack: DevStack, args: argparse.Namespace) -> int:
    return stack.stop_component(args.component)


def _start(stack: DevStack, args: argparse.Namespace) -> int:
    return stack.start_component(args.component)


def _restart(stack: DevStack, args: argparse.Namespace) -> int:
    return stack.restart_component(args.component)


DEV_COMMANDS: dict[str, tuple[Callable[[DevStack, argparse.Namespace], int], str]] = {
    "up": (_up, "start the dev stack and return once every service is ready"),
    "down": (_down, "stop every process `up` started"),
    "status": (_status, "list the stack's processes and their health checks"),
    "demo": (_demo, "create user alice and project alice/demo with a few commits"),
    "stop": (_stop, "stop one component gracefully (SIGTERM, then wait)"),
    "start": (_start, "start a stopped component as `up` started it"),
    "restart": (_restart, "stop, then start, one component"),
}
COMPONENT_HELP = (
    "kafka, postgresql, or SITE/SERVICE (e.g. secondary-1/replicator, primary/edge-proxy)"
)


def _geo_status(stack: DevStack, args: argparse.Namespace) -> int:
    return stack.geo_status()


def _run_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run-dir",
        type=Path,
        help="where the stack keeps its state (default: .run/ at the checkout's root)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geogit", description="geogit developer tools")
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser(
        "status", help="replication per site: repositories, lag, event feed"
    )
    _run_dir_option(status)
    dev = commands.add_parser("dev", help="the local dev stack (state in .run/)")
    _run_dir_option(dev)
    actions = dev.add_subparsers(dest="action", required=True)
    for name, (_, summary) in DEV_COMMANDS.items():
        actions.add_parser(name, help=summary, description=summary)
    up = actions.choices["up"]
    up.add_argument(
        "--secondaries",
        type=int,
        default=1,
        metavar="N",
        help="secondary sites besides the primary (default 1)",
    )
    up.add_argument("--demo", action="store_true", help="also create the demo data (see `demo`)")
    for name in ("stop", "start", "restart"):
        actions.choices[name].add_argument("component", metavar="COMPONENT", help=COMPONENT_HELP)
    actions.choices["down"].add_argument(
        "--purge", action="store_true", help="also delete .run/ (database, repositories, secrets)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        layout = RunLayout(args.run_dir.resolve()) if args.run_dir else RunLayout.find()
    except LayoutError as exc:
        print(f"geogit dev: {exc}")
        return 1
    handler = _geo_status if args.command == "status" else DEV_COMMANDS[args.action][0]
    return handler(DevStack(layout), args)
