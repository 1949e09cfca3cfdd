"""TCP port helpers: find a free port, tell whether one is taken."""

from __future__ import annotations

import socket


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A port the kernel considers free on ``host`` right now.

    There is an unavoidable race between returning the port and a server binding it;
    tests tolerate it because the kernel hands out ephemeral ports round-robin.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if binding ``host:port`` fails, i.e. something already listens there.

    ``SO_REUSEADDR`` makes sockets in TIME_WAIT (left by a server that was just stopped)
    count as free, as they do for the servers themselves.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False
