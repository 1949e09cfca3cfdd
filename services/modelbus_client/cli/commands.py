"""CLI commands for users of a running modelbus: predict, catalog, results."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from aiokafka.errors import KafkaError
from tqdm import tqdm

from modelbus_contract.errors import ModelbusError
from modelbus_contract.lanes import LANES, Lane
from modelbus_contract.messages import CatalogEntry, Parameter
from modelbus_contract.settings import ModelbusSettings

from ..async_client import AsyncModelbusClient
from ..chunked_predict import DEFAULT_WINDOW
from ..progress import Progress
from .kafka_options import kafka_options
from .predict_spool import Spool
from .settings import load_settings
from .table_files import TableFileError, read_table, render

if TYPE_CHECKING:
    from .file_predict import FileJob, JobReport

T = TypeVar("T")


def _logging_to_stderr(settings: ModelbusSettings, at_least: str = "DEBUG") -> None:
    """Our log lines on stderr (stdout is the command's output); aiokafka stays quiet."""
    from modelbus_delivery.logs import configure_logging

    def number(name: str) -> int:
        value = logging.getLevelName(name.upper())
        return value if isinstance(value, int) else logging.INFO

    configure_logging(
        logging.getLevelName(max(number(settings.log_level), number(at_least))),
        settings.log_format,
    )
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def _settings() -> ModelbusSettings:
    # The commands report connection failures themselves, in one line.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    return load_settings()


def _run(coro: Coroutine[Any, Any, T], settings: ModelbusSettings) -> T:
    """Run a client coroutine; every failure becomes one readable line and exit 1."""
    try:
        return asyncio.run(coro)
    except ModelbusError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    except (KafkaError, OSError) as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}"
        ) from None


@click.command()
@kafka_options
@click.option("--model", required=True, help="Registered model name.")
@click.option("--version", "version", default=None, help="Version number or @alias.")
@click.option("--timeout", default=60.0, show_default=True,
              help="Seconds to wait for each request (a chunk of the input).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Write the result to .csv, .parquet or .arrow instead of printing it; "
              "inputs of any size are then sent in chunks, and an interrupted run resumes.")
@click.option("--errors", "errors_file", type=click.Path(path_type=Path), default=None,
              help="With -o: write the input rows that failed, with their error, to this file.")
@click.option("--window", default=DEFAULT_WINDOW, show_default=True,
              type=click.IntRange(min=1), help="Chunks in flight at once.")
@click.option("--resume", is_flag=True,
              help="With -o: only continue an interrupted run (fail if there is none).")
@click.option("--lane", type=click.Choice(LANES), default=None,
              help="The requests' lane: bulk yields to interactive requests. Default: bulk "
              "with -o, interactive without.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.argument("input_file", type=click.Path(path_type=Path))
def predict(model: str, version: str | None, timeout: float, output: Path | None,
            errors_file: Path | None, window: int, resume: bool, lane: Lane | None,
            quiet: bool, input_file: Path) -> None:
    """Send INPUT_FILE (.csv, .parquet or .arrow) to MODEL and print or save the result.

    With -o, the rows are sent in chunks that fit a Kafka record, with WINDOW chunks in
    flight, and the answers are written in input order; a run that is interrupted is
    continued by the same command (answered chunks are kept in OUTPUT.parts/). Rows of a
    failed chunk are null in the output and reported; the exit code is 1 when any failed.
    With -o the requests go to the bulk lane (workers answer interactive requests first)
    unless --lane says otherwise.
    """
    settings = _settings()
    _logging_to_stderr(settings, at_least="WARNING")
    if output is None:
        if errors_file is not None or resume:
            raise click.UsageError("--errors and --resume need -o/--output")
        _predict_to_screen(settings, model, version, timeout, window, input_file,
                           lane or "interactive")
        return
    from .file_predict import FileJob

    job = FileJob(model, version, input_file, output, errors_file, window, timeout, resume,
                  lane or "bulk")
    _predict_to_file(settings, job, quiet)


class ProgressLine:
    """One line on stderr per progress notice, rewritten in place on a terminal."""

    def __init__(self) -> None:
        self._open = False

    def __call__(self, progress: Progress) -> None:
        if sys.stderr.isatty():
            click.echo(f"\r\033[K{progress.describe()}", err=True, nl=False)
            self._open = True
        else:
            click.echo(progress.describe(), err=True)

    def end(self) -> None:
        if self._open:
            click.echo("", err=True)
            self._open = False


def _predict_to_screen(settings: ModelbusSettings, model: str, version: str | None,
                       timeout: float, window: int, input_file: Path, lane: Lane) -> None:
    try:
        table = read_table(input_file)
    except TableFileError as exc:
        raise click.ClickException(str(exc)) from None

    line = ProgressLine()

    async def call() -> Any:
        async with AsyncModelbusClient(settings=settings, on_progress=line) as client:
            return await client.predict_table(model, table, version, timeout, window, lane)

    try:
        answer = _run(call(), settings)
    finally:
        line.end()
    click.echo(render(answer))


def _predict_to_file(settings: ModelbusSettings, job: FileJob, quiet: bool) -> None:
    from .file_predict import JobError, open_job, run_job
    from .predict_spool import SpoolMismatch
    from .table_files import check_output_suffix

    try:
        check_output_suffix(job.output)
        if job.errors is not None:
            check_output_suffix(job.errors)
        source, spool = open_job(job, settings.max_message_bytes, settings.max_request_rows)
    except (TableFileError, JobError) as exc:
        raise click.ClickException(str(exc)) from None
    except SpoolMismatch as exc:
        raise click.ClickException(
            f"{Spool.beside(job.output)} holds a run with another {exc}: delete it, or "
            "choose another output"
        ) from None
    bar = tqdm(
        total=source.total_rows, initial=spool.done_rows, unit="rows", unit_scale=True,
        disable=quiet or not sys.stderr.isatty(), file=sys.stderr, dynamic_ncols=True,
        desc=job.model,
    )
    try:
        report = _run(run_job(job, settings, source, spool, bar), settings)
    except KeyboardInterrupt:
        bar.close()  # before the line below
        click.echo(
            f"interrupted: {spool.done_rows:,} rows answered so far are kept in "
            f"{spool.directory}; run the same command again to continue", err=True,
        )
        sys.exit(130)
    except TableFileError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        bar.close()
    click.echo(_summary(report, job))
    for line in _failure_lines(report):
        click.echo(line, err=True)
    if report.failed:
        sys.exit(1)


def _summary(report: JobReport, job: FileJob) -> str:
    rate = report.sent_rows / report.seconds if report.seconds > 0 else 0.0
    done = report.total_rows - report.failed_rows
    head = f"{done:,} of {report.total_rows:,} rows answered in {report.seconds:.1f} s"
    if report.sent_rows:
        head += f" ({report.sent_rows:,} rows sent by this run, {rate:,.0f} rows/s)"
    if report.output_written:
        head += f", written to {job.output}"
    if not report.failed:
        return head
    codes = sorted({f.code for f in report.failed})
    tail = (f"; {report.failed_rows:,} rows in {len(report.failed)} chunks failed "
            f"({', '.join(codes)})")
    if job.errors is not None:
        tail += f", written to {job.errors}"
    return head + tail + f"; run the same command again to retry them ({report.spool})"


MAX_FAILURE_LINES = 20


def _failure_lines(report: JobReport) -> list[str]:
    lines = [
        f"rows {f.start:,} to {f.stop - 1:,}: {f.code}: {f.message[:300]}"
        for f in report.failed[:MAX_FAILURE_LINES]
    ]
    if len(report.failed) > MAX_FAILURE_LINES:
        lines.append(f"… and {len(report.failed) - MAX_FAILURE_LINES} more failed chunks")
    return lines


def _params(params: list[Parameter]) -> str:
    return ", ".join(
        f"{p.name}:{p.type or '?'}"
        + (f"[{p.dtype}]{p.shape}" if p.dtype is not None else "")
        + (f"[{p.semtype}]" if p.semtype else "")
        for p in params
    )


def _serving(entry: CatalogEntry) -> str:
    """``  prepared (host:12)``, ``  preparing: images (host:12)``, ``  failed: code: why``."""
    serving = entry.serving
    if serving is None:
        return ""
    detail = (f": {serving.error_code}: {serving.error_message or ''}".rstrip(": ")
              if serving.error_code else f": {serving.step}" if serving.step else "")
    return f"  {serving.state}{detail} ({serving.worker})"


def _line(entry: CatalogEntry) -> str:
    aliases = f" @{',@'.join(entry.aliases)}" if entry.aliases else ""
    problems = f"  problems: {'; '.join(entry.problems)}" if entry.problems else ""
    return (
        f"{entry.name}/{entry.version}{aliases}  {entry.status}{_serving(entry)}  "
        f"in({_params(entry.inputs)}) -> out({_params(entry.outputs)}){problems}"
    )


def list_catalog(watch: bool, as_json: bool) -> None:
    """Print the model catalog (name/version, status, inputs and outputs)."""
    settings = _settings()
    _logging_to_stderr(settings, at_least="WARNING")  # a listing: only what went wrong

    def show(key: str, entry: CatalogEntry | None) -> None:
        if as_json:
            click.echo(entry.model_dump_json() if entry else json.dumps({"removed": key}))
        else:
            click.echo(_line(entry) if entry else f"{key}  removed")

    async def listing() -> None:
        client = AsyncModelbusClient(settings=settings)
        if not watch:
            for entry in await client.catalog():
                show(entry.key, entry)
            return
        async for change in client.watch_catalog():
            show(change.key, change.entry)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends --watch
        _run(listing(), settings)


@click.command()
@kafka_options
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Directory for the Parquet files (NAME/vVERSION/part-*.parquet).")
@click.option("--group", default=None, help="Consumer group (default: PREFIXresults-parquet).")
@click.option("--batch-size", default=1000, show_default=True)
@click.option("--flush-interval", default=5.0, show_default=True, help="Seconds per file.")
@click.option("--max-idle", type=float, default=None,
              help="Exit after this many seconds without a new result.")
def results(out_dir: Path, group: str | None, batch_size: int, flush_interval: float,
            max_idle: float | None) -> None:
    """Write the results topic to Parquet files, with correlation id and model version."""
    from .results_writer import write_results

    settings = _settings()
    _logging_to_stderr(settings)
    group_id = group or f"{settings.topic_prefix}results-parquet"
    try:
        count = _run(
            write_results(settings, out_dir, group_id, batch_size, flush_interval, max_idle),
            settings,
        )
    except KeyboardInterrupt:
        return
    click.echo(f"{count} results written under {out_dir}")
