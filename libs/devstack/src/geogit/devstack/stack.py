"""`.run/stack.json`: how scripts and tests find a running dev stack (DESIGN §6).

The keys DESIGN §6 names are the contract (`sites[].name/role/http_url/ssh_host/ssh_port/
internal_api_url`, `admin.username/token`, `kafka_bootstrap`); the rest are additions that
callers may rely on but DESIGN does not promise. Typed models, so the writer here and the
readers in the end-to-end tests share one definition.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from geogit.devstack.credentials import UserCredentials
from geogit.devstack.site import Site


class StackSite(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    role: str
    http_url: str
    ssh_host: str
    ssh_port: int
    internal_api_url: str
    # Additions beyond DESIGN §6:
    storage_address: str = ""
    storage_ops_url: str = ""
    database_url: str = ""
    # Every port the site listens on, so `geogit dev start` reuses exactly these.
    ports: dict[str, int] | None = None
    # With replicas behind HAProxy (`up --replicas R`): each replica's own ports; the URLs
    # above are the balancer's.
    replica_ports: list[dict[str, int]] | None = None

    @classmethod
    def of(cls, site: Site) -> StackSite:
        return cls(
            name=site.name,
            role=site.role,
            http_url=site.http_url,
            ssh_host=site.host,
            ssh_port=site.ports.ssh,
            internal_api_url=site.internal_api_url,
            storage_address=site.storage_address,
            storage_ops_url=site.storage_ops_url,
            database_url=site.database_url,
            ports=dataclasses.asdict(site.ports),
            replica_ports=[dataclasses.asdict(ports) for ports in site.replica_ports] or None,
        )


class StackUser(BaseModel):
    model_config = ConfigDict(extra="allow")

    username: str
    token: str


class StackDemo(StackUser):
    """The demo user's project, when `geogit dev demo` (or `up --demo`) created it."""

    project: str
    clone_url: str
    # With GIT_SSH_COMMAND naming the demo's key: Git over SSH to the primary.
    ssh_clone: str = ""


class Stack(BaseModel):
    model_config = ConfigDict(extra="allow")

    sites: list[StackSite]
    admin: StackUser
    kafka_bootstrap: str
    demo: StackDemo | None = None

    @classmethod
    def of(cls, sites: list[Site], admin: UserCredentials, kafka_bootstrap: str) -> Stack:
        return cls(
            sites=[StackSite.of(site) for site in sites],
            admin=StackUser(username=admin.username, token=admin.token),
            kafka_bootstrap=kafka_bootstrap,
        )

    def site(self, name: str) -> StackSite:
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(f"no site {name!r} in the stack")

    def primary(self) -> StackSite:
        """The site recorded as primary: after a promotion not the one named `primary`."""
        for site in self.sites:
            if site.role == "primary":
                return site
        raise KeyError("no site of the stack is recorded as primary")


def write_stack(path: Path, stack: Stack) -> None:
    """Write atomically and private (it holds tokens): readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(stack.model_dump_json(indent=2, exclude_none=True) + "\n")
    temporary.replace(path)


def read_stack(path: Path) -> Stack:
    return Stack.model_validate_json(path.read_text())
