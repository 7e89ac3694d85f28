"""Who may open the Geo status page: an administrator, by token or by a signed-in session.

Tools send their token as for the API (`PRIVATE-TOKEN`, `Authorization: Bearer`). People sign
in at `/-/geo/sign_in` with a personal access token with the `api` scope (geogit keeps no
password on secondaries, tokens work on every site) and get a session cookie: a short-lived JWT
signed with this site's internal secret, naming the token it was made from, so revoking the
token or the user's admin right ends the session at the next request. The cookie is HttpOnly
and SameSite=Strict, and every form carries the session's CSRF value as well.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.tokens import TokenError, issue_token, verify_token
from geogit.internal_api.accounts.credentials import active_token, today
from geogit.internal_api.config import InternalApiSettings
from geogit.internal_api.deps import presented_token
from geogit.internal_api.models import PersonalAccessToken, User

COOKIE = "geogit_geo_session"
COOKIE_PATH = "/-/geo"
AUDIENCE = "geogit-geo-page"
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True)
class Admin:
    user: User
    # Empty for a token caller: it posts no forms.
    csrf: str = ""


class SignInRefused(Exception):
    """The token given at sign-in does not make an administrator; the message says why."""


def _admin(pat: PersonalAccessToken, user: User) -> str | None:
    """Why the token's user may not open the page, or None if they may."""
    if not pat.active_on(today()) or not user.active:
        return "the token is revoked, expired or its user blocked"
    if "api" not in pat.scopes:
        return "the token needs the api scope"
    if not user.is_admin:
        return "only administrators may open the Geo status page"
    return None


async def sign_in(
    session: AsyncSession, settings: InternalApiSettings, token: str
) -> tuple[Admin, str]:
    """The administrator and the cookie's value for a token, or `SignInRefused`."""
    found = await active_token(session, token.strip())
    if found is None:
        raise SignInRefused("that token is not valid here")
    pat, user = found
    if (reason := _admin(pat, user)) is not None:
        raise SignInRefused(reason)
    csrf = secrets.token_urlsafe(24)
    cookie = issue_token(
        settings.internal_api_secret,
        settings.site_name,
        AUDIENCE,
        SESSION_SECONDS,
        sub=str(user.id),
        pat=pat.id,
        csrf=csrf,
    )
    return Admin(user, csrf), cookie


async def _from_cookie(
    request: Request, session: AsyncSession, settings: InternalApiSettings
) -> Admin | None:
    try:
        claims = verify_token(
            request.cookies.get(COOKIE),
            settings.internal_api_secret,
            AUDIENCE,
            max_ttl_seconds=SESSION_SECONDS,
            issuers=[settings.site_name],
        )
    except TokenError:
        return None
    pat = await session.get(PersonalAccessToken, claims.get("pat"))
    user = await session.get(User, pat.user_id) if pat is not None else None
    if pat is None or user is None or str(user.id) != claims.get("sub"):
        return None
    if _admin(pat, user) is not None:
        return None
    return Admin(user, str(claims.get("csrf", "")))


async def current_admin(
    request: Request, session: AsyncSession, settings: InternalApiSettings
) -> Admin | User | None:
    """The administrator; a signed-in `User` who is not one (a 403); None (sign in first)."""
    token = presented_token(request)
    if token is None:
        return await _from_cookie(request, session, settings)
    found = await active_token(session, token)
    if found is None:
        return None
    pat, user = found
    return Admin(user) if _admin(pat, user) is None else user


def csrf_ok(admin: Admin, presented: str) -> bool:
    return bool(admin.csrf) and hmac.compare_digest(admin.csrf, presented)


def sign_in_url(request: Request) -> str:
    return f"{COOKIE_PATH}/sign_in?return_to={quote(request.url.path)}"


def safe_return_path(path: str) -> str:
    """Only a path of this page: never another host (`//evil`), so no open redirect."""
    inside = path == COOKIE_PATH or path.startswith(COOKIE_PATH + "/")
    if inside and "\\" not in path and "//" not in path:
        return path
    return COOKIE_PATH
