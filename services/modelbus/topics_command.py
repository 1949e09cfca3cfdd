"""``modelbus topics``: print, make and check the topic plan, and prune the reply topics of
gone clients (registered on the main CLI group by ``modelbus.cli``).

``plan`` needs no broker. ``apply`` makes the missing topics and reports how the existing
ones differ from the plan; ``check`` only reports (exit 1 on a difference). Neither ever
changes an existing topic: the fixes are printed as Kafka tool commands. ``prune-replies``
lists (``--yes``: deletes) the private reply topics whose client is gone
(``modelbus.reply_pruning`` has the rule). The plan, the findings and the rule are pure
modules; the Kafka calls are ``modelbus_delivery.topic_admin``'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import click
from aiokafka.errors import KafkaError

from modelbus_client.cli.kafka_options import kafka_options
from modelbus_client.cli.settings import load_settings
from modelbus_contract.channels import TopicSpec, allowed_reply_pattern, private_reply_pattern
from modelbus_contract.errors import ModelbusError
from modelbus_contract.settings import ModelbusSettings
from modelbus_contract.topic_plan import plan
from modelbus_delivery.kafka_config import connection_options
from modelbus_delivery.topic_admin import (
    create_missing,
    delete_topics,
    list_topic_names,
    newest_record_times,
    observe_topics,
)
from modelbus_delivery.topic_diff import Finding, diff
from modelbus_worker.quantities import parse_duration

from .reply_pruning import Decision, decide
from .topic_plan_text import AdminTarget, create_command, fix, plan_warnings, table

T = TypeVar("T")

# How long `apply` waits for the topics it made to be described with their partitions.
CREATED_VISIBLE_WITHIN_S = 15.0


def _settings() -> ModelbusSettings:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # failures: one line of ours
    return load_settings()


def _run(coro: Coroutine[Any, Any, T], settings: ModelbusSettings) -> T:
    try:
        return asyncio.run(coro)
    except ModelbusError as exc:
        raise click.ClickException(exc.message) from None
    except (KafkaError, OSError) as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}"
        ) from None


def planned(settings: ModelbusSettings, reply_topics: tuple[str, ...]) -> list[TopicSpec]:
    """The plan with these shared reply topics, each one a topic the workers answer on
    and ``prune-replies`` never takes for a private one."""
    allowed = allowed_reply_pattern(settings.topic_prefix, settings.reply_to_pattern)
    private = private_reply_pattern(settings)
    for name in reply_topics:
        if name == settings.topics.results:
            continue
        if not allowed.fullmatch(name):
            raise click.BadParameter(
                f"workers refuse to answer on {name}: a reply topic's name matches "
                f"{allowed.pattern} (MODELBUS_REPLY_TO_PATTERN)", param_hint="--reply-topic",
            )
        if private.fullmatch(name):
            raise click.BadParameter(
                f"{name} is named like a client's private reply topic, which "
                "`topics prune-replies` deletes: give the shared one another name",
                param_hint="--reply-topic",
            )
    return plan(settings, reply_topics)


def _target(settings: ModelbusSettings, command_config: str | None) -> AdminTarget:
    if command_config is None and settings.kafka_security_protocol != "PLAINTEXT":
        command_config = "client.properties"  # the tools' own security settings
    return AdminTarget(settings.kafka_bootstrap_servers, command_config)


_reply_topic = click.option(
    "--reply-topic", "reply_topics", multiple=True, metavar="TOPIC",
    help="A team's shared reply topic to plan too (repeatable; MODELBUS_CLIENT_REPLY_TOPIC "
    "is planned when set).",
)
_command_config = click.option(
    "--command-config", default=None, metavar="FILE",
    help="The Kafka tools' --command-config (the admin client's security settings) in the "
    "printed commands; default client.properties on a secured cluster.",
)


@click.group("topics")
def topics() -> None:
    """Print, make and check the Kafka topics modelbus needs (the topic plan)."""


@topics.command("plan")
@kafka_options
@_reply_topic
@_command_config
def plan_command(reply_topics: tuple[str, ...], command_config: str | None) -> None:
    """Print every topic with its partitions, replicas and configs, and the kafka-topics.sh
    commands that make them (no broker is asked)."""
    settings = _settings()
    specs = planned(settings, reply_topics)
    target = _target(settings, command_config)
    for line in [*table(specs), *plan_warnings(specs), ""]:
        click.echo(line)
    for spec in specs:
        click.echo(create_command(spec, target))


def _report(specs: list[TopicSpec], findings: list[Finding], target: AdminTarget,
            created: list[str]) -> int:
    """Print a line per topic and finding (with its fix); the number of differences.
    ``specs`` may leave out topics told about already."""
    by_topic: dict[str, list[Finding]] = {}
    for finding in findings:
        by_topic.setdefault(finding.topic, []).append(finding)
    differences = 0
    for spec in specs:
        found = by_topic.get(spec.name, [])
        if not any(f.is_difference for f in found):
            click.echo(f"{'created' if spec.name in created else 'ok':<8} {spec.name}")
        for finding in found:
            differences += finding.is_difference
            click.echo(f"{'differs' if finding.is_difference else 'note':<8} {finding.line()}")
            if (remedy := fix(finding, spec, target)) is not None:
                click.echo(f"{'':<8}   {remedy}")
    return differences


@topics.command("apply")
@kafka_options
@_reply_topic
@_command_config
def apply_command(reply_topics: tuple[str, ...], command_config: str | None) -> None:
    """Make the planned topics that are missing; report how existing ones differ from the
    plan (never changing them). Exit 1 when a topic is refused or differs."""
    settings = _settings()
    specs = planned(settings, reply_topics)
    kafka = connection_options(settings)

    async def apply() -> tuple[list[str], dict[str, str], list[Finding]]:
        created, refused = await create_missing(kafka, specs)
        names = [s.name for s in specs]
        observed = await observe_topics(kafka, names)
        # A cluster may describe a topic made a moment ago only once its leaders are elected.
        deadline = time.monotonic() + CREATED_VISIBLE_WITHIN_S
        while time.monotonic() < deadline and any(
            name not in observed or not observed[name].partitions for name in created
        ):
            await asyncio.sleep(0.5)
            observed = await observe_topics(kafka, names)
        return created, refused, diff(specs, observed)

    created, refused, findings = _run(apply(), settings)
    for name, why in sorted(refused.items()):
        click.echo(f"{'refused':<8} {name}: {why}")
    differences = _report(
        [s for s in specs if s.name not in refused], findings, _target(settings, command_config),
        created,
    )
    if refused or differences:
        raise click.ClickException(
            f"{len(refused)} topic(s) refused, {differences} difference(s) from the plan "
            "(nothing existing was changed)"
        )


@topics.command("check")
@kafka_options
@_reply_topic
@_command_config
def check_command(reply_topics: tuple[str, ...], command_config: str | None) -> None:
    """Compare the topics with the plan; exit 1 when one is missing or differs (partitions,
    replicas, configs, or a min.insync.replicas above its replicas)."""
    settings = _settings()
    specs = planned(settings, reply_topics)
    kafka = connection_options(settings)

    async def check() -> list[Finding]:
        return diff(specs, await observe_topics(kafka, [s.name for s in specs]))

    differences = _report(specs, _run(check(), settings), _target(settings, command_config), [])
    if differences:
        raise click.ClickException(f"{differences} difference(s) from the plan")


async def prune_replies(
    settings: ModelbusSettings, idle_s: float, grace_s: float, delete: bool, *,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[list[Decision], dict[str, str]]:
    """Decide about every private reply topic (and delete the gone ones when ``delete``):
    the decisions and the deletions the broker refused. ``now`` (seconds since the epoch)
    and ``sleep`` (the grace wait) are injected for tests."""
    kafka = connection_options(settings)
    private = private_reply_pattern(settings)
    candidates = [t for t in await list_topic_names(kafka) if private.fullmatch(t)]
    newest = await newest_record_times(kafka, candidates)
    empty = [t for t in candidates if t in newest and newest[t] is None]
    still_empty: list[str] = []
    if empty:
        await sleep(grace_s)
        again = await newest_record_times(kafka, empty)
        still_empty = [t for t in empty if t in again and again[t] is None]
        newest |= {t: again[t] for t in empty if t in again}
    decisions = decide(candidates, newest, still_empty, int(now() * 1000), idle_s)
    gone = [d.topic for d in decisions if d.delete]
    refused = await delete_topics(kafka, gone) if delete and gone else {}
    return decisions, refused


def _duration(value: str, option: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@topics.command("prune-replies")
@kafka_options
@click.option("--idle", default="1h", show_default=True,
              help="A private reply topic whose newest record is older than this is its "
              "gone client's (at least twice MODELBUS_CLIENT_REPLY_HEARTBEAT_S).")
@click.option("--grace", default="30s", show_default=True,
              help="How long an empty private reply topic is watched for a first record.")
@click.option("--yes", is_flag=True, help="Delete them; without it, only list them.")
def prune_replies_command(idle: str, grace: str, yes: bool) -> None:
    """List (--yes: delete) the private reply topics (PREFIXreplies.<32 hex>) of clients
    that are gone: no record, not even a client's sign of life, for --idle."""
    settings = _settings()
    idle_s, grace_s = _duration(idle, "--idle"), _duration(grace, "--grace")
    if idle_s < 2 * settings.client_reply_heartbeat_s:
        raise click.BadParameter(
            f"{idle} is less than twice the clients' heartbeat "
            f"(MODELBUS_CLIENT_REPLY_HEARTBEAT_S={settings.client_reply_heartbeat_s:g}s): a "
            "live client's topic could look gone", param_hint="--idle",
        )
    decisions, refused = _run(prune_replies(settings, idle_s, grace_s, yes), settings)
    verb = "deleted" if yes else "would delete"
    for d in decisions:
        action = (verb if d.topic not in refused else "refused") if d.delete else "keep"
        click.echo(f"{action:<12} {d.topic}  {refused.get(d.topic, d.why)}")
    gone = sum(d.delete for d in decisions)
    if refused:
        raise click.ClickException(f"the broker refused to delete {len(refused)} topic(s)")
    if not yes and gone:
        click.echo(f"(nothing deleted: --yes deletes these {gone})")
    elif not decisions:
        click.echo("no private reply topics")
