"""Offset pagination with the headers GitLab sends (X-Total, X-Page, X-Next-Page, Link...)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import Depends, Query, Request, Response
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")
MAX_PER_PAGE = 100


@dataclass(frozen=True)
class Page:
    page: int
    per_page: int
    request: Request
    response: Response

    async def fetch(self, session: AsyncSession, statement: Select[T]) -> Sequence[T]:
        """Run `statement` (already ordered) for this page and set the headers."""
        total = await session.scalar(select(func.count()).select_from(statement.subquery()))
        rows = await session.scalars(
            statement.offset((self.page - 1) * self.per_page).limit(self.per_page)
        )
        self._set_headers(total or 0)
        return rows.all()

    def _set_headers(self, total: int) -> None:
        pages = max(1, math.ceil(total / self.per_page))
        next_page = self.page + 1 if self.page < pages else None
        prev_page = self.page - 1 if 1 < self.page <= pages + 1 else None
        headers = self.response.headers
        headers["X-Total"] = str(total)
        headers["X-Total-Pages"] = str(pages)
        headers["X-Page"] = str(self.page)
        headers["X-Per-Page"] = str(self.per_page)
        headers["X-Next-Page"] = str(next_page or "")
        headers["X-Prev-Page"] = str(prev_page or "")
        links = {"prev": prev_page, "next": next_page, "first": 1, "last": pages}
        headers["Link"] = ", ".join(
            f'<{self._url(number)}>; rel="{rel}"' for rel, number in links.items() if number
        )

    def _url(self, page: int) -> str:
        params: dict[str, Any] = dict(self.request.query_params)
        params.update(page=page, per_page=self.per_page)
        return f"{self.request.url.replace(query='')}?{urlencode(params)}"


async def page_params(
    request: Request,
    response: Response,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1)] = 20,
) -> Page:
    # GitLab caps per_page at 100 silently rather than refusing larger values.
    return Page(page, min(per_page, MAX_PER_PAGE), request, response)


PageDep = Annotated[Page, Depends(page_params)]
