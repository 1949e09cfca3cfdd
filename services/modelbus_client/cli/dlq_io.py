"""The Kafka side of ``modelbus dlq``: reading the DLQ topic and the replay ledger, sending
dead letters again and recording each in the ledger.

A dead letter is sent first and recorded after: a run that stops in between (a crash, a
lost connection) leaves one replay unrecorded, which a later run would send again
(at-least-once, like every modelbus delivery; the worker answers it under the same
correlation id).
"""

from __future__ import annotations

import asyncio
import getpass
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from modelbus_contract.settings import ModelbusSettings
from modelbus_contract.topic_plan import topic_spec
from modelbus_delivery.kafka_config import connection_options
from modelbus_delivery.topic_admin import list_topic_names
from modelbus_delivery.topics import provide_topics
from modelbus_delivery.writer import Sent, TopicWriter

from .dlq_reasons import DeadLetter
from .dlq_replay import Ledger, Pacer, ledger_record, resend
from .record_view import Poison
from .topic_records import Reading, read_records, topic_exists


@dataclass
class DeadLetters:
    """The DLQ topic as read: its dead letters and the records no client could decode."""

    letters: list[DeadLetter]
    poison: list[Poison]


async def read_dead_letters(
    settings: ModelbusSettings, keep_value: Callable[[DeadLetter], bool] = lambda _: False,
) -> DeadLetters:
    """Every record of the DLQ topic up to its end now (none if it does not exist yet);
    only the letters ``keep_value`` chooses keep their value (memory: a DLQ can be large)."""
    out = DeadLetters([], [])
    if not await topic_exists(settings, settings.topics.dlq):
        return out
    async for item in read_records(settings, settings.topics.dlq, Reading()):
        if isinstance(item, Poison):
            out.poison.append(item)
            continue
        letter = DeadLetter.of(item)
        out.letters.append(letter if keep_value(letter) else letter.without_value())
    return out


async def read_ledger(settings: ModelbusSettings) -> Ledger:
    """The replay ledger up to its end now (empty if the topic does not exist yet)."""
    ledger = Ledger()
    topic = settings.topics.dlq_replays
    if not await topic_exists(settings, topic):
        return ledger
    async for item in read_records(settings, topic, Reading()):
        if isinstance(item, Poison):
            ledger.unreadable += 1
            continue
        key = item.key.decode("utf-8", "replace") if item.key is not None else None
        ledger.add(key, item.value)
    return ledger


async def existing_topics(settings: ModelbusSettings) -> set[str]:
    return set(await list_topic_names(connection_options(settings)))


async def provide_replay_topics(settings: ModelbusSettings) -> None:
    """The requests topic and the ledger: made if missing, or required when topics may not
    be made (``MODELBUS_KAFKA_CREATE_TOPICS=false``: ``TopicsMissing``)."""
    await provide_topics(
        connection_options(settings),
        [topic_spec(settings, "requests"), topic_spec(settings, "dlq_replays")],
        create=settings.kafka_create_topics,
    )


def operator() -> str | None:
    """``user@host`` of who replays, for the ledger."""
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (OSError, KeyError):
        return None


OnSent = Callable[[DeadLetter, Sent], None]


async def send_again(
    settings: ModelbusSettings, letters: list[DeadLetter], pacer: Pacer, on_sent: OnSent,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> int:
    """Send each letter to the requests topic, paced, and record it in the ledger; the
    number sent. ``PublishFailed`` stops at the letter that could not be sent or recorded."""
    topics = settings.topics
    writer = TopicWriter(connection_options(settings),
                         max_request_size=settings.max_message_bytes)
    await writer.start()
    by = operator()
    sent = 0
    try:
        for letter in letters:
            await sleep(pacer.delay())
            record = resend(letter, topics.dlq, topics.requests)
            where = await writer.send(record.topic, record.key, record.value, record.headers)
            entry = ledger_record(letter, topics.dlq, topics.requests, where, by)
            await writer.send(topics.dlq_replays, entry.key, entry.model_dump_json().encode())
            sent += 1
            on_sent(letter, where)
    finally:
        await writer.stop()
    return sent
