"""Registering the stack's sites on the primary (`/api/v4/geo/sites`), once each.

A secondary is registered with the Geo secret its services sign with, so the primary can
verify its tokens; registering again is a no-op, so `up` after `down` keeps the same sites.
"""

from __future__ import annotations

from geogit.devstack.api import AdminApi
from geogit.devstack.site import Site


def register_sites(primary: Site, admin_token: str, secondaries: list[Site]) -> None:
    with AdminApi(primary.http_url, admin_token) as api:
        known = {site["name"] for site in api.sites()}
        if primary.name not in known:
            api.add_site(primary.name, primary.http_url, primary=True)
        for site in secondaries:
            if site.name not in known:
                api.add_site(
                    site.name, site.http_url, primary=False, secret=site.secrets.geo_secret
                )
