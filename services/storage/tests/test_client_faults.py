"""Which of git's dying words blame the client's request (a 4xx) rather than storage."""

from __future__ import annotations

from geogit.storage.git import client_fault


def test_an_ambiguous_deepen_not_is_the_clients_fault() -> None:
    # Found by the hostile pkt-line stream test: `deepen-not want` names no ref.
    stderr = b"fatal: git upload-pack: ambiguous deepen-not: deepen-not want\n"
    assert client_fault("upload-pack", 128, stderr) == (
        "fatal: git upload-pack: ambiguous deepen-not: deepen-not want"
    )


def test_a_broken_repository_stays_an_internal_error() -> None:
    assert client_fault("upload-pack", 128, b"fatal: unable to read tree abc\n") is None
