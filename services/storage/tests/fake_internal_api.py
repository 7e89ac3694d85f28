"""A stand-in for the internal API in storage's and the edge-proxy's tests (a test double).

It speaks the real wire models from geogit.common.internal_api, verifies the internal JWT as
the real service must, and applies a policy each test sets: refuse pushes touching some refs,
messages to print after a push, and how to answer the edge-proxy's Git HTTP authorization.
Under /api/v4/fake/ it has stand-in API routes for the edge-proxy's passthrough tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse

from geogit.common.internal_api import (
    AllowedRequest,
    AllowedResponse,
    GitHttpAuthorizeRequest,
    GitHttpRedirect,
    GitHttpServe,
    PostReceiveMessage,
    PostReceiveRequest,
    PostReceiveResponse,
)
from geogit.common.net import free_port
from geogit.common.tokens import INTERNAL_API_AUDIENCE, TokenError, verify_token

GitHttpAnswer = GitHttpServe | GitHttpRedirect | JSONResponse
CHUNK = 64 * 1024


@dataclass
class Policy:
    refused_refs: set[str] = field(default_factory=set)
    refusal_message: str = "You are not allowed to push code to this project."
    post_receive_messages: list[PostReceiveMessage] = field(default_factory=list)
    allowed_calls: list[AllowedRequest] = field(default_factory=list)
    post_receive_calls: list[PostReceiveRequest] = field(default_factory=list)
    auth_failures: int = 0
    # allowed grants the push but does not count it (count_push): the hook must refuse.
    busy: bool = False
    # How git_http/authorize answers; None answers 404 as for an unknown project.
    git_http: Callable[[GitHttpAuthorizeRequest], GitHttpAnswer] | None = None
    git_http_calls: list[GitHttpAuthorizeRequest] = field(default_factory=list)
    git_http_request_ids: list[str | None] = field(default_factory=list)
    # Passthrough stand-ins: set once the echo route has received its first body bytes; the
    # download route, when gated, pauses after its first MiB until the test releases it.
    upload_started: threading.Event = field(default_factory=threading.Event)
    release_download: threading.Event = field(default_factory=threading.Event)


class FakeInternalApi:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.policy = Policy()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def reset(self) -> None:
        self.policy = Policy()

    def _check(self, token: str | None) -> None:
        try:
            verify_token(token, self.secret, INTERNAL_API_AUDIENCE)
        except TokenError as exc:
            self.policy.auth_failures += 1
            raise HTTPException(401, str(exc)) from exc

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/api/v4/internal/allowed", response_model=None)
        def allowed(
            body: AllowedRequest, geogit_api_request: str | None = Header(None)
        ) -> AllowedResponse | JSONResponse:
            self._check(geogit_api_request)
            self.policy.allowed_calls.append(body)
            refs = {line.split()[2] for line in body.changes.splitlines() if len(line.split()) == 3}
            if refs & self.policy.refused_refs:
                return JSONResponse({"status": False, "message": self.policy.refusal_message}, 403)
            return AllowedResponse(
                status=True,
                gl_repository=body.gl_repository,
                reference_counter_increased=body.count_push and not self.policy.busy,
            )

        @app.post("/api/v4/internal/post_receive")
        def post_receive(
            body: PostReceiveRequest, geogit_api_request: str | None = Header(None)
        ) -> PostReceiveResponse:
            self._check(geogit_api_request)
            self.policy.post_receive_calls.append(body)
            return PostReceiveResponse(messages=self.policy.post_receive_messages)

        @app.post("/api/v4/internal/git_http/authorize", response_model=None)
        def git_http_authorize(
            body: GitHttpAuthorizeRequest,
            geogit_api_request: str | None = Header(None),
            x_request_id: str | None = Header(None),
        ) -> JSONResponse:
            self._check(geogit_api_request)
            self.policy.git_http_calls.append(body)
            self.policy.git_http_request_ids.append(x_request_id)
            if self.policy.git_http is None:
                return JSONResponse({"message": "404 Project Not Found"}, 404)
            answer = self.policy.git_http(body)
            if isinstance(answer, JSONResponse):
                return answer
            return JSONResponse(answer.model_dump())

        @app.get("/-/liveness")
        def liveness() -> dict[str, str]:
            return {"status": "ok"}

        self._add_passthrough_stand_ins(app)
        return app

    def _add_passthrough_stand_ins(self, app: FastAPI) -> None:
        @app.api_route("/api/v4/fake/echo/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
        async def echo(request: Request) -> JSONResponse:
            digest, size = hashlib.sha256(), 0
            async for chunk in request.stream():
                if chunk:
                    self.policy.upload_started.set()
                digest.update(chunk)
                size += len(chunk)
            report: dict[str, Any] = {
                "method": request.method,
                "raw_path": request.scope["raw_path"].decode(),
                "query": request.scope["query_string"].decode(),
                "headers": [[k.decode(), v.decode()] for k, v in request.scope["headers"]],
                "size": size,
                "sha256": digest.hexdigest(),
            }
            response = JSONResponse(report, headers={"X-Upstream": "fake"})
            response.set_cookie("session", "secret-of-one-user")
            return response

        @app.get("/api/v4/fake/download")
        def download(size: int, gate: bool = False) -> StreamingResponse:
            async def chunks() -> AsyncIterator[bytes]:
                sent = 0
                while sent < size:
                    if gate and sent == 1024 * 1024 and not await self._released():
                        return
                    piece = min(CHUNK, size - sent)
                    yield b"x" * piece
                    sent += piece

            return StreamingResponse(chunks(), media_type="application/octet-stream")

    async def _released(self) -> bool:
        return await asyncio.to_thread(self.policy.release_download.wait, 20)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake internal API did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)
