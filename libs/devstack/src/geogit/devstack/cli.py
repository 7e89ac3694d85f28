"""The `geogit` command. One dispatch table per group: `geogit dev up|down|status|demo|stop|
start|restart`, `geogit geo promote`, and `geogit status` (replication and roles per site).

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
    return stack.up(secondaries=args.secondaries, demo=args.demo, replicas=args.replicas)


def _down(stack: DevStack, args: argparse.Namespace) -> int:
    return stack.down(purge=args.purge)


def _status(stack: DevStack, args: argparse.Namespace) -> int:
    return stack.status()


def _demo(stack: DevStack, args: argparse.Namespace) -> int:
    return stack.demo()


def _stop(stack: DevStack, args: argparse.Namespace) -> int:
    return stack.stop_component(args.component, kill=args.kill)


def _start(stack: DevStack, args: argparse.Namespace) -> int:
    return stack.start_component(args.component)


def _restart(stack: DevStack, args: argparse.Namespace) -> int:
    return stack.restart_component(args.component)


Handler = Callable[[DevStack, argparse.Namespace], int]
DEV_COMMANDS: dict[str, tuple[Handler, str]] = {
    "up": (_up, "start the dev stack and return once every service is ready"),
    "down": (_down, "stop every process `up` started"),
    "status": (_status, "list the stack's processes and their health checks"),
    "demo": (_demo, "create user alice and project alice/demo with a few commits"),
    "stop": (_stop, "stop one component or a whole site gracefully (SIGTERM, then wait)"),
    "start": (_start, "start a stopped component or site as `up` started it"),
    "restart": (_restart, "stop, then start, one component or a whole site"),
}
COMPONENT_HELP = (
    "kafka, postgresql, a site (primary, secondary-1: all its services), or SITE/SERVICE"
    " (e.g. secondary-1/replicator, primary/edge-proxy)"
)


def _promote(stack: DevStack, args: argparse.Namespace) -> int:
    return stack.promote(args.site, "planned" if args.planned else "force")


GEO_COMMANDS: dict[str, tuple[Handler, str]] = {
    "promote": (_promote, "make a secondary the primary: print what is at risk, then promote"),
}


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
    up.add_argument(
        "--replicas",
        type=int,
        default=1,
        metavar="R",
        help="edge proxies, SSH gateways and internal APIs per site, behind HAProxy (default 1)",
    )
    up.add_argument("--demo", action="store_true", help="also create the demo data (see `demo`)")
    for name in ("stop", "start", "restart"):
        actions.choices[name].add_argument("component", metavar="COMPONENT", help=COMPONENT_HELP)
    actions.choices["stop"].add_argument(
        "--kill",
        action="store_true",
        help="SIGKILL at once, as a crash would (PostgreSQL: immediate shutdown)",
    )
    actions.choices["down"].add_argument(
        "--purge", action="store_true", help="also delete .run/ (database, repositories, secrets)"
    )
    _geo_parser(commands)
    return parser


def _geo_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    geo = commands.add_parser("geo", help="Geo operations on the dev stack's sites")
    _run_dir_option(geo)
    actions = geo.add_subparsers(dest="action", required=True)
    for name, (_, summary) in GEO_COMMANDS.items():
        actions.add_parser(name, help=summary, description=summary)
    promote = actions.choices["promote"]
    promote.add_argument("site", metavar="SITE", help="the secondary to promote (secondary-1)")
    mode = promote.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--planned",
        action="store_true",
        help="zero loss: the primary goes read-only and the candidate catches up first",
    )
    mode.add_argument(
        "--force",
        action="store_true",
        help="the primary is gone: promote now; what the candidate lacks is lost (printed first)",
    )


def _handler(args: argparse.Namespace) -> Handler:
    if args.command == "status":
        return _geo_status
    table = GEO_COMMANDS if args.command == "geo" else DEV_COMMANDS
    return table[args.action][0]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        layout = RunLayout(args.run_dir.resolve()) if args.run_dir else RunLayout.find()
    except LayoutError as exc:
        print(f"geogit dev: {exc}")
        return 1
    return _handler(args)(DevStack(layout), args)
