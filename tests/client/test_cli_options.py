"""The ``modelbus`` command as a user runs it (a subprocess) against the session's broker:
``--version``, ``-b``/``-X`` over the environment, one warning for a misspelt variable, and
one error line for a bad value or an unknown property."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.integration

NOWHERE = "127.0.0.1:9"  # nothing listens: a command that used it could not list anything


def modelbus(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("MODELBUS_")}
    return subprocess.run(
        [sys.executable, "-m", "modelbus", *args],
        env={**clean, "MODELBUS_TOPIC_PREFIX": f"cli-options-{uuid.uuid4().hex[:12]}.", **env},
        capture_output=True, text=True, timeout=120,
    )


def test_version() -> None:
    done = modelbus("--version")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"modelbus \S+\n", done.stdout), done.stdout
    assert done.stderr == ""


def test_b_and_x_reach_the_broker_over_the_environment_with_one_warning(
    kafka_bootstrap: str,
) -> None:
    done = modelbus(
        "catalog", "-b", kafka_bootstrap, "-X", "client.id=modelbus-cli-test",
        "-X", "request.timeout.ms=20000",
        MODELBUS_KAFKA_BOOTSTRAP_SERVERS=NOWHERE,
        MODELBUS_KAFKA_BOOTSTRAP_SERVER=kafka_bootstrap,  # misspelt: ignored, warned about
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # a catalog of fresh topics is empty
    assert done.stderr == (
        "modelbus: warning: MODELBUS_KAFKA_BOOTSTRAP_SERVER is not a modelbus variable and "
        "is ignored (did you mean MODELBUS_KAFKA_BOOTSTRAP_SERVERS?)\n"
    )


def test_a_bad_value_and_an_unknown_property_are_one_line_each() -> None:
    bad = modelbus("catalog", MODELBUS_WORKER_MAX_IN_FLIGHT="abc")
    assert bad.returncode == 1
    assert bad.stderr == (
        "Error: MODELBUS_WORKER_MAX_IN_FLIGHT: Input should be a valid integer, unable to "
        "parse string as an integer (got 'abc')\n"
    )
    unknown = modelbus("predict", "-X", "sasl.usernme=svc", "--model", "m", "in.csv")
    assert unknown.returncode == 2
    assert unknown.stderr == (
        "Error: -X sasl.usernme: not a Kafka client property modelbus can set "
        "(did you mean sasl.username?)\n"
    )


def test_the_printed_topic_commands_name_the_servers_of_b() -> None:
    done = modelbus("topics", "plan", "-b", "kafka-1:9093")
    assert done.returncode == 0, done.stderr
    assert "kafka-topics.sh --bootstrap-server kafka-1:9093 --create" in done.stdout
