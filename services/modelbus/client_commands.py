"""CLI commands for users of a running modelbus: predict, catalog, results."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
from aiokafka.errors import KafkaError

from modelbus_contract.errors import ModelbusError
from modelbus_contract.messages import CatalogEntry, Parameter
from modelbus_contract.settings import ModelbusSettings

from .cli_settings import load_settings
from .client import AsyncModelbusClient
from .table_files import TableFileError, read_table, render, write_table

T = TypeVar("T")


def _logging_to_stderr(settings: ModelbusSettings, at_least: str = "DEBUG") -> None:
    """Our JSON log lines on stderr (stdout is the command's output); aiokafka stays quiet."""
    from modelbus_delivery.logs import configure_logging

    def number(name: str) -> int:
        value = logging.getLevelName(name.upper())
        return value if isinstance(value, int) else logging.INFO

    configure_logging(logging.getLevelName(max(number(settings.log_level), number(at_least))))
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
@click.option("--model", required=True, help="Registered model name.")
@click.option("--version", "version", default=None, help="Version number or @alias.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Write the result to .csv, .parquet or .arrow instead of printing it.")
@click.argument("input_file", type=click.Path(path_type=Path))
def predict(model: str, version: str | None, timeout: float, output: Path | None,
            input_file: Path) -> None:
    """Send INPUT_FILE (.csv, .parquet or .arrow) to MODEL and print or save the result."""
    settings = _settings()
    _logging_to_stderr(settings, at_least="WARNING")
    try:
        table = read_table(input_file)
    except TableFileError as exc:
        raise click.ClickException(str(exc)) from None

    async def call() -> Any:
        async with AsyncModelbusClient(settings=settings) as client:
            return await client.predict(model, table, version=version, timeout=timeout)

    result = _run(call(), settings)
    if output is None:
        click.echo(render(result))
        return
    try:
        write_table(result, output)
    except (TableFileError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{result.num_rows} rows written to {output}")


def _params(params: list[Parameter]) -> str:
    return ", ".join(
        f"{p.name}:{p.type or '?'}" + (f"[{p.semtype}]" if p.semtype else "") for p in params
    )


def _line(entry: CatalogEntry) -> str:
    aliases = f" @{',@'.join(entry.aliases)}" if entry.aliases else ""
    problems = f"  problems: {'; '.join(entry.problems)}" if entry.problems else ""
    return (
        f"{entry.name}/{entry.version}{aliases}  {entry.status}  "
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
