"""`geogit geo promote SITE --planned|--force` against fake sites answering the promotion
contract (DESIGN §10): the risk it prints, the outcome, its refusals, and stack.json after."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from devstack_support import (
    TOKEN,
    FakeSite,
    Reply,
    Request,
    dead_url,
    fake_sites,
    site_state,
    write_stack_of,
)

from geogit.devstack.cli import build_parser, main
from geogit.devstack.stack import read_stack

PREVIEW = "/api/v4/geo/sites/2/promotion"
PROMOTE = "/api/v4/geo/sites/2/promote"
STATE = "/api/v4/geo/site_state"
ROLES = {"primary": "primary", "secondary-1": "secondary", "secondary-2": "secondary"}


def _preview(**changes: Any) -> dict[str, Any]:
    return {
        "candidate": "secondary-1",
        "mode": "planned",
        "epoch": 1,
        "next_epoch": 2,
        "candidate_seq": 120,
        "highest_seen_seq": 125,
        "gap": 5,
        "sites": [
            {
                "site": "primary",
                "reachable": True,
                "role": "primary",
                "epoch": 1,
                "last_global_seq": 125,
                "error": "",
            },
            {
                "site": "secondary-2",
                "reachable": True,
                "role": "secondary",
                "epoch": 1,
                "last_global_seq": 118,
                "error": "",
            },
        ],
        "projects_behind": [
            {"project_id": 1, "full_path": "alice/demo", "replica_seq": 3, "latest_seq": 4}
        ],
        "projects_behind_count": 1,
        "pushes_behind": 2,
        "blockers": [],
        **changes,
    }


def _result(mode: str) -> dict[str, Any]:
    return {
        "site": "secondary-1",
        "epoch": 2,
        "after_seq": 125,
        "mode": mode,
        "waited_seconds": 3.2,
        "followers": [
            {"site": "primary", "followed": True, "error": ""},
            {"site": "secondary-2", "followed": False, "error": "503 its database is down"},
        ],
        "at_risk": _preview(mode=mode),
    }


def _states(fakes: dict[str, FakeSite], roles: dict[str, str], epoch: int = 1) -> None:
    """Each fake answers site_state with its role (seqs: primary 125, candidate 120)."""
    ids = {"primary": 1, "secondary-1": 2, "secondary-2": 3}
    seqs = {"primary": 125, "secondary-1": 120, "secondary-2": 118}
    for name, fake in fakes.items():
        state = site_state(ids[name], name, roles[name], seqs[name], epoch=epoch)
        fake.routes[("GET", STATE)] = (200, state)


def _promoting(fakes: dict[str, FakeSite], mode: str, **preview: Any) -> None:
    """secondary-1 previews and promotes itself; after the POST the sites that answer say the
    roles have swapped over."""
    _states(fakes, ROLES)
    candidate = fakes["secondary-1"]
    candidate.routes[("GET", PREVIEW)] = (200, _preview(**preview))

    def promote(request: Request) -> Reply:
        _states(fakes, {**ROLES, "primary": "secondary", "secondary-1": "primary"}, epoch=2)
        return 200, _result(mode)

    candidate.routes[("POST", PROMOTE)] = promote


def _promote(run_dir: Path, *args: str) -> int:
    return main(["geo", "--run-dir", str(run_dir), "promote", *args])


@pytest.mark.parametrize(
    "argv",
    [
        ["geo", "promote", "secondary-1"],
        ["geo", "promote", "secondary-1", "--planned", "--force"],
        ["geo", "promote", "--planned"],
        ["geo"],
    ],
)
def test_exactly_one_mode_and_a_site_are_required(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert "usage: geogit geo" in capsys.readouterr().err


def test_the_mode_flag_names_the_mode() -> None:
    planned = build_parser().parse_args(["geo", "promote", "secondary-1", "--planned"])
    forced = build_parser().parse_args(["geo", "promote", "secondary-2", "--force"])
    assert (planned.site, planned.planned, planned.force) == ("secondary-1", True, False)
    assert (forced.site, forced.planned, forced.force) == ("secondary-2", False, True)


def test_a_planned_promotion_prints_the_risk_then_the_outcome_and_records_the_roles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_sites(*ROLES) as sites:
        _promoting(sites, "planned")
        write_stack_of(tmp_path, {name: site.url for name, site in sites.items()}, ROLES)

        assert _promote(tmp_path, "secondary-1", "--planned") == 0

        candidate = sites["secondary-1"]
        (preview,) = candidate.asked("GET", PREVIEW)
        (posted,) = candidate.asked("POST", PROMOTE)
    assert preview.query == {"mode": ["planned"]}
    assert posted.body == {"mode": "planned"}
    assert all(r.headers["PRIVATE-TOKEN"] == TOKEN for r in candidate.requests)
    assert capsys.readouterr().out.splitlines() == [
        "promotion of secondary-1 (planned): epoch 1 -> 2",
        "  secondary-1 has applied events up to seq 120; the highest seq any reachable site"
        " has seen is 125",
        "  gap: 5 events; a planned promotion waits until it has them",
        "  2 pushes secondary-1 has heard of are not in its replicas yet; 1 projects behind",
        "  site primary: primary at epoch 1, seq 125",
        "  site secondary-2: secondary at epoch 1, seq 118",
        "  project alice/demo (id 1) behind: replica at seq 3, latest seq 4",
        "promoting secondary-1; this returns once it is done (up to a few minutes)",
        "secondary-1 is primary at epoch 2: its events continue after seq 125 (planned,"
        " waited 3.2 s)",
        "  primary: follows secondary-1",
        "  secondary-2: did not follow (503 its database is down)",
        "primary: now secondary (was primary)",
        "secondary-1: now primary (was secondary)",
        f"roles recorded in {tmp_path / 'stack.json'}",
    ]
    stack = read_stack(tmp_path / "stack.json")
    assert {site.name: site.role for site in stack.sites} == {
        "primary": "secondary",
        "secondary-1": "primary",
        "secondary-2": "secondary",
    }
    assert stack.primary().name == "secondary-1"
    assert json.loads((tmp_path / "roles.json").read_text()) == {
        "primary": "secondary",
        "secondary-1": "primary",
        "secondary-2": "secondary",
    }


def test_a_forced_promotion_names_what_is_at_risk_and_goes_ahead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_sites("secondary-1", "secondary-2") as sites:  # the primary is gone
        _promoting(
            sites,
            "force",
            sites=[
                {"site": "primary", "reachable": False, "error": "connection refused"},
                {
                    "site": "secondary-2",
                    "reachable": True,
                    "role": "secondary",
                    "epoch": 1,
                    "last_global_seq": 118,
                    "error": "",
                },
            ],
            projects_behind=[
                {"project_id": 7, "full_path": "bob/new", "replica_seq": None, "latest_seq": 1}
            ],
            blockers=["the primary is unreachable"],
        )
        urls = {name: site.url for name, site in sites.items()}
        write_stack_of(tmp_path, {"primary": dead_url(), **urls}, ROLES)

        assert _promote(tmp_path, "secondary-1", "--force") == 0

        (preview,) = sites["secondary-1"].asked("GET", PREVIEW)
        (posted,) = sites["secondary-1"].asked("POST", PROMOTE)
    assert preview.query == {"mode": ["force"]} and posted.body == {"mode": "force"}
    out = capsys.readouterr().out.splitlines()
    assert out[:8] == [
        "promotion of secondary-1 (force): epoch 1 -> 2",
        "  secondary-1 has applied events up to seq 120; the highest seq any reachable site"
        " has seen is 125",
        "  gap: 5 events (the RPO): lost unless they reach secondary-1",
        "  2 pushes secondary-1 has heard of are not in its replicas yet; 1 projects behind",
        "  site primary: UNREACHABLE (connection refused)",
        "  site secondary-2: secondary at epoch 1, seq 118",
        "  project bob/new (id 7) behind: no replica, latest seq 1",
        "  blocker: the primary is unreachable",
    ]
    # The old primary is down: recorded as a secondary of the site that says it is primary.
    assert any(line.startswith("primary: no site state (") for line in out)
    assert "recorded as secondary" in next(line for line in out if line.startswith("primary:"))
    stack = read_stack(tmp_path / "stack.json")
    assert stack.site("primary").role == "secondary"
    assert stack.primary().name == "secondary-1"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (409, "409 another promotion is running"),
        (504, "timed out waiting for secondary-1 to apply seq 125 (it has 120)"),
        (404, "404 Geo Site Not Found"),
    ],
)
def test_a_refused_promotion_exits_1_with_the_servers_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], status: int, message: str
) -> None:
    with fake_sites(*ROLES) as sites:
        _promoting(sites, "planned")
        sites["secondary-1"].routes[("POST", PROMOTE)] = (status, {"message": message})
        write_stack_of(tmp_path, {name: site.url for name, site in sites.items()}, ROLES)
        before = (tmp_path / "stack.json").read_text()

        assert _promote(tmp_path, "secondary-1", "--planned") == 1

    captured = capsys.readouterr()
    assert "promotion of secondary-1 (planned)" in captured.out  # the risk came first
    assert captured.err.startswith("geogit geo promote: POST /api/v4/geo/sites/2/promote: ")
    assert message in captured.err and "stack.json is unchanged" in captured.err
    assert (tmp_path / "stack.json").read_text() == before
    assert not (tmp_path / "roles.json").exists()


def test_a_refused_preview_promotes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_sites(*ROLES) as sites:
        _promoting(sites, "planned")
        sites["secondary-1"].routes[("GET", PREVIEW)] = (409, {"message": "409 not a secondary"})
        write_stack_of(tmp_path, {name: site.url for name, site in sites.items()}, ROLES)

        assert _promote(tmp_path, "secondary-1", "--planned") == 1

        assert sites["secondary-1"].asked("POST", PROMOTE) == []
    assert "409 not a secondary" in capsys.readouterr().err


def test_an_answer_of_the_wrong_shape_is_a_clear_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_sites(*ROLES) as sites:
        _promoting(sites, "planned")
        sites["secondary-1"].routes[("GET", STATE)] = (200, {"site": "secondary-1"})
        write_stack_of(tmp_path, {name: site.url for name, site in sites.items()}, ROLES)

        assert _promote(tmp_path, "secondary-1", "--planned") == 1

    err = capsys.readouterr().err
    assert "GET /api/v4/geo/site_state: unexpected answer" in err and "site_id" in err


def test_an_unknown_site_is_refused_with_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_stack_of(tmp_path, {name: dead_url() for name in ROLES}, ROLES)
    assert _promote(tmp_path, "tertiary", "--force") == 1
    err = capsys.readouterr().err
    assert "no site 'tertiary' in the stack; it has: primary, secondary-1, secondary-2" in err


def test_promote_on_a_stack_that_is_not_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _promote(tmp_path, "secondary-1", "--planned") == 1
    assert "the dev stack is not up" in capsys.readouterr().err
