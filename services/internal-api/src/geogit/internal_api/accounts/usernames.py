"""Which usernames may exist: a username is the first segment of every URL of its projects.

A user named `api` would own `/api/...` and be shadowed by `/api/v4`, so names that are (or
may become) top-level routes are reserved: GitLab's `Gitlab::PathRegex::TOP_LEVEL_ROUTES`,
which GitLab users expect to be taken and which holds geogit's own first segments too (`-`
for `/-/readiness` and `/-/from_secondary`, `api`). Compared case-insensitively, as paths are
looked up.
"""

from __future__ import annotations

from geogit.common.paths import InvalidPathError, validate_project_full_path

RESERVED_USERNAMES = frozenset(
    {
        # GitLab's TOP_LEVEL_ROUTES; geogit's own first segments (`-`, `api`) are among them.
        "-",
        ".well-known",
        "404.html",
        "422.html",
        "500.html",
        "502.html",
        "503.html",
        "abuse_reports",
        "admin",
        "api",
        "apple-touch-icon-precomposed.png",
        "apple-touch-icon.png",
        "assets",
        "autocomplete",
        "ci",
        "dashboard",
        "deploy.html",
        "explore",
        "favicon.ico",
        "files",
        "groups",
        "health_check",
        "help",
        "import",
        "invites",
        "jwt",
        "oauth",
        "profile",
        "projects",
        "public",
        "robots.txt",
        "s",
        "search",
        "sent_notifications",
        "slash-command-logo.png",
        "snippets",
        "u",
        "unsubscribes",
        "uploads",
        "users",
    }
)


def check_username(username: str) -> None:
    """Raise ValueError saying why `username` cannot be a user's name."""
    if username.lower() in RESERVED_USERNAMES:
        raise ValueError(f"'{username}' is reserved: it is a route of this site")
    try:
        validate_project_full_path(f"{username}/x")  # a username is a namespace path segment
    except InvalidPathError as exc:
        raise ValueError(str(exc)) from exc
