"""Timing one fetch of each partition of a Kafka-protocol broker, over the raw protocol.

The embedded broker's memory storage lists every record batch a partition ever held on
each fetch that finds new data in it, so the time of one fetch grows with the partition's
batch count; that fetch cost is what every consumer of the partition pays again and again.
The probe asks for one batch from the start of each partition that holds records: the
broker does the same listing, and the time the answer takes is that cost, as close as a
client can see it. The broker stops listing when a fetch's wait runs out, so that fetch
may wait up to the probe's timeout (with records there, the broker answers as soon as it
has them); a first fetch with a wait of ``FETCH_WAIT_MS`` learns whether there are any (the
broker answers nothing at all to a fetch that may not wait). Another fetch reads the last
records of a partition and counts their batches (records per batch), which says how well
the producers batch.

Plain sockets and the standard library only (Metadata v1, Fetch v4): this runs from the
stack's synchronous supervisor loop, and the soak bench loads it by path to measure code
older than this module.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

_METADATA, _FETCH = 3, 1
_CLIENT_ID = b"modelbus-broker-probe"
FETCH_WAIT_MS = 1
_BATCH_HEADER = 61  # bytes of a v2 record batch before its first record
_RECORDS_COUNT_AT = 57


class ProbeError(Exception):
    """The broker could not be reached, or answered something the probe cannot read."""


@dataclass(frozen=True)
class PartitionFetch:
    """One timed fetch of one partition."""

    topic: str
    partition: int
    seconds: float
    high_watermark: int
    error_code: int


@dataclass(frozen=True)
class TailBatches:
    """The record batches a fetch of a partition's last records returned."""

    batches: int
    records: int

    @property
    def records_per_batch(self) -> float:
        return self.records / self.batches if self.batches else 0.0


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> tuple[int, ...]:
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return values

    def int16(self) -> int:
        return self.take(">h")[0]

    def int32(self) -> int:
        return self.take(">i")[0]

    def int64(self) -> int:
        return self.take(">q")[0]

    def string(self) -> str | None:
        size = self.int16()
        if size < 0:
            return None
        text = self.data[self.at:self.at + size].decode("utf-8", errors="replace")
        self.at += size
        return text

    def blob(self) -> bytes:
        size = self.int32()
        if size < 0:
            return b""
        blob = self.data[self.at:self.at + size]
        self.at += size
        return blob


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def count_batches(records: bytes) -> TailBatches:
    """Batches and records in a fetch response's record set (a partial last batch, which
    a broker may cut at ``max_bytes``, is not counted)."""
    at = batches = total = 0
    while at + _BATCH_HEADER <= len(records):
        (length,) = struct.unpack_from(">i", records, at + 8)
        if at + 12 + length > len(records):
            break
        (count,) = struct.unpack_from(">i", records, at + _RECORDS_COUNT_AT)
        batches += 1
        total += count
        at += 12 + length
    return TailBatches(batches, total)


class BrokerProbe:
    """A connection to one broker for timed fetches; use as a context manager."""

    def __init__(self, host: str, port: int, timeout_s: float = 5.0) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._sock: socket.socket | None = None
        self._correlation = 0

    def __enter__(self) -> BrokerProbe:
        try:
            self._sock = socket.create_connection((self.host, self.port), self.timeout_s)
        except OSError as exc:
            raise ProbeError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def topics(self) -> dict[str, int]:
        """Every topic of the broker and its partition count (Metadata v1, all topics)."""
        body = self._call(_METADATA, 1, struct.pack(">i", -1))
        for _ in range(body.int32()):  # brokers
            body.int32()
            body.string()
            body.int32()
            body.string()
        body.int32()  # controller
        found: dict[str, int] = {}
        for _ in range(body.int32()):
            body.int16()
            name = body.string()
            body.take(">b")
            partitions = body.int32()
            for _ in range(partitions):
                body.take(">hii")
                body.take(f">{body.int32()}i")
                body.take(f">{body.int32()}i")
            if name is not None:
                found[name] = partitions
        return found

    def fetch(
        self, topic: str, partition: int, offset: int = 0, max_bytes: int = 1,
        wait_ms: int = FETCH_WAIT_MS,
    ) -> tuple[PartitionFetch, bytes]:
        """One fetch (Fetch v4) of ``partition`` from ``offset``, timed from the request's
        first byte sent to the answer's last byte read; and its record set."""
        request = (
            struct.pack(">iiiib", -1, wait_ms, 1, max_bytes, 0)
            + struct.pack(">i", 1) + _string(topic)
            + struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, max_bytes)
        )
        started = time.perf_counter()
        body = self._call(_FETCH, 4, request)
        seconds = time.perf_counter() - started
        body.int32()  # throttle time
        for _ in range(body.int32()):
            body.string()
            for _ in range(body.int32()):
                index, error = body.take(">ih")
                high_watermark = body.int64()
                body.int64()  # last stable offset
                aborted = body.int32()
                if aborted > 0:
                    body.take(f">{2 * aborted}q")
                records = body.blob()
                if index == partition:
                    return PartitionFetch(topic, partition, seconds, high_watermark,
                                          error), records
        raise ProbeError(f"no answer for {topic}[{partition}] in the fetch response")

    @property
    def _long_wait_ms(self) -> int:
        return max(FETCH_WAIT_MS, int(self.timeout_s * 800))

    def time_fetch(self, topic: str, partition: int, tries: int = 1) -> PartitionFetch:
        """What one fetch of ``partition`` that finds records costs (see the module's
        docstring): the quickest of ``tries``, which leaves out most of the time the fetch
        waited for a busy machine; for an empty partition, the short fetch that found it
        empty."""
        first, _ = self.fetch(topic, partition)
        if first.high_watermark <= 0:
            return first
        timed = [self.fetch(topic, partition, wait_ms=self._long_wait_ms)[0]
                 for _ in range(max(1, tries))]
        return min(timed, key=lambda fetch: fetch.seconds)

    def tail_batches(self, topic: str, partition: int, records: int) -> TailBatches:
        """The batches holding about the last ``records`` records of ``partition``."""
        first, _ = self.fetch(topic, partition)
        if first.high_watermark <= 0:
            return TailBatches(0, 0)
        start = max(0, first.high_watermark - records)
        _, data = self.fetch(topic, partition, offset=start, max_bytes=4 * 1024 * 1024,
                             wait_ms=self._long_wait_ms)
        return count_batches(data)

    def _call(self, api_key: int, version: int, payload: bytes) -> _Reader:
        if self._sock is None:
            raise ProbeError("BrokerProbe used outside its with block")
        self._correlation = (self._correlation + 1) & 0x7FFFFFFF
        header = struct.pack(">hhih", api_key, version, self._correlation, len(_CLIENT_ID))
        message = header + _CLIENT_ID + payload
        try:
            self._sock.sendall(struct.pack(">i", len(message)) + message)
            size = struct.unpack(">i", self._read(4))[0]
            data = self._read(size)
        except (OSError, struct.error) as exc:
            raise ProbeError(f"{self.host}:{self.port}: {type(exc).__name__}: {exc}") from None
        reader = _Reader(data)
        if reader.int32() != self._correlation:
            raise ProbeError("the broker answered another request")
        return reader

    def _read(self, size: int) -> bytes:
        assert self._sock is not None
        data = bytearray()
        while len(data) < size:
            chunk = self._sock.recv(size - len(data))
            if not chunk:
                raise OSError("connection closed by the broker")
            data.extend(chunk)
        return bytes(data)


def slowest_fetch(
    host: str, port: int, topics: dict[str, int] | None = None, timeout_s: float = 5.0,
    tries: int = 3,
) -> PartitionFetch | None:
    """The slowest fetch over every partition holding records (of ``topics``: name →
    partition count; default every topic of the broker), each partition's the quickest of
    ``tries``; None when none holds any."""
    slowest: PartitionFetch | None = None
    with BrokerProbe(host, port, timeout_s) as probe:
        for topic, partitions in sorted((topics or probe.topics()).items()):
            for partition in range(partitions):
                timed = probe.time_fetch(topic, partition, tries)
                if timed.high_watermark > 0 and (
                    slowest is None or timed.seconds > slowest.seconds
                ):
                    slowest = timed
    return slowest
