"""The sites' authority as a benchmark watches and drives it (DESIGN §10): what each site says
it is (`GET /api/v4/geo/site_state`), a watcher that timestamps a role change, and a
promotion through the candidate's front door, as `geogit geo promote` does it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack

from geogit.common.geo_coordination import PromotionMode, PromotionOut, SiteStateOut
from geogit.devstack.api import AdminApi, ApiError
from geogit.devstack.site import Site

STATE_POLL_S = 0.02  # how often the watcher asks the candidate what it is


def admin(site: Site, token: str, timeout: float = 30.0) -> AdminApi:
    return AdminApi(site.http_url, token, timeout=timeout)


def state(api: AdminApi) -> SiteStateOut | None:
    """The site's own answer, or None while it does not give one (switching, or down)."""
    try:
        return api.site_state()
    except ApiError:
        return None


def follows(seen: SiteStateOut, primary: str) -> bool:
    """The site is `primary` and says so, or it is a secondary of `primary`."""
    if seen.site == primary:
        return seen.role == "primary"
    return seen.role == "secondary" and seen.primary_site == primary


def agree_on(states: Sequence[SiteStateOut | None], primary: str) -> bool:
    """Every site answers, each one follows `primary`, all at one epoch."""
    known = [s for s in states if s is not None]
    return (
        len(known) == len(states)
        and all(follows(s, primary) for s in known)
        and len({s.epoch for s in known}) == 1
    )


class RoleWatch:
    """Polls the candidate's site_state every STATE_POLL_S in a thread and timestamps the
    moment it says it is primary (pushes that start later count towards the failover time);
    from then on it polls every site until all of them agree on the new primary."""

    def __init__(self, candidate: Site, sites: Sequence[Site], token: str) -> None:
        self.candidate = candidate
        self.sites = sites
        self.token = token
        self.became_primary: float | None = None
        self.agreed: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="role-watch", daemon=True)

    def __enter__(self) -> RoleWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def wait_agreed(self, timeout: float) -> None:
        """Until every site agrees or `timeout` passes: sites that never agree are a finding
        to report (`agreed` stays None), not a reason to stop the run."""
        self._thread.join(timeout)

    def _run(self) -> None:
        with ExitStack() as stack:
            apis = [stack.enter_context(admin(s, self.token, timeout=5)) for s in self.sites]
            mine = apis[self.sites.index(self.candidate)]
            while self.agreed is None and not self._stop.is_set():
                if self.became_primary is None:
                    seen = state(mine)
                    if seen is not None and seen.role == "primary":
                        self.became_primary = time.monotonic()
                elif agree_on([state(api) for api in apis], self.candidate.name):
                    self.agreed = time.monotonic()
                self._stop.wait(STATE_POLL_S)


def promote(site: Site, token: str, mode: PromotionMode) -> PromotionOut:
    """POST promote on the candidate itself; a refusal stops the benchmark with its message."""
    with admin(site, token) as api:
        site_id = api.site_state().site_id
        try:
            return api.promote(site_id, mode)
        except ApiError as exc:
            raise RuntimeError(f"promotion of {site.name} ({mode}) failed: {exc}") from exc
