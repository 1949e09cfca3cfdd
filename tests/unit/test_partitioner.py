"""The producer's partitioner places keys exactly where Kafka's default partitioner does."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from modelbus_delivery.partitioner import keyed_partition

_default = DefaultPartitioner()


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=64))
def test_a_key_goes_where_the_default_partitioner_puts_it(key: bytes, count: int) -> None:
    partitions = list(range(count))
    expected = _default(key, partitions, partitions)
    assert keyed_partition(key, partitions, partitions) == expected
    assert keyed_partition(key, partitions, partitions) == expected  # remembered: the same


def test_known_keys_land_on_the_java_clients_partitions() -> None:
    # Kafka's Java client places these keys so among 1,000 partitions (the compatibility
    # vectors kafka-python and aiokafka test their murmur2 against).
    partitions = list(range(1000))
    keys = (b"", b"a", b"ab", b"abc", b"123456789", b"\x00 ")
    assert [keyed_partition(k, partitions, partitions) for k in keys] == [
        681, 524, 434, 107, 566, 742
    ]


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    chosen = {keyed_partition(None, list(range(12)), [3, 7]) for _ in range(200)}
    assert chosen == {3, 7}
    assert keyed_partition(None, [5], []) == 5
