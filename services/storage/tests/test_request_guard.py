"""The pkt-line guard checks what git reads, and only that."""

from __future__ import annotations

import pytest

from geogit.common.pktline import PktLineError
from geogit.storage.request_guard import PktLineGuard

WANT = b"0032want " + b"a" * 40 + b"\n"


def test_a_response_end_packet_in_what_git_reads_is_refused() -> None:
    guard = PktLineGuard(until_first_flush=False)
    guard.check(WANT + b"0000")
    with pytest.raises(PktLineError, match="response-end"):
        guard.check(b"0002")
