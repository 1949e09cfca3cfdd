"""The demo: two models registered, tagged ``datagrok``, served and called once each."""

from .run import run_demo

__all__ = ["run_demo"]
