"""What the kernel says a pid is, so a recorded pid is only ever signalled while it is ours.

A pid alone is not an identity: after a crash or a reboot it may belong to anything. The pair
(command line, start time in clock ticks since boot) is, for as long as that process lives.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Identity:
    """What the kernel says a pid is: its command line and its start time in clock ticks."""

    cmdline: tuple[str, ...]
    start_ticks: int


def identity_of(pid: int) -> Identity | None:
    """The live process `pid`, or None if it is gone or a zombie waiting to be reaped."""
    try:
        raw_cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name in field 2 may contain spaces and parentheses; the rest follows the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    state, start_ticks = fields[0], int(fields[19])
    if state in ("Z", "X"):
        return None
    cmdline = tuple(part.decode(errors="replace") for part in raw_cmdline.split(b"\0")[:-1])
    return Identity(cmdline, start_ticks)


def settled_identity(pid: int, timeout: float = 2.0) -> Identity | None:
    """The identity of a child that has just exec'd, once the kernel shows its command line.

    Popen returns when exec closes the close-on-exec pipe, which is a moment before the kernel
    fills in the new program's arguments: reading at once can see an empty command line.
    """
    deadline = time.monotonic() + timeout
    while (identity := identity_of(pid)) is not None and not identity.cmdline:
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    return identity
