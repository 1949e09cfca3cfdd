"""The conventions of the ``modelbus`` command: ``--version``, ``-h``, ``-b``/``-X`` on
every client command, ``--log-format``, a warning per unknown ``MODELBUS_*`` variable at
start, and settings errors naming the variable (click's runner, no broker)."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from modelbus.cli import main
from modelbus.stack.runner import service_argv
from modelbus_client.cli.kafka_options import kafka_options
from modelbus_client.cli.settings import load_settings


@click.command("show-settings")
@kafka_options
def show_settings() -> None:
    """What a client command's settings are (a stand-in for predict, tail, …)."""
    settings = load_settings()
    click.echo(f"servers={settings.kafka_bootstrap_servers}")
    click.echo(f"protocol={settings.kafka_security_protocol}")
    click.echo(f"client_id={settings.kafka_client_id}")
    click.echo(f"log_format={settings.log_format}")


# The modelbus group with the stand-in added (the real one is left as it is).
modelbus = copy.copy(main)
modelbus.commands = {**main.commands, "show-settings": show_settings}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("MODELBUS_"):
            monkeypatch.delenv(name)


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(modelbus, list(args), env=env)


def test_version_prints_the_installed_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert re.fullmatch(r"modelbus \S+\n", result.stdout), result.stdout


def test_h_is_help() -> None:
    assert "Usage:" in run("-h").stdout
    assert "-b, --bootstrap-servers" in run("predict", "-h").stdout


def test_b_and_x_override_the_environment() -> None:
    result = run(
        "show-settings", "-X", "security.protocol=ssl", "-X", "client.id=cli",
        "-b", "cli-broker:9093",
        env={"MODELBUS_KAFKA_BOOTSTRAP_SERVERS": "env-broker:9092"},
    )
    assert result.exit_code == 0, result.output
    assert "servers=cli-broker:9093\nprotocol=SSL\nclient_id=cli\n" in result.stdout


def test_b_wins_over_x_bootstrap_servers_in_either_order() -> None:
    for args in (["-b", "b:1", "-X", "bootstrap.servers=x:1"],
                 ["-X", "bootstrap.servers=x:1", "-b", "b:1"]):
        assert "servers=b:1" in run("show-settings", *args).stdout


def test_an_unknown_property_is_one_error_line() -> None:
    result = run("show-settings", "-X", "ssl.ca.locaton=/ca.pem")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: -X ssl.ca.locaton: not a Kafka client property modelbus can set "
        "(did you mean ssl.ca.location?)\n"
    )


def test_every_client_command_takes_b_and_x() -> None:
    for command in (["predict"], ["results"], ["catalog"], ["topics", "plan"],
                    ["topics", "apply"], ["topics", "check"], ["topics", "prune-replies"],
                    ["tail"], ["dlq", "list"], ["dlq", "replay"]):
        text = run(*command, "--help").stdout
        assert "-b, --bootstrap-servers" in text and "-X KEY=VALUE" in text, command


def test_an_unknown_variable_is_warned_about_once_at_start() -> None:
    result = run("show-settings", env={"MODELBUS_KAFKA_BOOTSTRAP_SERVER": "typo:9092"})
    assert result.exit_code == 0
    assert result.stderr == (
        "modelbus: warning: MODELBUS_KAFKA_BOOTSTRAP_SERVER is not a modelbus variable and "
        "is ignored (did you mean MODELBUS_KAFKA_BOOTSTRAP_SERVERS?)\n"
    )
    assert "servers=localhost:9092" in result.stdout  # ignored indeed


def test_the_stack_s_services_do_not_repeat_the_warning() -> None:
    assert "--no-env-warnings" in service_argv("worker")
    result = run("--no-env-warnings", "show-settings", env={"MODELBUS_XYZZY": "1"})
    assert result.exit_code == 0 and result.stderr == ""


def test_a_bad_variable_is_one_line_naming_it() -> None:
    result = run("show-settings", env={"MODELBUS_WORKER_MAX_IN_FLIGHT": "abc"})
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: MODELBUS_WORKER_MAX_IN_FLIGHT: Input should be a valid integer, unable to "
        "parse string as an integer (got 'abc')\n"
    )


def test_a_bad_option_value_is_named_by_the_option() -> None:
    result = run("show-settings", "-X", "request.timeout.ms=soon")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: -X request.timeout.ms: Input should be")


def test_log_format_comes_from_the_option_over_the_variable() -> None:
    env = {"MODELBUS_LOG_FORMAT": "json"}
    assert "log_format=json" in run("show-settings", env=env).stdout
    assert "log_format=console" in run("--log-format", "console", "show-settings", env=env).stdout
    assert run("--log-format", "fancy", "show-settings").exit_code == 2


def test_up_refuses_a_bad_worker_variable_before_starting_anything(tmp_path: Path) -> None:
    data = tmp_path / "stack"
    result = run("up", "--data-dir", str(data), env={"MODELBUS_WORKER_CPUS": "many"})
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: MODELBUS_WORKER_CPUS: Input should be a valid number, unable to parse string "
        "as a number (got 'many')\n"
    )
    assert not data.exists()
