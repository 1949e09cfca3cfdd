"""Errors raised by the embedded local stack."""

from __future__ import annotations


class StackError(Exception):
    """Base class of every embedded-stack failure; its message is meant for humans."""


class PortInUseError(StackError):
    """A component's TCP port is already taken by another process."""

    def __init__(self, component: str, host: str, port: int) -> None:
        super().__init__(f"port {port} on {host} is already in use (needed by {component})")
        self.component = component
        self.host = host
        self.port = port


class StartupError(StackError):
    """A component did not become ready before its deadline, or exited while starting."""
