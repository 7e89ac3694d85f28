"""SSH gateway settings, from GEOGIT_* environment variables (secrets also from *_FILE)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from geogit.common.net import split_address
from geogit.common.ops_http import OpsListenerSettings


class SshGatewaySettings(OpsListenerSettings):
    # Where git clients connect ("host:port"; port 0 picks a free one).
    ssh_address: str = "127.0.0.1:2222"
    # /metrics, /-/liveness, /-/readiness.
    ops_address: str = "127.0.0.1:9122"
    # ed25519 and RSA host keys, the same directory (or mounted Secret) for every replica.
    host_keys_dir: Path = Path("ssh-host-keys")
    # Generate a missing host key there (once; every later start and replica reads it). Unset:
    # only in development; elsewhere a missing key stops the start-up, since a replica with a
    # key of its own would break every client's known_hosts.
    host_keys_generate: bool | None = None
    internal_api_url: str = "http://127.0.0.1:8081"
    # Signs the Geogit-Api-Request JWT on every internal API call (DESIGN §3.4).
    internal_api_secret: str = ""

    max_sessions: Annotated[int, Field(ge=1)] = 1000
    max_sessions_per_user: Annotated[int, Field(ge=1)] = 100
    # Time a connection gets to authenticate.
    login_grace_seconds: Annotated[float, Field(gt=0)] = 60.0
    # A session whose client neither sends nor reads for this long is ended (and its RPC).
    idle_timeout_seconds: Annotated[float, Field(gt=0)] = 300.0
    # After SIGTERM, running Git sessions get this long to finish.
    shutdown_grace_seconds: Annotated[float, Field(ge=0)] = 30.0
    # Longer than the internal API's own wait for a pooled database connection (30 s): under a
    # burst a call queues there, and the API answers 503 itself if it cannot serve.
    internal_api_timeout_seconds: Annotated[float, Field(gt=0)] = 60.0

    @property
    def may_generate_host_keys(self) -> bool:
        if self.host_keys_generate is None:
            return self.environment == "development"
        return self.host_keys_generate

    @property
    def ssh_host_and_port(self) -> tuple[str, int]:
        return split_address(self.ssh_address)

    @property
    def ops_host_and_port(self) -> tuple[str, int]:
        return split_address(self.ops_address)
