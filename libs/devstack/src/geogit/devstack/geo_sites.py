"""Registering the stack's sites on the primary (`/api/v4/geo/sites`), once each.

Every site, the primary included, is registered with the public key of the private key its
services sign Geo tokens with, so any site can verify them. Registering again is a no-op, so
`up` after `down` keeps the same sites; a site registered with another key (say, before site
keys existed) gets its current one.
"""

from __future__ import annotations

from geogit.devstack.api import AdminApi
from geogit.devstack.site import Site


def register_sites(primary: Site, admin_token: str, secondaries: list[Site]) -> None:
    with AdminApi(primary.http_url, admin_token) as api:
        known = {site["name"]: site for site in api.sites()}
        for site in [primary, *secondaries]:
            public_key = site.secrets.geo_public_key
            registered = known.get(site.name)
            if registered is None:
                api.add_site(
                    site.name, site.http_url, primary=site is primary, public_key=public_key
                )
            elif registered.get("public_key") != public_key:
                api.update_site(registered["id"], public_key=public_key)
