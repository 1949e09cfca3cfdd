"""Dead letters read from the DLQ topic, and grouped by why they are there (pure logic).

A dead letter is the refused record as it came plus the ``dlq_*`` headers of the contract
(``modelbus_contract.dead_letters``). Its *reason* is its error code, the topic it came
from and its message with the parts that differ from record to record (numbers, ids,
quoted names) blanked, so that a thousand requests refused for one cause are one line.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace

from modelbus_contract.dead_letters import (
    DLQ_ERROR_CODE,
    DLQ_ERROR_MESSAGE,
    DLQ_OFFSET,
    DLQ_PARTITION,
    DLQ_SOURCE,
    DLQ_VALUE_OMITTED,
    REPLAYED_FROM,
)
from modelbus_contract.headers import header_dict
from modelbus_delivery.records import Inbound

MAX_PATTERN_CHARS = 120
EXAMPLES = 5

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_ID = re.compile(r"\b[0-9a-fA-F]{8,}\b|\b[0-9a-fA-F-]{32,36}\b")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


@dataclass(frozen=True)
class DeadLetter:
    """One record of the DLQ topic, with its ``dlq_*`` headers read (leniently)."""

    record: Inbound
    headers: dict[str, str]
    # A note in place of a record the Kafka client could not decode, or a copy the broker
    # refused whole (``dlq_value_omitted``): nothing to send again.
    note: bool = False

    @classmethod
    def of(cls, record: Inbound) -> DeadLetter:
        headers = header_dict(record.headers)
        note = DLQ_VALUE_OMITTED in headers or (record.key is None and not record.value)
        return cls(record, headers, note)

    def without_value(self) -> DeadLetter:
        """The same letter without its value (kept for grouping, not for sending)."""
        return replace(self, record=replace(self.record, value=None))

    @property
    def partition(self) -> int:
        return self.record.partition

    @property
    def offset(self) -> int:
        return self.record.offset

    @property
    def where(self) -> str:
        return f"{self.partition}@{self.offset}"

    @property
    def code(self) -> str:
        return self.headers.get(DLQ_ERROR_CODE) or "(no dlq_error_code)"

    @property
    def message(self) -> str:
        return self.headers.get(DLQ_ERROR_MESSAGE, "")

    @property
    def source(self) -> str:
        return self.headers.get(DLQ_SOURCE, "")

    @property
    def source_where(self) -> str:
        """``TOPIC/PARTITION@OFFSET`` of the refused record ('' when not told)."""
        partition, offset = self.headers.get(DLQ_PARTITION), self.headers.get(DLQ_OFFSET)
        if not self.source or partition is None or offset is None:
            return ""
        return f"{self.source}/{partition}@{offset}"

    @property
    def correlation_id(self) -> str | None:
        given = self.headers.get("correlation_id")
        if given:
            return given
        try:
            return self.record.key.decode("utf-8") if self.record.key else None
        except UnicodeDecodeError:
            return None

    @property
    def model(self) -> str | None:
        return self.headers.get("model") or None

    @property
    def replayed_from(self) -> str | None:
        """Set when this dead letter is of a request that was replayed before."""
        return self.headers.get(REPLAYED_FROM) or None


def reason_pattern(message: str) -> str:
    """The message with what varies between records blanked: quoted parts ``'…'``, ids
    ``…``, numbers ``N``; its first line, cut short."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    text = _QUOTED.sub("'…'", first)
    text = _ID.sub("…", text)
    text = _NUMBER.sub("N", text)
    return text if len(text) <= MAX_PATTERN_CHARS else text[: MAX_PATTERN_CHARS - 1] + "…"


@dataclass
class ReasonGroup:
    """The dead letters of one reason: code, source topic, message pattern."""

    code: str
    source: str
    pattern: str
    letters: list[DeadLetter] = field(default_factory=list)
    replayed: int = 0

    @property
    def count(self) -> int:
        return len(self.letters)

    @property
    def example(self) -> str:
        return self.letters[0].message

    def describe(self, examples: int = EXAMPLES) -> list[str]:
        """Two lines: the code, count, source, positions and replays; an example message."""
        where = ", ".join(letter.where for letter in self.letters[:examples])
        if self.count > examples:
            where += f", … ({self.count - examples} more)"
        replays = f", {self.replayed} replayed" if self.replayed else ""
        plural = "s" if self.count != 1 else ""
        return [
            f"{self.code}  {self.count} record{plural}  from {self.source or '?'}{replays}  "
            f"at {where}",
            f"    {_cut(self.example, 300) or '(no message)'}",
        ]

    def as_json(self) -> dict[str, object]:
        return {
            "error_code": self.code, "source": self.source, "pattern": self.pattern,
            "count": self.count, "replayed": self.replayed, "example": self.example,
            "records": [{"partition": letter.partition, "offset": letter.offset,
                         "correlation_id": letter.correlation_id, "model": letter.model}
                        for letter in self.letters],
        }


def group_by_reason(letters: Iterable[DeadLetter],
                    replayed: Collection[tuple[int, int]] = ()) -> list[ReasonGroup]:
    """Groups of dead letters by reason, the largest first; ``replayed`` (partition, offset)
    of the letters in the replay ledger are counted per group."""
    groups: dict[tuple[str, str, str], ReasonGroup] = {}
    for letter in letters:
        key = (letter.code, letter.source, reason_pattern(letter.message))
        group = groups.setdefault(key, ReasonGroup(*key))
        group.letters.append(letter)
        if (letter.partition, letter.offset) in replayed:
            group.replayed += 1
    return sorted(groups.values(), key=lambda g: (-g.count, g.code, g.source, g.pattern))


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
