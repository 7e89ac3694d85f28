"""Wire models of the internal API (DESIGN §3.3, §3.5), shared by its server and its callers.

Shapes follow GitLab's /api/v4/internal endpoints so the flow reads the same.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

GitAction = Literal["git-upload-pack", "git-receive-pack", "git-upload-archive"]
GitProtocolName = Literal["http", "ssh"]
ANY_CHANGES = "_any"


class AllowedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: GitAction
    protocol: GitProtocolName
    # One of: the pusher as gl_id ("user-1"), an SSH key id, or a username.
    gl_id: str = ""
    key_id: int | None = None
    username: str = ""
    # The project: by gl_repository ("project-7") or by full path ("alice/demo").
    gl_repository: str = ""
    project: str = ""
    # "<old> <new> <ref>" lines, or "_any" before the pack is known.
    changes: str = ANY_CHANGES
    relative_path: str = ""
    # Where the pushed objects wait in quarantine, relative to the repository directory.
    git_object_directory: str = ""
    git_alternate_object_directories: list[str] = []
    push_options: list[str] = []


class AllowedResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: bool
    message: str = ""
    gl_repository: str = ""
    gl_project_path: str = ""
    gl_id: str = ""
    gl_username: str = ""


class PreReceiveRequest(BaseModel):
    gl_repository: str


class PreReceiveResponse(BaseModel):
    reference_counter_increased: bool


class PostReceiveRequest(BaseModel):
    gl_repository: str
    identifier: str
    changes: str
    push_options: list[str] = []


class PostReceiveMessage(BaseModel):
    type: Literal["basic", "alert"] = "basic"
    message: str


class PostReceiveResponse(BaseModel):
    reference_counter_decreased: bool = True
    messages: list[PostReceiveMessage] = []
