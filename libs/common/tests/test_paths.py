import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geogit.common.paths import (
    InvalidPathError,
    hashed_repository_path,
    resolve_repository_path,
    validate_project_full_path,
    validate_relative_path,
)


def test_hashed_path_matches_gitlab() -> None:
    # GitLab's documented example for project id 1.
    digest = "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"
    assert hashed_repository_path(1) == f"@hashed/6b/86/{digest}.git"
    validate_relative_path(hashed_repository_path(123456))


@pytest.mark.parametrize("project_id", [0, -1, True])
def test_hashed_path_needs_a_real_id(project_id: int) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        hashed_repository_path(project_id)


@pytest.mark.parametrize(
    ("path", "expected"),
    [("a.git", "a.git"), ("group/project.git/", "group/project.git"), ("@hashed/ab", "@hashed/ab")],
)
def test_valid_relative_paths(path: str, expected: str) -> None:
    assert validate_relative_path(path) == expected


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "must not be empty"),
        ("/etc", "must be relative: '/etc'"),
        ("/", "must be relative"),
        ("a/../b", "must not contain '..': 'a/../b'"),
        ("..", "must not contain '..'"),
        ("a/./b", "must not contain '.'"),
        ("./a", "must not contain '.'"),
        ("a//b", "must not contain empty components"),
        ("a//", "must not contain empty components"),
        ("a\\..\\b", "must not contain backslashes"),
        ("a\x00b", "must not contain control characters"),
        ("a\nb", "must not contain control characters"),
        ("a\x85b", "must not contain control characters"),
        ("a" * 4097, "4097 bytes long"),
        ("é" * 2049, "4098 bytes long"),
        ("a\udcffb", "not valid UTF-8"),
    ],
)
def test_invalid_relative_paths(path: str, message: str) -> None:
    with pytest.raises(InvalidPathError, match=message.replace(".", r"\.")):
        validate_relative_path(path)


def test_resolve_inside_root(tmp_path: Path) -> None:
    (tmp_path / "group").mkdir()
    resolved = resolve_repository_path(tmp_path, "group/p.git")
    assert resolved == tmp_path.resolve() / "group" / "p.git"


def test_symlink_pointing_outside_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "evil").symlink_to(outside)
    with pytest.raises(InvalidPathError, match="escapes the storage root"):
        resolve_repository_path(root, "evil/repo.git")


def test_symlink_to_root_itself_is_refused(tmp_path: Path) -> None:
    (tmp_path / "self").symlink_to(tmp_path)
    with pytest.raises(InvalidPathError, match="escapes the storage root"):
        resolve_repository_path(tmp_path, "self")


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(InvalidPathError, match="cannot be resolved"):
        resolve_repository_path(tmp_path, "a/repo.git")


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("hostile")
    root = base / "root"
    root.mkdir()
    (root / "up").symlink_to("..")
    (root / "abs").symlink_to("/")
    (root / "ok").mkdir()
    return root


components = st.one_of(
    st.sampled_from(["..", ".", "", "up", "abs", "ok", "x.git", "\\", "/"]),
    st.text(max_size=8),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(), st.lists(components, max_size=6).map("/".join)))
def test_resolved_paths_never_leave_root(hostile_root: Path, path: str) -> None:
    try:
        resolved = resolve_repository_path(hostile_root, path)
    except InvalidPathError:
        return
    root = hostile_root.resolve()
    assert resolved.is_relative_to(root)
    assert resolved != root
    assert os.path.realpath(resolved) == str(resolved)


@pytest.mark.parametrize(
    "full_path", ["gitlab-org/gitlab", "a/b", "user_1/my.project", "A/_x", "n/" + "p" * 255]
)
def test_valid_project_paths(full_path: str) -> None:
    assert validate_project_full_path(full_path) == tuple(full_path.split("/"))


@pytest.mark.parametrize(
    ("full_path", "message"),
    [
        ("project", "exactly two segments"),
        ("a/b/c", "exactly two segments"),
        ("/a/b", "exactly two segments"),
        ("a/", "segment '' must be 1-255"),
        ("-a/b", "segment '-a' must be"),
        ("a/.b", "segment '.b' must be"),
        ("a/b c", "segment 'b c' must be"),
        ("a/" + "p" * 256, "must be 1-255"),
        ("a/b..c", "must not contain '..'"),
        ("a/b.git", "must not end in '.git' or '.atom'"),
        ("a.atom/b", "must not end in '.git' or '.atom'"),
        ("a/b\n", "segment 'b\\\\n' must be"),
    ],
)
def test_invalid_project_paths(full_path: str, message: str) -> None:
    with pytest.raises(InvalidPathError, match=message.replace(".", r"\.")):
        validate_project_full_path(full_path)
