"""A stand-in for the internal API in storage's own tests (a neighbour's test double).

It speaks the real wire models from geogit.common.internal_api, verifies the internal JWT as
the real service must, and applies a policy each test sets: refuse pushes touching some refs,
and messages to print after a push.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse

from geogit.common.internal_api import (
    AllowedRequest,
    AllowedResponse,
    PostReceiveMessage,
    PostReceiveRequest,
    PostReceiveResponse,
    PreReceiveRequest,
    PreReceiveResponse,
)
from geogit.common.net import free_port
from geogit.common.tokens import INTERNAL_API_AUDIENCE, TokenError, verify_token


@dataclass
class Policy:
    refused_refs: set[str] = field(default_factory=set)
    refusal_message: str = "You are not allowed to push code to this project."
    post_receive_messages: list[PostReceiveMessage] = field(default_factory=list)
    allowed_calls: list[AllowedRequest] = field(default_factory=list)
    post_receive_calls: list[PostReceiveRequest] = field(default_factory=list)
    auth_failures: int = 0


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
            return AllowedResponse(status=True, gl_repository=body.gl_repository)

        @app.post("/api/v4/internal/pre_receive")
        def pre_receive(
            body: PreReceiveRequest, geogit_api_request: str | None = Header(None)
        ) -> PreReceiveResponse:
            self._check(geogit_api_request)
            return PreReceiveResponse(reference_counter_increased=True)

        @app.post("/api/v4/internal/post_receive")
        def post_receive(
            body: PostReceiveRequest, geogit_api_request: str | None = Header(None)
        ) -> PostReceiveResponse:
            self._check(geogit_api_request)
            self.policy.post_receive_calls.append(body)
            return PostReceiveResponse(messages=self.policy.post_receive_messages)

        return app

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
