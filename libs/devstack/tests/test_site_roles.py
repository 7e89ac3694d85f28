"""Roles as the sites report them: which answer wins, what `up` starts from after a promotion
(`down` then `up` must not hand the primary role back to the site named `primary`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from devstack_support import dead_url, fake_sites, site_state, stack_of

from geogit.common.geo_coordination import SiteStateOut
from geogit.devstack.api import ApiError
from geogit.devstack.commands import DevStack
from geogit.devstack.layout import RunLayout
from geogit.devstack.site_roles import (
    RolesError,
    load_roles,
    refresh_roles,
    reported_roles,
    save_roles,
    starting_roles,
)

NAMES = ["primary", "secondary-1", "secondary-2"]
RECORDED = {"primary": "primary", "secondary-1": "secondary", "secondary-2": "secondary"}
SILENT = ApiError("GET /api/v4/geo/site_state: connection refused")


def _state(name: str, role: str, epoch: int = 1, fenced: bool = False) -> SiteStateOut:
    return SiteStateOut.model_validate(
        site_state(NAMES.index(name) + 1, name, role, 10, epoch=epoch, fenced=fenced)
    )


def _roles(answers: dict[str, SiteStateOut | ApiError]) -> dict[str, str]:
    stack = stack_of({name: dead_url() for name in NAMES}, RECORDED)
    return dict(reported_roles(stack, answers))


def test_the_site_that_says_it_is_primary_is_and_the_silent_old_primary_is_not() -> None:
    answers = {
        "primary": SILENT,
        "secondary-1": _state("secondary-1", "primary", epoch=2),
        "secondary-2": _state("secondary-2", "secondary", epoch=2),
    }
    assert _roles(answers) == {
        "primary": "secondary",
        "secondary-1": "primary",
        "secondary-2": "secondary",
    }


def test_of_two_claims_the_higher_epoch_wins_and_a_fenced_site_is_a_secondary() -> None:
    assert _roles(
        {
            "primary": _state("primary", "primary", epoch=1),
            "secondary-1": _state("secondary-1", "primary", epoch=2),
            "secondary-2": SILENT,
        }
    ) == {"primary": "secondary", "secondary-1": "primary", "secondary-2": "secondary"}
    assert _roles(
        {
            "primary": _state("primary", "primary", epoch=2, fenced=True),
            "secondary-1": SILENT,
            "secondary-2": _state("secondary-2", "secondary"),
        }
    ) == {"primary": "secondary", "secondary-1": "secondary", "secondary-2": "secondary"}


def test_when_nobody_answers_the_recorded_roles_stay() -> None:
    assert _roles(dict.fromkeys(NAMES, SILENT)) == RECORDED


def test_refresh_says_what_changed_and_who_was_silent() -> None:
    with fake_sites("secondary-1") as sites:
        sites["secondary-1"].routes[("GET", "/api/v4/geo/site_state")] = (
            200,
            site_state(2, "secondary-1", "primary", 10, epoch=2),
        )
        urls = {"primary": dead_url(), "secondary-1": sites["secondary-1"].url}
        said: list[str] = []
        stack = refresh_roles(stack_of(urls, RECORDED), said.append)
    assert [site.role for site in stack.sites] == ["secondary", "primary"]
    assert said[0].startswith("primary: no site state (GET /api/v4/geo/site_state: ")
    assert said[0].endswith("); recorded as secondary")
    assert said[1:] == ["secondary-1: now primary (was secondary)"]


def test_up_starts_from_the_bootstrap_roles_then_from_the_recorded_ones() -> None:
    assert starting_roles(NAMES, {}) == RECORDED
    promoted = {"primary": "secondary", "secondary-1": "primary"}
    assert starting_roles(NAMES, promoted) == {**RECORDED, **promoted}
    assert starting_roles(NAMES[:2], {**promoted, "secondary-9": "secondary"}) == promoted


def test_up_without_the_recorded_primary_is_refused() -> None:
    with pytest.raises(RolesError, match="reported secondary-2 as primary"):
        starting_roles(NAMES[:2], {"primary": "secondary", "secondary-2": "primary"})


def test_roles_outlive_down(tmp_path: Path) -> None:
    path = tmp_path / "roles.json"
    assert load_roles(path) == {}
    stack = stack_of({name: dead_url() for name in NAMES}, {**RECORDED, "primary": "secondary"})
    save_roles(path, stack)
    assert load_roles(path) == {**RECORDED, "primary": "secondary"}


def test_up_after_a_promotion_wires_the_sites_to_the_promoted_primary(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    save_roles(
        layout.roles_file,
        stack_of(
            {name: dead_url() for name in NAMES},
            {"primary": "secondary", "secondary-1": "primary", "secondary-2": "secondary"},
        ),
    )
    sites = {site.name: site for site in DevStack(layout).sites(secondaries=2)}

    assert {name: site.role for name, site in sites.items()} == {
        "primary": "secondary",
        "secondary-1": "primary",
        "secondary-2": "secondary",
    }
    assert sites["primary"].primary_url == "http://127.0.0.1:8180"
    assert sites["secondary-2"].primary_url == "http://127.0.0.1:8180"
    assert sites["secondary-1"].primary_url == ""
    assert sites["primary"].internal_api_env()["GEOGIT_SITE_ROLE"] == "secondary"
    assert sites["primary"].ports.http == 8080  # ports stay with the name, not the role
