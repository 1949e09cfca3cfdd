"""Helpers shared by the test suites: waiting on conditions, reading and writing topics."""

from .kafka import produce, read_topic
from .waiting import async_wait_for, wait_for

__all__ = ["async_wait_for", "produce", "read_topic", "wait_for"]
