"""Small networking helpers shared by tests and the dev stack."""

import random
import socket

# Below Linux's ephemeral range (32768-60999), where every outgoing connection takes its local
# port: a port the OS picks with bind(0) comes from that range, and any connection made before
# the child binds it (a busy test machine makes thousands) can take it.
_QUIET_PORTS = range(20000, 32768)
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on `host` now, for a child server that needs one before binding.

    Another process can still take it before the child binds; callers turn that into a clear
    startup error rather than retrying silently. Never the same port twice in one process.
    """
    for _ in range(200):
        port = random.choice(_QUIET_PORTS)
        if port not in _handed_out and _bindable(host, port):
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        chosen: int = sock.getsockname()[1]
    _handed_out.add(chosen)
    return chosen


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def split_address(address: str, default_host: str = "0.0.0.0") -> tuple[str, int]:
    """`host:port` (`[::]:8080` for IPv6) as a host and a port; an empty host binds all."""
    host, _, port = address.rpartition(":")
    return host.strip("[]") or default_host, int(port)
