"""Push 50 commits: geogit's doors versus the plain-git servers they stand in for.

One run, one repository, five targets that each start at the same tip (issue 12, DESIGN §3.5):

- nginx + fcgiwrap + `git http-backend` (anchor for HTTP) on a bare copy with
  `http.receivepack` on;
- the primary's edge proxy (geogit over HTTP, Basic auth with a personal access token);
- OpenSSH's sshd running `git-receive-pack` (anchor for SSH) on another bare copy;
- the primary's SSH gateway;
- the secondary's edge proxy, which relays the push to the primary.

Every round makes 50 new commits (git fast-import, fixed dates: the same ids every run) on top
of the previous round's tip in a local bare clone, then pushes that tip to `main` of every
target in turn, so each target receives exactly the same pack. One unmeasured round first;
medians of `--repeat` rounds. Targets: edge ≤ 1.5x nginx, gateway ≤ 0.6x sshd, secondary
≤ primary edge + 30 ms.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    CACHE_DIR,
    TINY,
    ForeignCpu,
    Options,
    RepoSpec,
    clean_env,
    conditions,
    ensure_installed,
    generated_repo,
    git,
    host_facts,
    log,
    print_foreign_warning,
    print_table,
    run_area,
)
from bench.edge_clone import NGINX_PACKAGES, nginx_git
from bench.geo import AUTHOR, GeoProject, geo_sites, new_account, new_project
from bench.sites import Project, api_call
from bench.ssh_clone import SSHD_PACKAGES, make_client_key, openssh, ssh_command
from geogit.devstack.api import AdminApi
from geogit.devstack.site import Site

COMMITS = 50
HTTP_TARGET = 1.5  # edge / nginx
SSH_TARGET = 0.6  # gateway / sshd
SECONDARY_TARGET_MS = 30.0  # secondary - primary edge
SIDES = ("nginx", "edge", "sshd", "gateway", "secondary")
PUSH_TIMEOUT_S = 600.0
REPLICA_TIMEOUT_S = 300.0


@dataclass
class Target:
    name: str
    url: str
    env: dict[str, str] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)

    def push(self, work: Path, tip: str) -> float:
        started = time.perf_counter()
        done = subprocess.run(
            ["git", "--git-dir", str(work), "push", "-q", self.url, f"{tip}:refs/heads/main"],
            env=clean_env(**self.env),
            capture_output=True,
            text=True,
            timeout=PUSH_TIMEOUT_S,
            check=False,
        )
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{self.name}: push failed: {done.stderr.strip()[-800:]}")
        return elapsed


def commit_batch(work: Path, parent: str, round_: int) -> str:
    """COMMITS commits on `parent`, each adding one small file; returns the new tip."""
    lines = []
    for i in range(COMMITS):
        stamp = 1_700_000_000 + round_ * 1000 + i
        body = f"push round {round_} commit {i}\n"
        message = f"bench push {round_}.{i}\n"
        lines += [
            "commit refs/heads/bench",
            f"committer bench <bench@example.com> {stamp} +0000",
            f"data {len(message)}",
            message.rstrip("\n"),
        ]
        if i == 0:
            lines.append(f"from {parent}")
        lines += [
            f"M 100644 inline push-bench/r{round_}/c{i}.txt",
            f"data {len(body)}",
            body.rstrip("\n"),
            "",
        ]
    subprocess.run(
        ["git", "--git-dir", str(work), "fast-import", "--quiet", "--force"],
        input="\n".join(lines) + "\n",
        text=True,
        check=True,
        env=clean_env(**AUTHOR),
    )
    return git("--git-dir", str(work), "rev-parse", "refs/heads/bench").strip()


def bare_copy(source: Path, dest: Path, receive: bool = False) -> Path:
    git("clone", "-q", "--bare", "--no-local", str(source), str(dest))
    if receive:
        git("--git-dir", str(dest), "config", "http.receivepack", "true")
    return dest


def seed(project: GeoProject, primary: Site, secondary: Site, owner: Any, base: Path) -> None:
    """The project's main branch at the base repository's tip, pushed through the primary, and
    known to the secondary (its read model has the project, so it can relay pushes)."""
    git("--git-dir", str(base), "push", "-q", project.url(primary, owner), "HEAD:refs/heads/main")
    deadline = time.monotonic() + REPLICA_TIMEOUT_S
    while True:
        done = subprocess.run(
            ["git", "ls-remote", project.url(secondary, owner), "refs/heads/main"],
            env=clean_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0 and "refs/heads/main" in done.stdout:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"secondary never knew {project.full_path}: {done.stderr}")
        time.sleep(0.5)


def run(options: Options) -> dict[str, Any]:
    ensure_installed(NGINX_PACKAGES | SSHD_PACKAGES)
    spec = RepoSpec(source=str(options.repo)) if options.repo else TINY
    return run_area(
        options,
        lambda foreign: _run_stack(spec, options.repeat, foreign),
        _report,
        prebuilt=(spec,),
    )


@contextmanager
def _targets(
    spec: RepoSpec, tmp: Path, foreign: ForeignCpu
) -> Iterator[tuple[list[Target], Path, str]]:
    """Every target seeded at the base tip; yields them, the local bare clone and the tip."""
    source = generated_repo(spec)
    work = bare_copy(source, tmp / "client.git")
    tip = git("--git-dir", str(work), "rev-parse", "HEAD").strip()
    anchors = tmp / "anchors"
    http_anchor = bare_copy(work, anchors / "http.git", receive=True)
    ssh_anchor = bare_copy(work, anchors / "ssh.git")
    with ExitStack() as stack:
        primary, secondary, admin_token, _ = stack.enter_context(geo_sites(tmp))
        api = stack.enter_context(AdminApi(primary.http_url, admin_token))
        owner = new_account(api)
        key = make_client_key(tmp)
        api_call(primary, admin_token, f"/users/{owner.id}/keys", {"title": "k", "key": key.public})
        projects = {name: new_project(api, owner, f"push-{name}") for name in SIDES[1:]}
        log(f"seeding {len(projects)} projects with {spec.key} through the primary")
        for project in projects.values():
            seed(project, primary, secondary, owner, work)
        nginx = stack.enter_context(
            nginx_git(anchors, tmp / "nginx", [Project(spec, "http.git", "", http_anchor)], foreign)
        )
        sshd = stack.enter_context(
            openssh([Project(spec, "ssh.git", "", ssh_anchor)], key, tmp / "sshd")
        )
        gateway_env = {"GIT_SSH_COMMAND": ssh_command(key, primary.ports.ssh)}
        targets = [
            Target("nginx", nginx.urls[spec.key]),
            Target("edge", projects["edge"].url(primary, owner)),
            Target("sshd", sshd.urls[spec.key], dict(sshd.env)),
            Target(
                "gateway", f"git@{primary.host}:{projects['gateway'].full_path}.git", gateway_env
            ),
            Target("secondary", projects["secondary"].url(secondary, owner)),
        ]
        yield targets, work, tip


def _run_stack(spec: RepoSpec, repeat: int, foreign: ForeignCpu) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="push-") as tmp,
        _targets(spec, Path(tmp), foreign) as (targets, work, tip),
    ):
        for round_ in range(repeat + 1):
            tip = commit_batch(work, tip, round_)
            times = [t.push(work, tip) for t in targets]
            if round_ == 0:
                log("warm-up round: " + _line(targets, times))
                continue
            for target, seconds in zip(targets, times, strict=True):
                target.seconds.append(seconds)
            log(f"round {round_}/{repeat}: " + _line(targets, times))
        medians = {t.name: statistics.median(t.seconds) for t in targets}
        return {
            "repository": spec.key,
            "commits": COMMITS,
            **host_facts(repeat),
            "push_s": {t.name: [round(s, 4) for s in t.seconds] for t in targets},
            "median_s": {name: round(s, 4) for name, s in medians.items()},
            "http_ratio": round(medians["edge"] / medians["nginx"], 3),
            "ssh_ratio": round(medians["gateway"] / medians["sshd"], 3),
            "secondary_extra_ms": round((medians["secondary"] - medians["edge"]) * 1000, 1),
        }


def _line(targets: list[Target], times: list[float]) -> str:
    return ", ".join(f"{t.name} {s:.3f} s" for t, s in zip(targets, times, strict=True))


def _report(r: dict[str, Any]) -> None:
    print(f"\npush benchmark: {COMMITS} commits onto {r['repository']}, {r['git_version']}")
    print(f"{conditions(r)}\n")
    medians = r["median_s"]
    print_table(
        ["target", "median s", "runs s"],
        [
            [name, f"{medians[name]:.3f}", " ".join(f"{s:.3f}" for s in r["push_s"][name])]
            for name in SIDES
        ],
    )

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print()
    http, ssh, extra = r["http_ratio"], r["ssh_ratio"], r["secondary_extra_ms"]
    print(
        f"HTTP: edge / nginx = {http:.2f} (target ≤ {HTTP_TARGET}): {verdict(http <= HTTP_TARGET)}"
    )
    print(f"SSH: gateway / sshd = {ssh:.2f} (target ≤ {SSH_TARGET}): {verdict(ssh <= SSH_TARGET)}")
    print(
        f"secondary: primary + {extra:.0f} ms (target ≤ +{SECONDARY_TARGET_MS:.0f} ms): "
        f"{verdict(extra <= SECONDARY_TARGET_MS)}"
    )
    print_foreign_warning(r)
