"""The dev stack's administrator (`root`) and its `api`-scoped token.

`bootstrap-admin` runs once per database; the token is kept in secrets.json and reused by the
next `up` as long as the API still accepts it, so a restart neither piles up tokens nor
depends on the CLI tolerating an existing admin.
"""

from __future__ import annotations

from geogit.devstack.api import AdminApi, ApiError
from geogit.devstack.credentials import CredentialStore, UserCredentials
from geogit.devstack.site import Site

ADMIN_USERNAME = "root"
ADMIN_EMAIL = "root@example.com"
_ROLE = "admin"


def token_is_accepted(base_url: str, credentials: UserCredentials) -> bool:
    """Whether the API still knows this token as this user."""
    try:
        with AdminApi(base_url, credentials.token) as api:
            return api.current_user().get("username") == credentials.username
    except ApiError:
        return False


def ensure_admin(site: Site, store: CredentialStore) -> UserCredentials:
    """The saved admin if its token still works on `site`, else a freshly bootstrapped one."""
    saved = store.user(_ROLE)
    if saved is not None and token_is_accepted(site.http_url, saved):
        return saved
    admin = site.bootstrap_admin(ADMIN_USERNAME, ADMIN_EMAIL, store.password(ADMIN_USERNAME))
    store.save_user(_ROLE, admin)
    return admin
