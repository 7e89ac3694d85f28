"""Demo data: user `alice`, her token, project `alice/demo` with a few commits pushed over HTTP;
with a secondary, the Geo story told with the real git client (`geo_story`).

Everything goes through the public front door the way a user would: the admin API for the
account, the project and the token, then the real `git` client pushing to the edge proxy with
Basic auth. Re-running is harmless: what exists is reused, and commits are pushed only to an
empty repository.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from geogit.devstack.api import AdminApi, ApiError
from geogit.devstack.credentials import CredentialStore, UserCredentials
from geogit.devstack.stack import StackDemo, StackSite

DEMO_USERNAME = "alice"
DEMO_PROJECT = "demo"
DEMO_SCOPES = ["read_repository", "write_repository"]
_ROLE = "demo"
_GIT_TIMEOUT = 120.0
REPLICA_WAIT_SECONDS = 60

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
    ssh_key: Path
    """Alice's private key, registered on her account: Git over SSH works too."""


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


def _ensure_ssh_key(api: AdminApi, user_id: int, key_dir: Path) -> Path:
    key = key_dir / "id_ed25519"
    if not key.exists():
        key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        made = subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "alice@geogit-demo",
                "-f",
                str(key),
            ],
            capture_output=True,
            text=True,
        )
        if made.returncode != 0:
            raise DemoError(f"ssh-keygen failed: {made.stderr.strip()}")
    public = key.with_suffix(".pub").read_text().strip()
    if not any(k["key"].split()[:2] == public.split()[:2] for k in api.user_keys(user_id)):
        api.add_key(user_id, "geogit dev demo", public)
    return key


def ensure_demo(
    http_url: str, admin: UserCredentials, store: CredentialStore, key_dir: Path
) -> Demo:
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
            ssh_key = _ensure_ssh_key(api, int(user["id"]), key_dir)
    except ApiError as exc:
        raise DemoError(f"creating the demo user and project: {exc}") from exc
    clone_url = url_with_credentials(http_url, f"/{project_path}.git", DEMO_USERNAME, token)
    _push_commits_if_empty(clone_url)
    return Demo(DEMO_USERNAME, token, project_path, clone_url, ssh_key)


def ssh_clone_command(key: Path, site: StackSite, project: str) -> str:
    ssh = (
        f"ssh -i {key} -p {site.ssh_port} -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new"
    )
    return f'GIT_SSH_COMMAND="{ssh}" git clone git@{site.ssh_host}:{project}.git'


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


def _checked(
    result: subprocess.CompletedProcess[str], what: str
) -> subprocess.CompletedProcess[str]:
    """Fail with git's own words."""
    if result.returncode != 0:
        raise DemoError(f"git {what} failed ({result.returncode}):\n{result.stderr.strip()}")
    return result


def _served_by(http_url: str, project: str, token: str) -> str:
    response = httpx.get(
        f"{http_url}/{project}.git/info/refs",
        params={"service": "git-upload-pack"},
        auth=(DEMO_USERNAME, token),
        timeout=30,
        trust_env=False,
    )
    return f"{response.headers.get('Geogit-Served-By')}/{response.headers.get('Geogit-Route')}"


def geo_story(
    primary: StackSite, secondary: StackSite, demo: StackDemo, say: Callable[[str], None]
) -> None:
    """The product in four steps: push through the secondary, see it on the primary, see the
    replica catch up, clone from the secondary's own disk."""
    via_secondary = url_with_credentials(
        secondary.http_url, f"/{demo.project}.git", DEMO_USERNAME, demo.token
    )
    via_primary = url_with_credentials(
        primary.http_url, f"/{demo.project}.git", DEMO_USERNAME, demo.token
    )
    with tempfile.TemporaryDirectory(prefix="geogit-demo-") as directory:
        work = Path(directory) / "work"
        _checked(git("clone", "-q", via_secondary, str(work)), "clone")
        stamp = time.strftime("%H:%M:%S")
        (work / "geo.md").write_text(f"Pushed through {secondary.name} at {stamp}.\n")
        identity = ["-c", "user.name=Alice Demo", "-c", f"user.email={DEMO_USERNAME}@example.com"]
        _checked(git("add", "geo.md", cwd=work), "add")
        _checked(
            git(*identity, "commit", "-q", "-m", f"Push via {secondary.name}", cwd=work), "commit"
        )
        pushed = _checked(git("rev-parse", "HEAD", cwd=work), "rev-parse").stdout.strip()
        say(f"\n1. git push to {secondary.name} ({secondary.http_url}): {pushed[:12]}")
        _checked(git("push", "-q", "origin", "main", cwd=work), "push")
        on_primary = _checked(git("ls-remote", via_primary, "refs/heads/main"), "ls-remote")
        say(f"2. the push landed on the primary: main is {on_primary.stdout.split()[0][:12]}")
        started = time.monotonic()
        while _served_by(secondary.http_url, demo.project, demo.token).endswith("/proxy"):
            if time.monotonic() - started > REPLICA_WAIT_SECONDS:
                raise DemoError(f"{secondary.name} did not catch up in {REPLICA_WAIT_SECONDS} s")
            time.sleep(0.1)
        say(f"3. {secondary.name}'s replica caught up in {time.monotonic() - started:.2f} s")
        _checked(git("clone", "-q", via_secondary, str(Path(directory) / "local")), "clone")
        cloned = _checked(git("rev-parse", "HEAD", cwd=Path(directory) / "local"), "rev-parse")
        served = _served_by(secondary.http_url, demo.project, demo.token)
        say(f"4. cloned from {secondary.name}, served by {served}: HEAD {cloned.stdout[:12]}")
    say(f"  git clone {via_secondary}   # the nearby secondary")
    say(f"  {primary.http_url}/-/geo   # the Geo status page (sign in: the admin token)")
