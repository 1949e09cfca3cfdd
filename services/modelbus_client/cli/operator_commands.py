"""CLI commands for operators: ``tail`` (any modelbus topic, decoded) and ``dlq`` (``list``
the dead letters by reason, ``replay`` chosen requests)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable

import click

from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.writer import PublishFailed, Sent

from .commands import _logging_to_stderr, _run, _settings
from .dlq_reasons import DeadLetter, group_by_reason
from .dlq_replay import (
    DEFAULT_RATE,
    Decision,
    Pacer,
    Refusal,
    Selection,
    Verdict,
    decide,
    parse_position,
    parse_rate,
)
from .kafka_options import kafka_options
from .record_view import (
    DEFAULT_ROWS,
    Limits,
    Poison,
    Tally,
    json_line,
    matches,
    render_text,
    resolve_topic,
    role_of,
    view,
)


def _out(text: str) -> None:
    click.echo(text)
    sys.stdout.flush()  # a tail is read as it goes, also through a pipe


@click.command()
@kafka_options
@click.argument("topic")
@click.option("--from-beginning", is_flag=True,
              help="Start at the oldest record kept (default: only new records).")
@click.option("--no-follow", is_flag=True,
              help="Stop at the end of the topic instead of waiting for new records.")
@click.option("--correlation-id", default=None,
              help="Only records of this correlation id (header or key).")
@click.option("--model", default=None,
              help="Only records of this model (header `model`, key `NAME/…` or JSON `name`).")
@click.option("--rows", default=DEFAULT_ROWS, show_default=True, type=click.IntRange(min=0),
              help="Rows of an Arrow table to show.")
@click.option("--max-records", type=click.IntRange(min=1), default=None,
              help="Stop after showing this many records.")
@click.option("--max-idle", type=click.FloatRange(min=0), default=None,
              help="Stop after this many seconds without a new record.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record.")
def tail(topic: str, from_beginning: bool, no_follow: bool, correlation_id: str | None,
         model: str | None, rows: int, max_records: int | None, max_idle: float | None,
         as_json: bool) -> None:
    """Print the records of TOPIC decoded: headers, Arrow tables (first rows), JSON.

    TOPIC is a short name (requests, results, dlq, catalog, discovered, dlq-replays,
    replies.NAME) or a full topic name. A record that cannot be read is shown with why
    (and its first bytes), never skipped; Ctrl-C stops.
    """
    from .topic_records import Reading, read_records

    settings = _settings()
    _logging_to_stderr(settings, at_least="CRITICAL")  # poison records are shown, not logged
    name = resolve_topic(topic, settings)
    role = role_of(name, settings)
    limits = Limits(settings.max_request_rows, settings.max_decoded_bytes, rows)
    reading = Reading(from_beginning=from_beginning, to_end=no_follow, max_idle_s=max_idle)
    tally = Tally()

    async def show() -> None:
        async for item in read_records(settings, name, reading):
            shown = item if isinstance(item, Poison) else view(item, role, limits)
            if not matches(shown, correlation_id, model):
                tally.skipped += 1
                continue
            tally.add(shown)
            _out(json_line(shown) if as_json else render_text(shown) + "\n")
            if max_records is not None and tally.shown >= max_records:
                return

    if not from_beginning and sys.stderr.isatty():
        click.echo(f"following {name} from its end (Ctrl-C stops)", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        _run(show(), settings)
    problems = tally.poison + tally.unreadable
    click.echo(f"{tally.shown} record{'s' * (tally.shown != 1)} shown"
               + (f", {problems} with problems" if problems else "")
               + (f", {tally.skipped} not matching" if tally.skipped else ""), err=True)


@click.group()
def dlq() -> None:
    """Look into the dead-letter topic and send refused requests again."""


@dlq.command("list")
@kafka_options
@click.option("--examples", default=5, show_default=True, type=click.IntRange(min=1),
              help="Positions shown per reason.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per reason.")
def dlq_list(examples: int, as_json: bool) -> None:
    """The dead letters grouped by reason (error code, source topic, message), the largest
    group first, with where they are (PARTITION@OFFSET) and how many were replayed."""
    from .dlq_io import read_dead_letters, read_ledger

    settings = _settings()
    _logging_to_stderr(settings, at_least="CRITICAL")

    async def read() -> tuple[list[str], int, int]:
        found = await read_dead_letters(settings)
        ledger = await read_ledger(settings)
        replayed = ledger.replayed(found.letters, settings.topics.dlq)
        groups = group_by_reason(found.letters, replayed)
        if as_json:
            lines = [json.dumps(g.as_json(), ensure_ascii=False) for g in groups]
            lines += [json.dumps({"undecodable": p.reason, "partition": p.partition,
                                  "offset": p.offset}) for p in found.poison]
        else:
            lines = [line for g in groups for line in g.describe(examples)]
            lines += [f"undecodable  at {p.partition}@{p.offset}: {p.reason}"
                      for p in found.poison]
        return lines, len(found.letters) + len(found.poison), len(groups)

    lines, total, reasons = _run(read(), settings)
    for line in lines:
        _out(line)
    click.echo(f"{total} dead letter{'s' * (total != 1)} in {settings.topics.dlq}, "
               f"{reasons} reason{'s' * (reasons != 1)}", err=True)


@dlq.command()
@kafka_options
@click.option("--offset", "offsets", multiple=True, metavar="[PARTITION:]OFFSET",
              help="A dead letter by its position in the DLQ topic (repeatable).")
@click.option("--error-code", "error_codes", multiple=True,
              help="Dead letters of this dlq_error_code (repeatable).")
@click.option("--correlation-id", "correlation_ids", multiple=True,
              help="Dead letters of this correlation id (repeatable).")
@click.option("--model", "models", multiple=True, help="Dead letters of this model (repeatable).")
@click.option("--all", "everything", is_flag=True, help="Every dead letter of a request.")
@click.option("--rate", default=f"{DEFAULT_RATE:g}/s", show_default=True,
              help="At most this many records a second (N, N/s or N/min).")
@click.option("--again", is_flag=True,
              help="Also send dead letters the replay ledger says were sent before.")
@click.option("--dry-run", is_flag=True, help="Only say what would be sent.")
def replay(offsets: tuple[str, ...], error_codes: tuple[str, ...],
           correlation_ids: tuple[str, ...], models: tuple[str, ...], everything: bool,
           rate: str, again: bool, dry_run: bool) -> None:
    """Send chosen dead letters back to the requests topic, as their sender sent them.

    Each goes with its own key, value and headers (correlation id, reply topic, model, …;
    the dlq_* headers removed and `replayed_from: DLQ/PARTITION@OFFSET` added), at most
    RATE a second, and is recorded in the replay ledger (PREFIX inference.dlq.replays):
    a dead letter recorded there is not sent again unless --again. Only copies of requests
    are sent; criteria of different options must all hold.
    """
    try:
        selection = Selection(
            frozenset(parse_position(o) for o in offsets), frozenset(error_codes),
            frozenset(correlation_ids), frozenset(models), everything,
        )
        pacer = Pacer(parse_rate(rate))
    except Refusal as exc:
        raise click.BadParameter(str(exc)) from None
    if selection.empty:
        raise click.UsageError(
            "choose what to send: --offset, --error-code, --correlation-id, --model or --all"
        )
    settings = _settings()
    _logging_to_stderr(settings, at_least="CRITICAL")  # what goes wrong is said in lines
    _run(_replay(settings, selection, pacer, again, dry_run), settings)


async def _replay(settings: ModelbusSettings, selection: Selection, pacer: Pacer, again: bool,
                  dry_run: bool) -> None:
    from .dlq_io import (
        existing_topics,
        provide_replay_topics,
        read_dead_letters,
        read_ledger,
        send_again,
    )

    topics = settings.topics
    if not dry_run:
        await provide_replay_topics(settings)
    found = await read_dead_letters(settings, keep_value=selection.chooses)
    ledger = await read_ledger(settings)
    decisions = decide(found.letters, selection, ledger, topics.dlq, topics.requests, again)
    chosen = [d.letter for d in decisions if d.verdict is Verdict.REPLAY]
    for decision in decisions:
        if decision.verdict is not Verdict.REPLAY:
            _out(f"skipped   {decision.letter.where}  {decision.verdict.value}: {decision.why}")
    for bad in found.poison:  # nothing of it can be read: it is never sent
        if selection.everything or {(bad.partition, bad.offset), (None, bad.offset)} & (
            selection.positions
        ):
            _out(f"skipped   {bad.partition}@{bad.offset}  undecodable: {bad.reason}")
    present = await existing_topics(settings)
    for letter in chosen:
        reply_to = letter.headers.get("reply_to")
        if reply_to and reply_to not in present:
            _out(f"note      {letter.where}  its reply topic {reply_to} is gone: the answer "
                 "goes nowhere anyone reads")
    if dry_run:
        for letter in chosen:
            _out(f"would send {letter.where}  {_about(letter)}")
        click.echo(_summary(decisions, 0, dry_run=True), err=True)
        return

    done: list[DeadLetter] = []

    def sent(letter: DeadLetter, where: Sent) -> None:
        done.append(letter)
        _out(f"replayed  {letter.where}  {_about(letter)} -> "
             f"{topics.requests}/{where.partition}@{where.offset}")

    try:
        await send_again(settings, chosen, pacer, sent)
    except PublishFailed as exc:
        failed = chosen[len(done)]
        raise click.ClickException(
            f"{failed.where} could not be sent again or recorded: {exc.reason}; "
            f"{_summary(decisions, len(done))}"
        ) from None
    click.echo(_summary(decisions, len(done)), err=True)


def _about(letter: DeadLetter) -> str:
    parts = [letter.code]
    if letter.model:
        parts.append(f"model {letter.model}")
    if letter.correlation_id:
        parts.append(f"correlation_id {letter.correlation_id}")
    return ", ".join(parts)


def _summary(decisions: Iterable[Decision], sent: int, dry_run: bool = False) -> str:
    counts: dict[Verdict, int] = {}
    for decision in decisions:
        counts[decision.verdict] = counts.get(decision.verdict, 0) + 1
    head = (f"{counts.get(Verdict.REPLAY, 0)} would be sent" if dry_run
            else f"{sent} of {counts.get(Verdict.REPLAY, 0)} sent")
    rest = [f"{n} {verdict.value}" for verdict, n in counts.items()
            if verdict is not Verdict.REPLAY]
    if counts.get(Verdict.REPLAYED_BEFORE):
        rest.append("--again sends those replayed before")
    if not counts:
        rest.append("no dead letter is chosen")
    return head + (f" ({'; '.join(rest)})" if rest else "")
