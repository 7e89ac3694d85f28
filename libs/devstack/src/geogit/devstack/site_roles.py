"""Each site's role as the sites themselves report it (`GET /api/v4/geo/site_state`).

A site's database holds its real role; `GEOGIT_SITE_ROLE` is only the value a new database
starts from, and a promotion changes roles without restarting anything. So the dev stack asks
the sites and records what they say: in `stack.json`, and in `roles.json`, which outlives
`down` (that removes `stack.json`) so the next `up` starts the site that is primary now first
(the admin and the site registrations are written there) and hands the others its URL. `down
--purge` removes it with the databases.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import cast

from geogit.common.geo_coordination import SiteStateOut
from geogit.devstack.api import AdminApi, ApiError
from geogit.devstack.site import Role
from geogit.devstack.stack import Stack, StackSite

_STATE_TIMEOUT_SECONDS = 10.0


class RolesError(RuntimeError):
    """The recorded roles name no primary among the sites to start."""


Answers = Mapping[str, SiteStateOut | ApiError]
"""Per site name, what its site_state said, or why it did not answer."""


def site_states(stack: Stack) -> dict[str, SiteStateOut | ApiError]:
    """Ask every site of the stack; one that does not answer is reported, not raised."""
    return {site.name: _state(site, stack.admin.token) for site in stack.sites}


def _state(site: StackSite, token: str) -> SiteStateOut | ApiError:
    try:
        with AdminApi(site.http_url, token, timeout=_STATE_TIMEOUT_SECONDS) as api:
            return api.site_state()
    except ApiError as exc:
        return exc


def reported_roles(stack: Stack, answers: Answers) -> dict[str, Role]:
    """Each site's role: as it answered, else as recorded.

    A fenced site counts as a secondary: it refuses writes and follows the newer primary
    (DESIGN §10). When a site answers that it is primary, every other site is a secondary,
    the silent ones too: an old primary that is down is fenced the moment it returns. Of two
    that both claim it, the one at the higher epoch is primary.
    """
    claims = [
        (answer.epoch, name)
        for name, answer in answers.items()
        if isinstance(answer, SiteStateOut) and answer.role == "primary" and not answer.fenced
    ]
    if claims:
        _, primary = max(claims)
        return {
            site.name: "primary" if site.name == primary else "secondary" for site in stack.sites
        }
    return {site.name: _answered_role(site, answers.get(site.name)) for site in stack.sites}


def _answered_role(site: StackSite, answer: SiteStateOut | ApiError | None) -> Role:
    if isinstance(answer, SiteStateOut):
        return "secondary" if answer.fenced else answer.role
    return cast(Role, site.role)


def refresh_roles(stack: Stack, say: Callable[[str], None]) -> Stack:
    """The stack with the roles the sites report now; says which changed and who was silent."""
    answers = site_states(stack)
    roles = reported_roles(stack, answers)
    for site in stack.sites:
        answer = answers[site.name]
        if isinstance(answer, ApiError):
            say(f"{site.name}: no site state ({answer}); recorded as {roles[site.name]}")
        elif roles[site.name] != site.role:
            say(f"{site.name}: now {roles[site.name]} (was {site.role})")
    return with_roles(stack, roles)


def with_roles(stack: Stack, roles: Mapping[str, Role]) -> Stack:
    sites = [site.model_copy(update={"role": roles[site.name]}) for site in stack.sites]
    return stack.model_copy(update={"sites": sites})


def save_roles(path: Path, stack: Stack) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    roles = {site.name: site.role for site in stack.sites}
    temporary.write_text(json.dumps(roles, indent=2) + "\n")
    temporary.replace(path)


def load_roles(path: Path) -> dict[str, Role]:
    """The roles last recorded; empty before the first `up` (the bootstrap roles apply)."""
    if not path.exists():
        return {}
    recorded: dict[str, str] = json.loads(path.read_text())
    return {
        name: cast(Role, role)
        for name, role in recorded.items()
        if role in ("primary", "secondary")
    }


def starting_roles(names: list[str], recorded: Mapping[str, Role]) -> dict[str, Role]:
    """The roles `up` starts `names` in: as last recorded, else the bootstrap roles (the first
    name is the primary). Exactly one of them must be primary."""
    bootstrap: dict[str, Role] = {
        name: "primary" if index == 0 else "secondary" for index, name in enumerate(names)
    }
    roles = bootstrap | {name: role for name, role in recorded.items() if name in bootstrap}
    primaries = [name for name, role in roles.items() if role == "primary"]
    if len(primaries) != 1:
        elsewhere = [name for name, role in recorded.items() if role == "primary"]
        raise RolesError(
            f"the sites last reported {', '.join(elsewhere) or 'no site'} as primary, and `up`"
            f" would start {', '.join(names)}; start the primary too (a larger --secondaries),"
            " or start afresh with `geogit dev down --purge`"
        )
    return roles
