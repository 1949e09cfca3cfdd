"""``modelbus dlq``: grouping dead letters by reason, choosing and deciding what to send
again, the record sent, the replay ledger and the pacing (pure logic)."""

from __future__ import annotations

import pytest

from modelbus_client.cli.dlq_reasons import DeadLetter, group_by_reason, reason_pattern
from modelbus_client.cli.dlq_replay import (
    Ledger,
    Pacer,
    Refusal,
    Selection,
    Verdict,
    decide,
    ledger_record,
    parse_position,
    parse_rate,
    resend,
)
from modelbus_contract.dead_letters import DlqReplay, replay_key
from modelbus_delivery.dlq import dlq_copy, dlq_note
from modelbus_delivery.records import Inbound

DLQ, REQUESTS, DISCOVERED = "p.inference.dlq", "p.inference.requests", "p.models.discovered"


def request(offset: int, model: str = "m", cid: str = "c", reply_to: str = "p.replies.x",
            ) -> Inbound:
    return Inbound(REQUESTS, 3, 100 + offset, model.encode(), b"ARROW", (
        ("model", model.encode()), ("correlation_id", cid.encode()),
        ("reply_to", reply_to.encode()), ("timeout_ms", b"60000")))


def letter(source: Inbound, offset: int, code: str = "model_not_found",
           message: str = "no model named 'm'", timestamp: int = 5000) -> DeadLetter:
    """A dead letter as the worker writes it (``dlq_copy``), read back from the DLQ."""
    out = dlq_copy(DLQ, source, code, message)
    headers = tuple((k, v.encode()) for k, v in out.headers.items())
    return DeadLetter.of(Inbound(DLQ, 0, offset, out.key, out.value, headers, timestamp))


def note(offset: int) -> DeadLetter:
    out = dlq_note(DLQ, REQUESTS, 3, 9, "bad_request", "the Kafka client cannot decode it")
    headers = tuple((k, v.encode()) for k, v in out.headers.items())
    return DeadLetter.of(Inbound(DLQ, 0, offset, out.key, out.value, headers, 1))


def test_a_dead_letter_says_what_the_worker_wrote() -> None:
    dead = letter(request(1, cid="abc"), 4)
    assert (dead.code, dead.source, dead.source_where) == (
        "model_not_found", REQUESTS, f"{REQUESTS}/3@101")
    assert (dead.correlation_id, dead.model, dead.where, dead.note) == ("abc", "m", "0@4", False)
    assert note(5).note
    # listing keeps no values (a DLQ can be large); what a letter is stays known
    light = dead.without_value()
    assert (light.record.value, light.note, light.code) == (None, False, "model_not_found")
    assert note(5).without_value().note


def test_reasons_blank_what_varies_from_record_to_record() -> None:
    assert reason_pattern("no model named 'demo-7' (version 12)") == (
        "no model named '…' (version N)")
    assert reason_pattern("request 0123456789abcdef0123 failed\nsecond line") == (
        "request … failed")


def test_dead_letters_are_grouped_by_reason_the_largest_first() -> None:
    letters = [
        letter(request(1), 0, message="no model named 'a'"),
        letter(request(2), 1, "bad_request", "header 'model' is missing"),
        letter(request(3), 2, message="no model named 'b'"),
        letter(request(4), 3, message="no model named 'c'"),
    ]
    groups = group_by_reason(letters, replayed={(0, 2)})
    assert [(g.code, g.count, g.replayed) for g in groups] == [
        ("model_not_found", 3, 1), ("bad_request", 1, 0)]
    lines = groups[0].describe(examples=2)
    assert lines[0] == (f"model_not_found  3 records  from {REQUESTS}, 1 replayed  "
                        "at 0@0, 0@2, … (1 more)")
    assert lines[1] == "    no model named 'a'"
    assert groups[0].as_json()["records"][1] == {  # type: ignore[index]
        "partition": 0, "offset": 2, "correlation_id": "c", "model": "m"}


def test_positions_and_rates_as_given_on_the_command_line() -> None:
    assert parse_position("12") == (None, 12)
    assert parse_position("2:12") == parse_position("2@12") == (2, 12)
    assert parse_rate("5") == parse_rate("5/s") == 5.0
    assert parse_rate("30/min") == 0.5
    for bad in ("x", "-1", "0/s", "1:2:3"):
        with pytest.raises(Refusal):
            parse_position(bad) if ":" in bad else parse_rate(bad)


def test_criteria_of_different_kinds_all_hold_values_of_one_kind_are_alternatives() -> None:
    a, b = letter(request(1, "a", "ca"), 0), letter(request(2, "b", "cb"), 1, "internal")
    assert not Selection().chooses(a)  # nothing chosen: nothing sent
    assert Selection(everything=True).chooses(b)
    assert Selection(positions=frozenset({(None, 1)})).chooses(b)
    assert not Selection(positions=frozenset({(1, 1)})).chooses(b)  # another partition
    codes = Selection(error_codes=frozenset({"model_not_found", "internal"}))
    assert codes.chooses(a) and codes.chooses(b)
    both = Selection(error_codes=frozenset({"internal"}), models=frozenset({"a"}))
    assert not both.chooses(a) and not both.chooses(b)
    assert Selection(correlation_ids=frozenset({"ca"})).chooses(a)


def test_only_requests_with_a_record_are_sent_and_never_twice_unless_asked() -> None:
    sent_before = letter(request(1), 0)
    fresh = letter(request(2), 1)
    event = DeadLetter.of(Inbound(DLQ, 0, 2, b"m/1", b"{}", (
        ("dlq_error_code", b"bad_request"), ("dlq_source", DISCOVERED.encode()))))
    letters = [sent_before, fresh, event, note(3)]
    ledger = Ledger({replay_key(0, 0): ledger_record(sent_before, DLQ, REQUESTS, (3, 7), "op")})
    everything = Selection(everything=True)
    verdicts = [d.verdict for d in decide(letters, everything, ledger, DLQ, REQUESTS)]
    assert verdicts == [Verdict.REPLAYED_BEFORE, Verdict.REPLAY, Verdict.NOT_A_REQUEST,
                        Verdict.NOTHING_TO_SEND]
    again = decide(letters, everything, ledger, DLQ, REQUESTS, again=True)
    assert [d.verdict for d in again][:2] == [Verdict.REPLAY, Verdict.REPLAY]
    refused = decide([event], everything, ledger, DLQ, REQUESTS)[0]
    assert refused.why == (f"from {DISCOVERED}: only requests (from {REQUESTS}) are sent again")


def test_the_ledger_tells_records_apart_from_others_at_the_same_position() -> None:
    old = letter(request(1), 0, timestamp=1000)
    ledger = Ledger()
    ledger.add(replay_key(0, 0), ledger_record(old, DLQ, REQUESTS, None, None)
               .model_dump_json().encode())
    assert ledger.replay_of(old, DLQ) is not None
    assert ledger.replay_of(old, "another.dlq") is None
    remade = letter(request(1), 0, timestamp=2000)  # the DLQ topic was made anew
    assert ledger.replay_of(remade, DLQ) is None
    ledger.add(replay_key(0, 0), None)  # a tombstone forgets
    assert ledger.replay_of(old, DLQ) is None
    ledger.add(replay_key(0, 1), b"not json")
    ledger.add(None, b"{}")
    assert ledger.unreadable == 2 and ledger.entries == {}


def test_a_newer_ledger_record_with_fields_this_reader_does_not_know_is_read() -> None:
    entry = DlqReplay.model_validate({
        "dlq_topic": DLQ, "dlq_partition": 0, "dlq_offset": 4, "target_topic": REQUESTS,
        "added_later": True})
    assert entry.key == "0:4"


def test_the_record_sent_again_is_the_request_as_its_sender_sent_it() -> None:
    original = request(1, cid="abc", reply_to="p.replies.caller")
    dead = letter(original, 4)
    again = resend(dead, DLQ, REQUESTS)
    assert (again.topic, again.key, again.value) == (REQUESTS, b"m", b"ARROW")
    assert again.headers == {
        "model": b"m", "correlation_id": b"abc", "reply_to": b"p.replies.caller",
        "timeout_ms": b"60000", "replayed_from": f"{DLQ}/0@4".encode()}
    # replayed, failed again, dead-lettered again: replayed from its newest dead letter
    twice = letter(Inbound(REQUESTS, 3, 200, b"m", b"ARROW", tuple(
        (k, v) for k, v in again.headers.items())), 9)
    assert twice.replayed_from == f"{DLQ}/0@4"
    assert resend(twice, DLQ, REQUESTS).headers["replayed_from"] == f"{DLQ}/0@9".encode()


def test_the_ledger_record_of_a_replay() -> None:
    dead = letter(request(1, cid="abc"), 4, timestamp=1234)
    entry = ledger_record(dead, DLQ, REQUESTS, (3, 77), "op@host")
    assert (entry.key, entry.dlq_timestamp_ms, entry.correlation_id, entry.error_code) == (
        "0:4", 1234, "abc", "model_not_found")
    assert (entry.target_topic, entry.target_partition, entry.target_offset) == (REQUESTS, 3, 77)


def test_the_pacer_spaces_sends_and_never_bursts_after_a_pause() -> None:
    now = [100.0]
    pacer = Pacer(4.0, clock=lambda: now[0])
    assert [pacer.delay(), pacer.delay(), pacer.delay()] == [0.0, 0.25, 0.5]
    now[0] = 110.0  # the caller paused: the next goes now, the one after a step later
    assert [pacer.delay(), pacer.delay()] == [0.0, 0.25]
    with pytest.raises(ValueError):
        Pacer(0)
