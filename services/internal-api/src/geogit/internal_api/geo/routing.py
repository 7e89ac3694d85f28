"""A secondary's answer to a Git request: serve from its replica, or send it to the primary.

Pushes always go to the primary. A read is served locally only when this site's own tables
say the user may read it *and* the freshness rule holds; anything else — a denial included,
since the read model may be a moment behind a grant — goes to the primary, whose answer the
user then sees unchanged. In `redirect` mode the edge is told to 302 the client to
`/-/from_secondary/<site-id>/...`, GitLab's way; in `transparent` mode it relays in place.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from geogit.common.geo import GEO_TOKEN_HEADER, claimed_scope
from geogit.common.git_commands import HTTP_COMMANDS
from geogit.common.internal_api import (
    Denied,
    GeoProxyData,
    GeoProxyPayload,
    GeoProxyToPrimary,
    GitHttpAuthorizeRequest,
    GitHttpProxy,
    GitHttpRedirect,
    GitHttpServe,
)
from geogit.common.primary_client import PrimaryClient, PrimaryUnavailable
from geogit.internal_api.access.git import Access
from geogit.internal_api.clients.storage import StorageClient
from geogit.internal_api.config import InternalApiSettings
from geogit.internal_api.deps import Services
from geogit.internal_api.geo.freshness import UNKNOWN_SEQ, Verdict, replica_verdict
from geogit.internal_api.geo.site_state import (
    Authority,
    maintenance_message,
    not_primary_message,
)
from geogit.internal_api.lookup import project_by_path
from geogit.internal_api.models import GeoPushFloor, GeoSite, Project
from geogit.internal_api.repositories.location import repository_ref, storage_access

log = logging.getLogger(__name__)

FROM_SECONDARY = "/-/from_secondary"


def serve_answer(access: Access, storage: StorageClient) -> GitHttpServe:
    return GitHttpServe(
        storage=storage_access(access.project, storage),
        repository=repository_ref(access.project),
        gl_id=access.gl_id,
        gl_username=access.gl_username,
        gl_repository=access.project.gl_repository,
    )


async def refresh_min_seq(session: AsyncSession, primary: PrimaryClient, project: Project) -> None:
    """Read-your-writes: after a relayed push, the replica must reach what the push made."""
    try:
        state = await primary.repository_state(project.id)
    except PrimaryUnavailable as exc:
        log.warning("push sequence unknown, proxying reads", extra={"error": str(exc)})
        project.geo_min_seq = UNKNOWN_SEQ
    else:
        floor = project.geo_min_seq if project.geo_min_seq != UNKNOWN_SEQ else 0
        project.geo_min_seq = max(floor, state.seq)
    await session.commit()


async def floor_for_unknown(session: AsyncSession, primary: PrimaryClient, path: str) -> None:
    """A push for a project the read model has not got yet (created a moment ago): keep the
    floor until the project arrives; the read model applies it then."""
    try:
        state = await primary.repository_state(path)
    except PrimaryUnavailable as exc:
        log.warning("push sequence unknown for a new project", extra={"error": str(exc)})
        return
    statement = insert(GeoPushFloor).values(project_id=state.project_id, min_seq=state.seq)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["project_id"],
            set_={"min_seq": func.greatest(GeoPushFloor.min_seq, statement.excluded.min_seq)},
        )
    )
    # The project may have arrived while the primary was asked.
    project = await session.get(Project, state.project_id)
    if project is not None:
        project.geo_min_seq = max(project.geo_min_seq, state.seq)
    await session.commit()


def refuse_writes_while_failing_over(authority: Authority, writes: bool) -> None:
    """A primary in maintenance takes no push; the pusher retries once the new one is up."""
    if writes and authority.in_maintenance:
        raise Denied(503, maintenance_message(authority.maintenance_target))


def refuse_relays_from_other_sites(authority: Authority, body: GitHttpAuthorizeRequest) -> None:
    """A request another site's SSH gateway relayed here believing this site primary (it has
    not followed a promotion yet): relaying it on would lose the user's identity, which only
    its Geo token carried. A relayed HTTP request carries the user's own credentials (or gets
    the challenge for them) and goes on as any other. The relaying site's user retries once it
    follows the new primary."""
    if body.geo_token and claimed_scope(body.geo_token) == "ssh_proxy":
        raise Denied(503, not_primary_message(authority.primary_site, authority.primary_url))


def advertisement(body: GitHttpAuthorizeRequest) -> bool:
    """Whether the request is the ref advertisement (`info/refs`), the one step of smart HTTP
    whose refusal git shows the user; a refused POST only says "RPC failed"."""
    return body.path.split("?", 1)[0].endswith("/info/refs")


async def _verdict(session: AsyncSession, services: Services, project: Project) -> Verdict:
    if project.geo_min_seq == UNKNOWN_SEQ:
        await refresh_min_seq(session, services.primary, project)
    settings = services.settings
    return await replica_verdict(
        session, project, settings.site_name, settings.freshness_max_lag_seconds
    )


async def _site_id(session: AsyncSession, settings: InternalApiSettings) -> int | None:
    return await session.scalar(select(GeoSite.id).where(GeoSite.name == settings.site_name))


async def _elsewhere(
    session: AsyncSession,
    settings: InternalApiSettings,
    body: GitHttpAuthorizeRequest,
    why: str,
    denial: Denied | None = None,
) -> GitHttpProxy | GitHttpRedirect:
    if settings.geo_proxy_mode == "redirect" and body.path.startswith("/"):
        site_id = await _site_id(session, settings)
        if site_id is not None:
            return GitHttpRedirect(location=f"{FROM_SECONDARY}/{site_id}{body.path}")
    if denial is None:
        return GitHttpProxy(reason=why)
    return GitHttpProxy(reason=why, denied_status=denial.status, denied_message=denial.message)


async def git_http_answer(
    session: AsyncSession,
    services: Services,
    body: GitHttpAuthorizeRequest,
    local: Callable[[], Awaitable[GitHttpServe]],
) -> GitHttpServe | GitHttpProxy | GitHttpRedirect:
    if HTTP_COMMANDS[body.service].writes:
        return await _elsewhere(session, services.settings, body, "push")
    try:
        serve = await local()
    except Denied as denial:
        why = f"denied here ({denial.status})"
        return await _elsewhere(session, services.settings, body, why, denial)
    project = await session.get(Project, int(serve.gl_repository.removeprefix("project-")))
    assert project is not None
    verdict = await _verdict(session, services, project)
    if not verdict.fresh:
        return await _elsewhere(session, services.settings, body, verdict.reason)
    return serve


async def ssh_proxy_answer(
    session: AsyncSession,
    services: Services,
    project_path: str,
    action: str,
    gl_id: str,
) -> GeoProxyToPrimary:
    """`/allowed`'s 300: the SSH gateway relays to the primary over smart HTTP, as the user,
    with a token good for this one command on this one project."""
    project = await project_by_path(session, project_path)
    path = project.full_path if project is not None else project_path
    token = services.geo_signer.token(
        "ssh_proxy",
        gl_id=gl_id,
        project=path,
        action=action,
    )
    primary_url = services.authority.current.primary_url
    return GeoProxyToPrimary(
        message="proxying to the primary",
        payload=GeoProxyPayload(
            data=GeoProxyData(
                primary_repo=f"{primary_url.rstrip('/')}/{path}.git",
                request_headers={GEO_TOKEN_HEADER: token},
            )
        ),
    )


async def ssh_read_is_local(session: AsyncSession, services: Services, access: Access) -> bool:
    return (await _verdict(session, services, access.project)).fresh
