"""When ``modelbus up`` warns about its embedded broker: readings in, notices out."""

from __future__ import annotations

from modelbus.stack.broker_watch import limits_from
from modelbus.stack.broker_watch_policy import (
    WHAT_TO_DO,
    BrokerLimits,
    BrokerReading,
    BrokerWatchPolicy,
    FetchState,
)
from modelbus_contract.settings import ModelbusSettings

LIMITS = BrokerLimits(fetch_wall_s=0.005, fetch_warn_s=0.0025, memory_warn_bytes=1_000_000_000,
                      confirm_readings=2, repeat_s=600.0)
WHERE = "modelbus.inference.requests[3]"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fetch(ms: float) -> BrokerReading:
    return BrokerReading(fetch_s=ms / 1000, where=WHERE)


def events(policy: BrokerWatchPolicy, reading: BrokerReading) -> list[str]:
    return [n.event for n in policy.observe(reading)]


def test_a_slow_fetch_warns_once_two_readings_agree_and_says_what_to_do() -> None:
    policy = BrokerWatchPolicy(LIMITS, Clock())
    assert events(policy, fetch(1.0)) == []
    assert events(policy, fetch(3.0)) == []  # one slow reading may be a busy moment
    assert policy.warnings() == {"fetch": False, "memory": False}
    [notice] = policy.observe(fetch(3.5))
    assert notice.event == "embedded_broker_slowing"
    assert notice.warning is True
    assert notice.fields == {"fetch_ms": 3.5, "partition": WHERE, "fetch_wait_ms": 5.0}
    assert notice.text == (
        f"the embedded broker is slowing down: one fetch of {WHERE} takes 3.5 ms of the 5 ms "
        "the services wait under load (it lists every record batch the partition ever held); "
        f"past that, answers slow down and stall. {WHAT_TO_DO}"
    )
    assert "--external-kafka" in notice.text and "restart modelbus up" in notice.text
    assert policy.warnings() == {"fetch": True, "memory": False}
    assert events(policy, fetch(3.0)) == []  # said once, not at every look


def test_a_fast_reading_between_two_slow_ones_keeps_the_peace() -> None:
    policy = BrokerWatchPolicy(LIMITS, Clock())
    assert events(policy, fetch(3.0)) == []
    assert events(policy, fetch(1.0)) == []
    assert events(policy, fetch(3.0)) == []
    assert policy.fetch_state is FetchState.OK


def test_past_the_fetch_wait_it_tells_that_the_limit_is_reached() -> None:
    policy = BrokerWatchPolicy(LIMITS, Clock())
    for ms in (3.0, 3.0):
        policy.observe(fetch(ms))
    assert events(policy, fetch(6.0)) == []
    [notice] = policy.observe(fetch(7.25))
    assert notice.event == "embedded_broker_at_limit"
    assert notice.text.startswith(
        f"the embedded broker is at its limit: one fetch of {WHERE} takes 7.2 ms, more than "
        "the 5 ms the services wait under load: answers slow down and stall."
    )
    assert policy.fetch_state is FetchState.AT_WALL


def test_a_lasting_warning_is_said_again_after_the_repeat_interval() -> None:
    clock = Clock()
    policy = BrokerWatchPolicy(LIMITS, clock)
    policy.observe(fetch(3.0))
    assert events(policy, fetch(3.0)) == ["embedded_broker_slowing"]
    clock.now += 599.0
    assert events(policy, fetch(3.0)) == []
    clock.now += 1.0
    assert events(policy, fetch(3.0)) == ["embedded_broker_slowing"]
    clock.now += 300.0
    assert events(policy, fetch(3.0)) == []


def test_a_recovery_is_told_once_and_clears_the_warning() -> None:
    clock = Clock()
    policy = BrokerWatchPolicy(LIMITS, clock)
    for _ in range(2):
        policy.observe(fetch(3.0))
    assert events(policy, fetch(0.4)) == []
    [notice] = policy.observe(fetch(0.5))
    assert (notice.event, notice.warning) == ("embedded_broker_recovered", False)
    assert notice.text == "the embedded broker fetches fast again (0.5 ms at most)"
    assert policy.warnings() == {"fetch": False, "memory": False}
    clock.now += 3600.0
    assert events(policy, fetch(0.5)) == []


def test_memory_past_its_limit_warns_at_the_first_reading() -> None:
    policy = BrokerWatchPolicy(LIMITS, Clock())
    assert events(policy, BrokerReading(rss_bytes=999_999_999)) == []
    [notice] = policy.observe(BrokerReading(rss_bytes=1_234_000_000))
    assert notice.event == "embedded_broker_memory_high"
    assert notice.fields == {"resident_mb": 1234.0, "limit_mb": 1000.0}
    assert notice.text == (
        "the embedded broker holds 1,234 MB (limit 1,000 MB) and keeps growing: it keeps "
        f"every record and ignores retention. {WHAT_TO_DO}"
    )
    assert policy.warnings() == {"fetch": False, "memory": True}
    assert events(policy, BrokerReading(rss_bytes=200_000_000)) == ["embedded_broker_memory_ok"]
    assert policy.warnings() == {"fetch": False, "memory": False}


def test_a_failed_probe_changes_nothing() -> None:
    policy = BrokerWatchPolicy(LIMITS, Clock())
    for _ in range(2):
        policy.observe(fetch(3.0))
    assert events(policy, BrokerReading(rss_bytes=None)) == []
    assert policy.warnings() == {"fetch": True, "memory": False}


def test_the_limits_follow_the_request_paths_fetch_wait_under_load() -> None:
    assert limits_from(ModelbusSettings()) == BrokerLimits(  # paced: 20 ms under load
        fetch_wall_s=0.02, fetch_warn_s=0.01, memory_warn_bytes=1_000_000_000
    )
    unpaced = ModelbusSettings(kafka_fetch_max_wait_ms=5, kafka_fetch_busy_rate=0)
    assert limits_from(unpaced) == BrokerLimits(
        fetch_wall_s=0.005, fetch_warn_s=0.0025, memory_warn_bytes=1_000_000_000
    )
    tuned = ModelbusSettings(kafka_fetch_max_wait_ms=30, embedded_broker_fetch_warn_ms=4,
                             embedded_broker_memory_warn_mb=300)
    assert limits_from(tuned) == BrokerLimits(
        fetch_wall_s=0.03, fetch_warn_s=0.004, memory_warn_bytes=300_000_000
    )


def test_memory_that_hovers_at_its_limit_warns_once() -> None:
    policy = BrokerWatchPolicy(LIMITS, Clock())
    assert events(policy, BrokerReading(rss_bytes=1_006_000_000)) == [
        "embedded_broker_memory_high"
    ]
    for rss in (993_000_000, 1_016_000_000, 901_000_000):  # within 10% below: still high
        assert events(policy, BrokerReading(rss_bytes=rss)) == []
    assert events(policy, BrokerReading(rss_bytes=899_000_000)) == ["embedded_broker_memory_ok"]
