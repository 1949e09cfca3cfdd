"""Which private reply topics a gone client left behind: the rule of ``prune-replies``."""

from __future__ import annotations

from modelbus.reply_pruning import Decision, decide

HOUR_MS = 3_600_000
NOW_MS = 1_000 * HOUR_MS


def test_the_rule() -> None:
    newest = {
        "p.replies.alive": NOW_MS - 5 * 60_000,
        "p.replies.old": NOW_MS - 2 * HOUR_MS,
        "p.replies.just-old-enough": NOW_MS - HOUR_MS,
        "p.replies.empty": None,
        "p.replies.starting": None,
        "p.replies.skewed": NOW_MS + 60_000,
    }
    decisions = decide(
        [*newest, "p.replies.unreadable"], newest, {"p.replies.empty"}, NOW_MS, 3600
    )
    assert decisions == [
        Decision("p.replies.alive", False, "alive: newest record 5m old"),
        Decision("p.replies.empty", True, "no record, not even a sign of life"),
        Decision("p.replies.just-old-enough", True, "newest record 1.0h old"),
        Decision("p.replies.old", True, "newest record 2.0h old"),
        Decision("p.replies.skewed", False, "its newest record is in the future"),
        Decision("p.replies.starting", False, "no record yet (a client starting?)"),
        Decision("p.replies.unreadable", False, "its records could not be read"),
    ]


def test_the_time_decides_with_the_same_observations() -> None:
    newest = {"p.replies.a": NOW_MS}
    assert [d.delete for d in decide(["p.replies.a"], newest, (), NOW_MS + HOUR_MS - 1,
                                     3600)] == [False]
    assert [d.delete for d in decide(["p.replies.a"], newest, (), NOW_MS + HOUR_MS,
                                     3600)] == [True]
