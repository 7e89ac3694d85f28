"""Small networking helpers shared by tests and the dev stack."""

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS just had free on `host`, for a child server that needs one before binding.

    Another process can take it before the child binds; callers turn that into a clear
    startup error rather than retrying silently.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def split_address(address: str, default_host: str = "0.0.0.0") -> tuple[str, int]:
    """`host:port` (`[::]:8080` for IPv6) as a host and a port; an empty host binds all."""
    host, _, port = address.rpartition(":")
    return host.strip("[]") or default_host, int(port)
