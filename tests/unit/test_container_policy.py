"""Pure eviction decisions and apt-source parsing (no Docker)."""

from __future__ import annotations

from modelbus_worker.images.sources import mirror_from_sources
from modelbus_worker.pool.policy import SlotView, idle_victims, lru_victims, retry_allowed


def test_idle_victims_skip_busy_and_recent() -> None:
    slots = [SlotView("old", 0.0), SlotView("busy", 0.0, in_flight=1), SlotView("new", 95.0)]
    assert idle_victims(slots, now=100.0, idle_timeout_s=10.0) == ["old"]
    assert idle_victims(slots, now=105.0, idle_timeout_s=10.0) == ["old", "new"]


def test_lru_victims_pick_oldest_idle_to_fit_capacity() -> None:
    slots = [SlotView("a", 3.0), SlotView("b", 1.0), SlotView("c", 2.0), SlotView("d", 0.5, 2)]
    assert lru_victims(slots, capacity=4) == []
    assert lru_victims(slots, capacity=3) == ["b"]
    assert lru_victims(slots, capacity=1) == ["b", "c", "a"]  # "d" is busy: over cap
    assert lru_victims(slots, capacity=-1) == ["b", "c", "a"]


def test_retry_once() -> None:
    assert retry_allowed(1) and not retry_allowed(2)


DEB822 = """\
Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_mirror_from_deb822_and_one_line_sources() -> None:
    assert mirror_from_sources([DEB822], "bookworm") == "http://mirror.example/debian"
    one_line = "deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian/ bookworm main\n"
    assert mirror_from_sources([one_line], "bookworm") == "http://m.example/debian"
    assert mirror_from_sources(["deb http://x/ubuntu jammy main"], "bookworm") is None
    assert mirror_from_sources([DEB822], "trixie") is None
