import json
import logging
from collections.abc import Iterator

import pytest

from geogit.common.logging import (
    bound_correlation_id,
    configure_logging,
    get_correlation_id,
    new_correlation_id,
)


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def test_line_is_json_with_correlation_id(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("storage", "DEBUG")
    with bound_correlation_id("req-42") as bound:
        logging.getLogger("geogit.storage.repository").info("created %s", "a/b.git")
    [entry] = _lines(capsys)
    assert bound == "req-42"
    assert entry["level"] == "INFO"
    assert entry["service"] == "storage"
    assert entry["logger"] == "geogit.storage.repository"
    assert entry["msg"] == "created a/b.git"
    assert entry["correlation_id"] == "req-42"
    assert str(entry["time"]).endswith("+00:00")


def test_extras_and_exceptions_appear(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("storage")
    try:
        raise RuntimeError("disk full")
    except RuntimeError:
        logging.getLogger("t").exception("push failed", extra={"project_id": 7, "service": "spoof"})
    [entry] = _lines(capsys)
    assert entry["project_id"] == 7
    assert (entry["msg"], entry["service"]) == ("push failed", "storage")
    assert "RuntimeError: disk full" in str(entry["exc"])
    assert "correlation_id" not in entry


def test_configure_twice_does_not_duplicate(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("a")
    configure_logging("b", "WARNING")
    logging.getLogger("t").info("dropped")
    logging.getLogger("t").warning("kept")
    [entry] = _lines(capsys)
    assert (entry["service"], entry["msg"]) == ("b", "kept")


def test_bound_correlation_id_generates_and_resets() -> None:
    assert get_correlation_id() == ""
    with bound_correlation_id(None) as outer:
        assert len(outer) == 32
        assert get_correlation_id() == outer
        with bound_correlation_id("") as inner:
            assert inner not in ("", outer)
        assert get_correlation_id() == outer
    assert get_correlation_id() == ""


def test_untrusted_correlation_id_is_replaced() -> None:
    with bound_correlation_id("x" * 500) as too_long, bound_correlation_id("a\nb") as newline:
        assert too_long != "x" * 500
        assert newline != "a\nb"


def test_new_correlation_ids_differ() -> None:
    assert new_correlation_id() != new_correlation_id()
