"""A throwaway PostgreSQL cluster for the dev stack, run with the machine's initdb and pg_ctl.

The cluster lives in `<run>/postgres/data`, listens on 127.0.0.1 only (no Unix socket, so no
shared socket directory and no path-length limits), trusts local connections and has the
superuser `postgres`. initdb and the server refuse to run as root, so as root they run as an
unprivileged user: Debian's `postgres` when the server package created it, else a dedicated
`geogit-dev` system user created here. pg_ctl daemonizes the server and keeps its pid in the
data directory, so `pg_ctl stop -D <that directory>` stops exactly this cluster from any shell.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from geogit.devstack.ports import LOOPBACK, POSTGRES_PORT

SUPERUSER = "postgres"
DEDICATED_USER = "geogit-dev"
_PG_ROOT = Path("/usr/lib/postgresql")


class PostgresError(RuntimeError):
    """The cluster could not be created, started or stopped; the message quotes the tool."""


def find_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin with initdb, else initdb on PATH."""
    versions = []
    if _PG_ROOT.is_dir():
        for candidate in _PG_ROOT.iterdir():
            if re.fullmatch(r"\d+(\.\d+)?", candidate.name) and (candidate / "bin/initdb").exists():
                versions.append((float(candidate.name), candidate / "bin"))
    if versions:
        return max(versions)[1]
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).parent
    raise PostgresError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install the `postgresql`"
        " package (`make install` does) or set GEOGIT_DATABASE_URL to an existing server"
    )


@dataclass(frozen=True)
class RunAs:
    """The account initdb and the server run as."""

    user: str
    uid: int
    gid: int

    @classmethod
    def named(cls, user: str) -> RunAs:
        entry = pwd.getpwnam(user)
        return cls(user, entry.pw_uid, entry.pw_gid)

    @property
    def is_current(self) -> bool:
        return self.uid == os.geteuid()

    def can_search(self, directory: Path) -> bool:
        """Whether this account may traverse `directory` (the x bit that applies to it)."""
        info = directory.stat()
        if self.uid == 0:
            return True
        if info.st_uid == self.uid:
            return bool(info.st_mode & stat.S_IXUSR)
        if info.st_gid in os.getgrouplist(self.user, self.gid):
            return bool(info.st_mode & stat.S_IXGRP)
        return bool(info.st_mode & stat.S_IXOTH)


def server_account() -> RunAs:
    """Who runs the cluster: ourselves unless root; as root, `postgres` or `geogit-dev`."""
    if os.geteuid() != 0:
        return RunAs(pwd.getpwuid(os.geteuid()).pw_name, os.geteuid(), os.getegid())
    for user in (SUPERUSER, DEDICATED_USER):
        try:
            return RunAs.named(user)
        except KeyError:
            continue
    _create_dedicated_user()
    return RunAs.named(DEDICATED_USER)


def _create_dedicated_user() -> None:
    nologin = shutil.which("nologin") or "/usr/sbin/nologin"
    command = [
        "useradd", "--system", "--user-group", "--no-create-home",
        "--home-dir", "/nonexistent", "--shell", nologin, DEDICATED_USER,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PostgresError(f"creating user {DEDICATED_USER}: {result.stderr.strip()}")


class ThrowawayPostgres:
    """One local cluster: `start()` creates it on first use, `stop()` keeps its data."""

    def __init__(
        self,
        root: Path,
        port: int = POSTGRES_PORT,
        bin_dir: Path | None = None,
        account: RunAs | None = None,
    ) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.log_path = root / "postgres.log"
        self.port = port
        self._bin_dir = bin_dir
        self._account = account

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_bin_dir()
        return self._bin_dir

    @property
    def account(self) -> RunAs:
        if self._account is None:
            self._account = server_account()
        return self._account

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@{LOOPBACK}:{self.port}/{database}"

    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def start(self, timeout: float = 60.0) -> None:
        """Create the cluster if needed and start it; a cluster already running is kept."""
        if not self.initialised:
            self._initdb()
        if self.running():
            return
        options = f"-p {self.port} -c listen_addresses={LOOPBACK} -c unix_socket_directories="
        self._run(
            "pg_ctl", "start", "--wait", f"--timeout={int(timeout)}",
            "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options,
            what="starting PostgreSQL", timeout=timeout + 10,
        )  # fmt: skip

    def stop(self, timeout: float = 60.0, immediate: bool = False) -> bool:
        """Fast shutdown (rolls back open transactions); `immediate` aborts the server as a
        crash would (crash recovery at the next start). Returns whether it was running."""
        if not self.running():
            return False
        mode = "immediate" if immediate else "fast"
        self._run(
            "pg_ctl", "stop", "--wait", f"--timeout={int(timeout)}", "-m", mode,
            "-D", str(self.data_dir), what="stopping PostgreSQL", timeout=timeout + 10,
        )  # fmt: skip
        return True

    def running(self) -> bool:
        if not self.initialised:
            return False
        result = self._run("pg_ctl", "status", "-D", str(self.data_dir), check=False)
        return result.returncode == 0

    def _initdb(self) -> None:
        account = self.account
        self.root.mkdir(parents=True, exist_ok=True)
        self._check_reachable(account)
        if not account.is_current:
            os.chown(self.root, account.uid, account.gid)
        self.root.chmod(0o700)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync", what="creating the cluster (initdb)",
        )  # fmt: skip

    def _check_reachable(self, account: RunAs) -> None:
        """Fail with a fix to apply, not initdb's "permission denied" on some parent."""
        for directory in reversed(self.root.resolve().parents):
            if not account.can_search(directory):
                raise PostgresError(
                    f"PostgreSQL runs as {account.user}, which cannot enter {directory};"
                    f" allow it (chmod o+x {directory}) or set GEOGIT_DATABASE_URL"
                )

    def _run(
        self, tool: str, *args: str, what: str = "", check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        account = self.account
        switch = not account.is_current
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        try:
            result = subprocess.run(
                [str(self.bin_dir / tool), *args],
                cwd=self.root,  # somewhere the account may enter; root's cwd may be private
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                user=account.uid if switch else None,
                group=account.gid if switch else None,
                extra_groups=[] if switch else None,  # drop root's supplementary groups
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresError(f"{what or tool}: {exc}") from exc
        if check and result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise PostgresError(
                f"{what or tool} failed (status {result.returncode}):\n{output}\n"
                f"server log: {self.log_path}"
            )
        return result
