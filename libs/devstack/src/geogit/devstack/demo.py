"""Demo data: user `alice`, her token, project `alice/demo` with a few commits pushed over HTTP.

Everything goes through the public front door the way a user would: the admin API for the
account, the project and the token, then the real `git` client pushing to the edge proxy with
Basic auth. Re-running is harmless: what exists is reused, and commits are pushed only to an
empty repository.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from geogit.devstack.api import AdminApi, ApiError
from geogit.devstack.credentials import CredentialStore, UserCredentials

DEMO_USERNAME = "alice"
DEMO_PROJECT = "demo"
DEMO_SCOPES = ["read_repository", "write_repository"]
_ROLE = "demo"
_GIT_TIMEOUT = 120.0

_FILES = [
    ("README.md", "# demo\n\nPushed by `geogit dev demo` through the edge proxy.\n", "Add README"),
    ("hello.py", 'print("hello from geogit")\n', "Add hello.py"),
    ("docs/usage.md", "Run `python hello.py`.\n", "Document usage"),
]


class DemoError(RuntimeError):
    """The demo data could not be created; the message quotes the API or git."""


@dataclass(frozen=True)
class Demo:
    username: str
    token: str
    project: str
    clone_url: str
    """With the credentials in it, ready to paste."""


def url_with_credentials(http_url: str, path: str, username: str, token: str) -> str:
    parts = urlsplit(http_url)
    return urlunsplit(parts._replace(netloc=f"{username}:{token}@{parts.netloc}", path=path))


def git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real git client, never prompting and ignoring credential helpers."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    command = ["git", "-c", "credential.helper=", *args]
    try:
        return subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=_GIT_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        raise DemoError(f"git {args[0]} took over {_GIT_TIMEOUT:.0f}s") from exc


def ensure_demo(http_url: str, admin: UserCredentials, store: CredentialStore) -> Demo:
    project_path = f"{DEMO_USERNAME}/{DEMO_PROJECT}"
    try:
        with AdminApi(http_url, admin.token) as api:
            user = api.find_user(DEMO_USERNAME) or api.create_user(
                DEMO_USERNAME,
                f"{DEMO_USERNAME}@example.com",
                "Alice Demo",
                store.password(DEMO_USERNAME),
            )
            if api.find_project(project_path) is None:
                _create_project(api, http_url, int(user["id"]))
            token = _repository_token(api, http_url, int(user["id"]), project_path, store)
    except ApiError as exc:
        raise DemoError(f"creating the demo user and project: {exc}") from exc
    clone_url = url_with_credentials(http_url, f"/{project_path}.git", DEMO_USERNAME, token)
    _push_commits_if_empty(clone_url)
    return Demo(DEMO_USERNAME, token, project_path, clone_url)


def _create_project(api: AdminApi, http_url: str, user_id: int) -> None:
    """As admin for alice (GitLab's POST /projects/user/:id), else with an api token of hers."""
    try:
        api.create_project(DEMO_PROJECT, "private", for_user_id=user_id)
        return
    except ApiError as exc:
        if exc.status not in (404, 405):
            raise
    setup_token = api.create_token(user_id, "geogit-dev-demo-setup", ["api"])
    with AdminApi(http_url, setup_token) as as_alice:
        as_alice.create_project(DEMO_PROJECT, "private")


def _repository_token(
    api: AdminApi, http_url: str, user_id: int, project_path: str, store: CredentialStore
) -> str:
    """The saved token if git still accepts it, else a new read/write-repository token."""
    saved = store.user(_ROLE)
    if saved is not None:
        url = url_with_credentials(http_url, f"/{project_path}.git", saved.username, saved.token)
        if git("ls-remote", url).returncode == 0:
            return saved.token
    token = api.create_token(user_id, "geogit-dev-demo", DEMO_SCOPES)
    store.save_user(_ROLE, UserCredentials(DEMO_USERNAME, token))
    return token


def _push_commits_if_empty(clone_url: str) -> None:
    listing = git("ls-remote", clone_url)
    if listing.returncode != 0:
        raise DemoError(f"git ls-remote failed:\n{listing.stderr.strip()}")
    if listing.stdout.strip():
        return  # pushed by an earlier run
    with tempfile.TemporaryDirectory(prefix="geogit-demo-") as directory:
        work = Path(directory)
        _checked(git("init", "-q", "-b", "main", str(work)), "init")
        identity = ["-c", "user.name=Alice Demo", "-c", f"user.email={DEMO_USERNAME}@example.com"]
        for name, content, message in _FILES:
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_text(content)
            _checked(git("add", name, cwd=work), "add")
            _checked(git(*identity, "commit", "-q", "-m", message, cwd=work), "commit")
        _checked(git("push", "-q", clone_url, "main:main", cwd=work), "push")


def _checked(result: subprocess.CompletedProcess[str], what: str) -> None:
    """Fail with git's own words."""
    if result.returncode != 0:
        raise DemoError(f"git {what} failed ({result.returncode}):\n{result.stderr.strip()}")
