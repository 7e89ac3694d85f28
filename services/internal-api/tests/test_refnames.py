"""The one place branch and tag names are judged: git's rules plus the ambiguous names."""

from __future__ import annotations

import re
import subprocess

import pytest

from geogit.internal_api.repositories.refnames import check_branch_name, check_created_ref

OID = "0123456789abcdef0123456789abcdef01234567"
# Names git itself refuses (`git check-ref-format --branch`).
GIT_REFUSES = ["-x", "a..b", "a.lock", "a/.b", "a b", "a@{b", "a/", "/a", "a//b", "a.", "a\x00b"]
# Names git accepts but that make later commands ambiguous.
AMBIGUOUS = ["HEAD", "@", OID, OID.upper(), "ab" * 32]
GOOD = ["main", "feature/x", "release-1.0", "x/HEAD", "v" + OID, "héllo"]


def _git_accepts(name: str) -> bool:
    result = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True)
    return result.returncode == 0


@pytest.mark.parametrize("name", GIT_REFUSES)
def test_names_git_refuses_are_refused(name: str) -> None:
    assert "\x00" in name or not _git_accepts(name)  # no argv can carry a NUL
    with pytest.raises(ValueError):
        check_branch_name(name)


@pytest.mark.parametrize("name", AMBIGUOUS)
def test_ambiguous_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"reserved|object id"):
        check_branch_name(name)


@pytest.mark.parametrize("name", GOOD)
def test_good_names_pass(name: str) -> None:
    assert _git_accepts(name)
    assert check_branch_name(name) == name
    check_created_ref(f"refs/heads/{name}")


def test_full_ref_names_are_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match=re.escape("give 'main', not 'refs/heads/main'")):
        check_branch_name("refs/heads/main")
    assert check_branch_name("release/*", wildcard=True) == "release/*"


@pytest.mark.parametrize("name", ["HEAD", "-x", "@", OID])
@pytest.mark.parametrize("prefix", ["refs/heads/", "refs/tags/"])
def test_creating_such_branches_and_tags_is_refused(prefix: str, name: str) -> None:
    with pytest.raises(ValueError, match=f"^refusing to create {prefix}"):
        check_created_ref(prefix + name)


def test_other_refs_are_not_judged_here() -> None:
    check_created_ref("refs/notes/HEAD")
