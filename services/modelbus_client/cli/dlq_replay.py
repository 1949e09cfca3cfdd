"""What ``modelbus dlq replay`` sends, and when (pure logic).

- ``Selection``: which dead letters the operator chose (positions, error codes, correlation
  ids, models, or all); criteria of different kinds must all hold, values of one kind are
  alternatives.
- ``decide``: for each chosen letter, whether it is sent: only copies of requests (their
  ``dlq_source`` is the requests topic) that carry a record (not a note), and not one the
  replay ledger says was sent already, unless ``again``.
- ``resend``: the record sent back: the dead letter's own key, value and headers (its
  ``correlation_id``, ``reply_to``, ``model``, ... as the caller sent them), without the
  ``dlq_*`` headers, with ``replayed_from``.
- ``Ledger``: the replay ledger read back (the newest record per key wins; a tombstone
  forgets); a record at the same position of a DLQ topic made anew (another timestamp) is
  another record.
- ``Pacer``: at most ``rate`` records a second (clock injected).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from pydantic import ValidationError

from modelbus_contract.dead_letters import DLQ_HEADERS, REPLAYED_FROM, DlqReplay, replayed_from

from .dlq_reasons import DeadLetter

DEFAULT_RATE = 10.0  # records a second


class Refusal(ValueError):
    """An option value that cannot be used (one line for the operator)."""


@dataclass(frozen=True)
class Selection:
    """The dead letters an operator chose."""

    positions: frozenset[tuple[int | None, int]] = frozenset()  # (partition or any, offset)
    error_codes: frozenset[str] = frozenset()
    correlation_ids: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()
    everything: bool = False

    @property
    def empty(self) -> bool:
        return not (self.everything or self.positions or self.error_codes
                    or self.correlation_ids or self.models)

    def chooses(self, letter: DeadLetter) -> bool:
        if self.empty:
            return False
        if self.positions and not (
            (letter.partition, letter.offset) in self.positions
            or (None, letter.offset) in self.positions
        ):
            return False
        if self.error_codes and letter.code not in self.error_codes:
            return False
        if self.correlation_ids and letter.correlation_id not in self.correlation_ids:
            return False
        return not (self.models and letter.model not in self.models)


def parse_position(text: str) -> tuple[int | None, int]:
    """``OFFSET`` (in any partition) or ``PARTITION:OFFSET`` (also ``PARTITION@OFFSET``)."""
    match = re.fullmatch(r"\s*(?:(\d+)\s*[:@]\s*)?(\d+)\s*", text)
    if match is None:
        raise Refusal(f"{text!r} is not OFFSET or PARTITION:OFFSET")
    partition, offset = match.groups()
    return (int(partition) if partition is not None else None), int(offset)


def parse_rate(text: str) -> float:
    """Records a second: ``N``, ``N/s`` or ``N/min``; more than 0."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:/\s*(s|sec|second|m|min|minute))?\s*",
                         text)
    if match is None:
        raise Refusal(f"rate {text!r}: use N, N/s or N/min")
    value = float(match.group(1)) / (60.0 if (match.group(2) or "s").startswith("m") else 1.0)
    if value <= 0:
        raise Refusal(f"rate {text!r}: must be more than 0")
    return value


class Verdict(Enum):
    REPLAY = "replay"
    REPLAYED_BEFORE = "replayed before"
    NOT_A_REQUEST = "not a request"
    NOTHING_TO_SEND = "nothing to send"


@dataclass(frozen=True)
class Decision:
    letter: DeadLetter
    verdict: Verdict
    why: str = ""


class Ledger:
    """The replay ledger's records by key: which dead letters were sent again."""

    def __init__(self, entries: Mapping[str, DlqReplay] | None = None) -> None:
        self.entries: dict[str, DlqReplay] = dict(entries or {})
        self.unreadable = 0

    def add(self, key: str | None, value: bytes | None) -> None:
        """One ledger record as read (in order): the newest per key wins; ``None`` forgets."""
        if key is None:
            self.unreadable += 1
            return
        if value is None:
            self.entries.pop(key, None)
            return
        try:
            self.entries[key] = DlqReplay.model_validate_json(value)
        except ValidationError:
            self.unreadable += 1

    def replay_of(self, letter: DeadLetter, dlq_topic: str) -> DlqReplay | None:
        """The ledger's record of sending ``letter`` again, if any."""
        entry = self.entries.get(f"{letter.partition}:{letter.offset}")
        if entry is None or entry.dlq_topic != dlq_topic:
            return None
        if entry.dlq_timestamp_ms is not None and entry.dlq_timestamp_ms != letter.record.timestamp:
            return None  # another record at that position: the DLQ topic was made anew
        return entry

    def replayed(self, letters: Iterable[DeadLetter], dlq_topic: str) -> set[tuple[int, int]]:
        return {(x.partition, x.offset) for x in letters if self.replay_of(x, dlq_topic)}


def decide(letters: Iterable[DeadLetter], selection: Selection, ledger: Ledger,
           dlq_topic: str, requests_topic: str, again: bool = False) -> list[Decision]:
    """The verdict on each chosen letter, in the DLQ's order."""
    decisions = []
    for letter in letters:
        if not selection.chooses(letter):
            continue
        if letter.source != requests_topic:
            why = (f"from {letter.source or 'an unknown topic'}: only requests (from "
                   f"{requests_topic}) are sent again")
            decisions.append(Decision(letter, Verdict.NOT_A_REQUEST, why))
        elif letter.note:
            decisions.append(Decision(letter, Verdict.NOTHING_TO_SEND,
                                      "a note: the record itself was not kept"))
        elif (entry := ledger.replay_of(letter, dlq_topic)) is not None and not again:
            decisions.append(Decision(letter, Verdict.REPLAYED_BEFORE,
                                      f"replayed {entry.replayed_at:%Y-%m-%d %H:%M:%S} UTC "
                                      f"to {entry.target_topic}"))
        else:
            decisions.append(Decision(letter, Verdict.REPLAY))
    return decisions


@dataclass(frozen=True)
class Resend:
    """A record to send again."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def resend(letter: DeadLetter, dlq_topic: str, requests_topic: str) -> Resend:
    """The dead letter as its sender sent it: key, value and headers, ``dlq_*`` removed,
    ``replayed_from`` set (a header repeated in the copy keeps its first value)."""
    headers: dict[str, bytes] = {}
    for name, value in letter.record.headers:
        if name in DLQ_HEADERS or name == REPLAYED_FROM:
            continue
        headers.setdefault(name, value or b"")
    headers[REPLAYED_FROM] = replayed_from(dlq_topic, letter.partition, letter.offset).encode()
    return Resend(requests_topic, letter.record.key, letter.record.value, headers)


def ledger_record(letter: DeadLetter, dlq_topic: str, target_topic: str,
                  target: tuple[int, int] | None, by: str | None) -> DlqReplay:
    """The replay ledger's record of having sent ``letter`` to ``target`` (partition, offset)."""
    return DlqReplay(
        dlq_topic=dlq_topic, dlq_partition=letter.partition, dlq_offset=letter.offset,
        dlq_timestamp_ms=letter.record.timestamp or None, error_code=letter.code,
        correlation_id=letter.correlation_id, target_topic=target_topic,
        target_partition=target[0] if target else None,
        target_offset=target[1] if target else None, replayed_by=by,
    )


class Pacer:
    """Spaces sends ``1 / rate`` seconds apart: ``delay()`` is how long to wait before the
    next one (the first goes at once; a pause of the caller is not made up in a burst)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be more than 0, not {rate}")
        self._interval = 1.0 / rate
        self._clock = clock
        self._next: float | None = None

    def delay(self) -> float:
        now = self._clock()
        due = now if self._next is None else max(self._next, now)
        self._next = due + self._interval
        return due - now
