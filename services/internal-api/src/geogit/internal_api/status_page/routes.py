"""`/-/geo`: the Geo status page, every site's own (the edge relays it to its own internal API,
never to the primary).

- `GET /-/geo` — sites, this site, the lag chart, failed and stale replicas (`?q=`, `?page=`);
- `GET /-/geo/projects/:id` — one project's sequence on the primary and on every site;
- `GET|POST /-/geo/sign_in`, `POST /-/geo/sign_out`;
- `POST /-/geo/sites/:id/backfill`, `POST /-/geo/sites/:id/projects/:pid/resync|reverify` —
  the API's actions (admin/geo_actions.py) from a form, on the primary only: a secondary
  writes nothing of its own, and its page links to the primary's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from geogit.internal_api.admin.geo_actions import request_action
from geogit.internal_api.deps import ServicesDep, SessionDep
from geogit.internal_api.errors import ApiError
from geogit.internal_api.models import utcnow
from geogit.internal_api.status_page import session as page_session
from geogit.internal_api.status_page.chart import colour, lag_chart
from geogit.internal_api.status_page.formatting import age, milliseconds
from geogit.internal_api.status_page.session import COOKIE, COOKIE_PATH, SESSION_SECONDS, Admin
from geogit.internal_api.status_page.views import (
    lag_series,
    problems,
    project_view,
    secondary_ids,
    site_views,
    this_site,
)

router = APIRouter(prefix=COOKIE_PATH, include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals["colour"] = colour
templates.env.filters["ms"] = milliseconds
templates.env.filters["age"] = age


def _page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status)


async def _admin_or_answer(
    request: Request, session: SessionDep, services: ServicesDep
) -> Admin | Response:
    found = await page_session.current_admin(request, session, services.settings)
    if found is None:
        return RedirectResponse(page_session.sign_in_url(request), status_code=303)
    if not isinstance(found, Admin):
        message = "Only administrators may open the Geo status page."
        return _page(request, "error.html", 403, title="403 Forbidden", message=message)
    return found


@router.get("", response_class=HTMLResponse)
async def overview(
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    q: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    admin = await _admin_or_answer(request, session, services)
    if not isinstance(admin, Admin):
        return admin
    sites = await site_views(session, services)
    names = [view.site.name for view in sites if not view.site.primary]
    return _page(
        request,
        "overview.html",
        admin=admin,
        here=await this_site(session, services),
        sites=sites,
        chart=lag_chart(await lag_series(session), names, utcnow()),
        chart_sites=names,
        problems=await problems(session, q.strip(), page),
        site_ids={view.site.name: view.site.id for view in sites if not view.site.primary},
    )


@router.get("/projects/{project_id}", response_class=HTMLResponse)
async def project(
    request: Request, project_id: int, session: SessionDep, services: ServicesDep
) -> Response:
    admin = await _admin_or_answer(request, session, services)
    if not isinstance(admin, Admin):
        return admin
    view = await project_view(session, project_id)
    if view is None:
        message = f"There is no project {project_id} here."
        return _page(request, "error.html", 404, title="404 Not Found", message=message)
    return _page(
        request,
        "project.html",
        admin=admin,
        here=await this_site(session, services),
        view=view,
        site_ids=await secondary_ids(session),
    )


@router.get("/sign_in", response_class=HTMLResponse)
async def sign_in_form(request: Request, return_to: str = COOKIE_PATH) -> Response:
    return _page(request, "sign_in.html", return_to=page_session.safe_return_path(return_to))


@router.post("/sign_in", response_class=HTMLResponse)
async def sign_in(
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    token: Annotated[str, Form(max_length=200)],
    return_to: Annotated[str, Form(max_length=500)] = COOKIE_PATH,
) -> Response:
    target = page_session.safe_return_path(return_to)
    try:
        _, cookie = await page_session.sign_in(session, services.settings, token)
    except page_session.SignInRefused as exc:
        return _page(request, "sign_in.html", 401, return_to=target, error=str(exc))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.headers.get("x-forwarded-proto", request.url.scheme) == "https",
    )
    return response


@router.post("/sign_out")
async def sign_out() -> Response:
    response = RedirectResponse(f"{COOKIE_PATH}/sign_in", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


async def _act(
    request: Request,
    session: SessionDep,
    services: ServicesDep,
    csrf: str,
    site_id: int,
    action: Literal["resync", "reverify", "backfill"],
    project_id: int = 0,
) -> Response:
    admin = await _admin_or_answer(request, session, services)
    if not isinstance(admin, Admin):
        return admin
    if not page_session.csrf_ok(admin, csrf):
        message = "The form has expired or did not come from this page; reload it and try again."
        return _page(request, "error.html", 403, title="403 Forbidden", message=message)
    if services.authority.current.is_secondary:
        message = "This site is a secondary: act from the primary's Geo page."
        return _page(request, "error.html", 409, title="409 Conflict", message=message)
    try:
        await request_action(session, services.outbox, site_id, action, project_id)
    except ApiError as exc:
        return _page(request, "error.html", exc.status, title="Not done", message=str(exc))
    back = f"{COOKIE_PATH}/projects/{project_id}" if project_id else COOKIE_PATH
    return RedirectResponse(f"{back}?requested={action}", status_code=303)


@router.post("/sites/{site_id}/backfill")
async def backfill(
    request: Request,
    site_id: int,
    session: SessionDep,
    services: ServicesDep,
    csrf: Annotated[str, Form(max_length=100)],
) -> Response:
    return await _act(request, session, services, csrf, site_id, "backfill")


@router.post("/sites/{site_id}/projects/{project_id}/{action}")
async def project_action(
    request: Request,
    site_id: int,
    project_id: int,
    action: Literal["resync", "reverify"],
    session: SessionDep,
    services: ServicesDep,
    csrf: Annotated[str, Form(max_length=100)],
) -> Response:
    return await _act(request, session, services, csrf, site_id, action, project_id)
