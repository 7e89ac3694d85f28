"""`geogit status` against fake sites: the replication lines it always printed, and per site
its role, epoch, last sequence, gap to the primary and maintenance; a silent site is shown as
unreachable and the rest still prints."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from devstack_support import FakeSite, dead_url, fake_sites, site_state, write_stack_of

from geogit.devstack.cli import main
from geogit.devstack.geo_status import HEADER, ROLES_HEADER

STATE = "/api/v4/geo/site_state"
ROLES = {"primary": "primary", "secondary-1": "secondary"}


def _replication(site_id: int) -> dict[str, Any]:
    return {
        "id": site_id,
        "repositories_count": 3,
        "repositories_synced_count": 2,
        "repositories_failed_count": 1,
        "repositories_verified_count": 2,
        "replication_lag_p50_ms": 40.0,
        "replication_lag_p99_ms": None,
        "last_event_id": 125,
    }


def _serve(primary: FakeSite, secondaries: dict[str, FakeSite], seq: int = 120) -> None:
    """`primary` knows every site and their replication; each secondary its own feed."""
    registered = [{"id": 1, "name": primary.name}] + [
        {"id": site_id, "name": name} for site_id, name in enumerate(secondaries, start=2)
    ]
    primary.routes[("GET", "/api/v4/geo/sites")] = (200, registered)
    for site_id, secondary in enumerate(secondaries.values(), start=2):
        primary.routes[("GET", f"/api/v4/geo/sites/{site_id}/status")] = (
            200,
            _replication(site_id),
        )
        secondary.routes[("GET", "/api/v4/internal/geo/status")] = (
            200,
            {"last_global_seq": seq, "caught_up_at": datetime.now(UTC).isoformat(), "fresh": True},
        )


def _status(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main(["status", "--run-dir", str(run_dir)]) == 0
    return capsys.readouterr().out.splitlines()


def _line(out: list[str], start: str, after: str) -> str:
    """The line starting with `start` below the header `after`."""
    return next(line for line in out[out.index(after) :] if line.startswith(start))


def test_every_site_shows_its_role_epoch_and_gap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_sites(*ROLES) as sites:
        primary, secondary = sites["primary"], sites["secondary-1"]
        _serve(primary, {"secondary-1": secondary})
        primary.routes[("GET", STATE)] = (200, site_state(1, "primary", "primary", 125))
        secondary.routes[("GET", STATE)] = (200, site_state(2, "secondary-1", "secondary", 120))
        write_stack_of(tmp_path, {name: site.url for name, site in sites.items()}, ROLES)

        out = _status(tmp_path, capsys)

        assert all(r.headers["PRIVATE-TOKEN"] for r in primary.asked("GET", STATE))
    assert out[:3] == [
        HEADER,
        f"{'primary':<14} {'primary':<10} {'(owns every write)':<28}",
        f"{'secondary-1':<14} {'secondary':<10} {'2/3 synced, 1 failed, 2 verified':<28}"
        f" {'40 ms/-':<18} {out[2].split('40 ms/-')[1].strip()}",
    ]
    assert "5 events behind, caught up" in out[2] and "(current)" in out[2]
    assert out[3:] == [
        "",
        ROLES_HEADER,
        f"{'primary':<14} {'primary':<10} {1:<6} {125:<9} {'-':<15} -",
        f"{'secondary-1':<14} {'secondary':<10} {1:<6} {120:<9} {'5 events':<15} -",
    ]


def test_maintenance_fencing_and_a_silent_site_are_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    roles = {**ROLES, "secondary-2": "secondary"}
    with fake_sites("primary", "secondary-1") as sites:
        primary, secondary = sites["primary"], sites["secondary-1"]
        _serve(primary, {"secondary-1": secondary, "secondary-2": secondary})
        maintenance = {"target": "secondary-1", "since": "2026-12-03T18:00:00+00:00"}
        primary.routes[("GET", STATE)] = (
            200,
            site_state(1, "primary", "primary", 125, maintenance=maintenance),
        )
        secondary.routes[("GET", STATE)] = (
            200,
            site_state(2, "secondary-1", "secondary", 125, fenced=True),
        )
        urls = {name: site.url for name, site in sites.items()}
        write_stack_of(tmp_path, {**urls, "secondary-2": dead_url()}, roles)

        out = _status(tmp_path, capsys)

    assert _line(out, "primary ", ROLES_HEADER).endswith(
        "-               maintenance: failing over to secondary-1 since 2026-12-03T18:00:00+00:00"
    )
    fenced = _line(out, "secondary-1 ", ROLES_HEADER)
    assert "0 events" in fenced and "FENCED: writes refused, follows primary" in fenced
    silent = _line(out, "secondary-2 ", ROLES_HEADER)
    assert silent.startswith(
        f"{'secondary-2':<14} {'?':<10} unreachable: GET /api/v4/geo/site_state"
    )
    unavailable = _line(out, "secondary-2 ", HEADER)
    assert "unavailable: secondary-2: internal API:" in unavailable


def test_an_unreachable_primary_is_shown_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_sites("secondary-1") as sites:
        secondary = sites["secondary-1"]
        secondary.routes[("GET", STATE)] = (200, site_state(2, "secondary-1", "secondary", 120))
        write_stack_of(tmp_path, {"primary": dead_url(), "secondary-1": secondary.url}, ROLES)

        out = _status(tmp_path, capsys)

    assert out[1].startswith(f"{'primary':<14} {'primary':<10} unreachable: GET /api/v4/geo/sites")
    assert _line(out, "primary ", ROLES_HEADER).startswith(f"{'primary':<14} {'?':<10} unreachable")
    assert f"{120:<9} {'unknown':<15} -" in _line(out, "secondary-1 ", ROLES_HEADER)


def test_after_a_promotion_the_primary_is_the_site_that_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_sites(*ROLES) as sites:
        old, new = sites["primary"], sites["secondary-1"]
        _serve(new, {"primary": old}, seq=125)
        new.routes[("GET", STATE)] = (200, site_state(2, "secondary-1", "primary", 130, epoch=2))
        old.routes[("GET", STATE)] = (200, site_state(1, "primary", "secondary", 125, epoch=2))
        # stack.json not yet rewritten: it still says `primary` is the primary.
        write_stack_of(tmp_path, {name: site.url for name, site in sites.items()}, ROLES)

        out = _status(tmp_path, capsys)

        assert old.asked("GET", "/api/v4/geo/sites") == []
    assert out[1].startswith(f"{'primary':<14} {'secondary':<10} 2/3 synced")
    assert out[2] == f"{'secondary-1':<14} {'primary':<10} {'(owns every write)':<28}"
    assert _line(out, "primary ", ROLES_HEADER) == (
        f"{'primary':<14} {'secondary':<10} {2:<6} {125:<9} {'5 events':<15} -"
    )
