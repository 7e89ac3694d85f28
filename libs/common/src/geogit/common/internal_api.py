"""Wire models of the internal API (DESIGN §3.3, §3.5), shared by its server and its callers.

Shapes follow GitLab's /api/v4/internal endpoints so the flow reads the same.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class GitHttpAuthorizeRequest(BaseModel):
    """What the edge-proxy asks before streaming a smart-HTTP request (DESIGN §3.1)."""

    model_config = ConfigDict(extra="forbid")

    # "namespace/project", as in the URL, without ".git".
    project: str
    service: Literal["git-upload-pack", "git-receive-pack"]
    # The client's Authorization header, verbatim ("" when anonymous).
    authorization: str = ""
    git_protocol: str = ""


class StorageAccess(BaseModel):
    name: str
    address: str
    # Short-lived storage JWT (audience geogit-storage) minted for this request.
    token: str


class RepositoryRef(BaseModel):
    storage_name: str
    relative_path: str
    gl_repository: str
    gl_project_path: str


class GitHttpServe(BaseModel):
    action: Literal["serve"] = "serve"
    storage: StorageAccess
    repository: RepositoryRef
    gl_id: str = ""
    gl_username: str = ""
    gl_repository: str


class GitHttpRedirect(BaseModel):
    action: Literal["redirect"] = "redirect"
    location: str


GitHttpAuthorizeResponse = Annotated[GitHttpServe | GitHttpRedirect, Field(discriminator="action")]


class AuthorizedKey(BaseModel):
    """GET /api/v4/internal/authorized_keys?key=<base64 blob>: GitLab's shape plus the user."""

    id: int
    key: str
    user_id: int
    username: str


class ErrorMessage(BaseModel):
    """Every 4xx/5xx body, as GitLab shapes it."""

    message: str
