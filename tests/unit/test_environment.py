"""The ``MODELBUS_*`` variables: a misspelt one is named with the closest real one, the list
of known ones matches what the settings classes read, and a bad value is reported under
the variable it came from (never showing a secret)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelbus_contract.environment import (
    OTHER_VARIABLES,
    WORKER_VARIABLES,
    known_variables,
    settings_error_lines,
    unknown_variable_warnings,
    unknown_variables,
    variable_names,
)
from modelbus_contract.interpreters import InterpreterSettings
from modelbus_contract.settings import ModelbusSettings
from modelbus_worker.settings import ContainerSettings, PipIndexSettings

REPO = Path(__file__).resolve().parents[2]


def test_a_misspelt_variable_is_named_with_the_closest_known_one() -> None:
    environ = {
        "MODELBUS_KAFKA_BOOTSTRAP_SERVER": "broker:9092",
        "MODELBUS_WORKER_CPU": "2",
        "MODELBUS_LOGLEVEL": "DEBUG",
        "MODELBUS_NONSENSE_XYZZY": "1",
        "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": "broker:9092",  # known
        "modelbus_log_level": "INFO",  # known: the settings read names in any case
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",  # not ours
        "PATH": "/usr/bin",
    }
    assert unknown_variables(environ) == [
        ("MODELBUS_KAFKA_BOOTSTRAP_SERVER", "MODELBUS_KAFKA_BOOTSTRAP_SERVERS"),
        ("MODELBUS_LOGLEVEL", "MODELBUS_LOG_LEVEL"),
        ("MODELBUS_NONSENSE_XYZZY", None),
        ("MODELBUS_WORKER_CPU", "MODELBUS_WORKER_CPUS"),
    ]


def test_one_warning_line_per_unknown_variable() -> None:
    assert unknown_variable_warnings({
        "MODELBUS_TOPIC_PREFX": "x.", "MODELBUS_XYZZY": "1", "MODELBUS_TOPIC_PREFIX": "y.",
    }) == [
        "modelbus: warning: MODELBUS_TOPIC_PREFX is not a modelbus variable and is ignored "
        "(did you mean MODELBUS_TOPIC_PREFIX?)",
        "modelbus: warning: MODELBUS_XYZZY is not a modelbus variable and is ignored",
    ]
    assert unknown_variable_warnings({"MODELBUS_LOG_FORMAT": "json", "HOME": "/root"}) == []


def test_the_known_variables_are_what_every_settings_class_reads() -> None:
    read = (variable_names(ModelbusSettings) | variable_names(InterpreterSettings)
            | variable_names(ContainerSettings) | variable_names(PipIndexSettings))
    assert "MODELBUS_MLFLOW_TRACKING_URI" in read and "MODELBUS_WORKER_PIP" not in read
    assert "MODELBUS_LOG_FORMAT" in read
    ours = {name for name in read if name.startswith("MODELBUS_")}
    assert ours <= known_variables()
    # The worker's list names only what its classes read (nothing stale).
    worker = variable_names(ContainerSettings) | variable_names(PipIndexSettings)
    assert WORKER_VARIABLES.issubset(worker)
    assert known_variables() == ours | set(OTHER_VARIABLES)


def test_every_variable_the_docs_and_deploy_files_name_is_known() -> None:
    files = [REPO / "README.md", REPO / "docker-compose.yml",
             *(p for p in (REPO / "deploy").rglob("*") if p.is_file()),
             *(REPO / "docs").rglob("*.md")]
    # Whole names only (`MODELBUS_WORKER_…` and `MODELBUS_PIP_` are prefixes), and not the
    # misspelt one of the warning's example.
    name = re.compile(r"MODELBUS_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_]| is not a modelbus variable)")
    named = {
        (path.relative_to(REPO).as_posix(), found)
        for path in files
        for found in name.findall(path.read_text(errors="replace"))
    }
    assert {(path, name) for path, name in named if name not in known_variables()} == set()


def _error(**values: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        ModelbusSettings(**values)  # type: ignore[arg-type]
    return caught.value


def test_a_bad_value_is_reported_under_its_variable_with_the_value() -> None:
    assert settings_error_lines(_error(worker_max_in_flight="abc"), {}) == [
        "MODELBUS_WORKER_MAX_IN_FLIGHT: Input should be a valid integer, unable to parse "
        "string as an integer (got 'abc')",
    ]


def test_a_secret_value_is_never_shown() -> None:
    [line] = settings_error_lines(_error(kafka_sasl_password=["hunter22"]), {})
    assert line.startswith("MODELBUS_KAFKA_SASL_PASSWORD: ") and "hunter22" not in line


def test_a_value_given_by_an_option_is_reported_under_the_option() -> None:
    [line] = settings_error_lines(
        _error(kafka_request_timeout_ms="soon"), {},
        named={"kafka_request_timeout_ms": "-X request.timeout.ms"},
    )
    assert line.startswith("-X request.timeout.ms: Input should be a valid integer")
    assert line.endswith("(got 'soon')")


def test_a_value_outside_a_choice_is_reported_with_the_value() -> None:
    [line] = settings_error_lines(_error(kafka_security_protocol="TLS"), {})
    assert line.startswith("MODELBUS_KAFKA_SECURITY_PROTOCOL: Input should be 'PLAINTEXT'")
    assert line.endswith("(got 'TLS')")


class _Aliased(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELBUS_")

    port: int = Field(default=1, validation_alias=AliasChoices("OTHER_PORT", "MODELBUS_PORT"))


def test_an_aliased_setting_is_named_by_the_variable_that_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTHER_PORT", raising=False)
    monkeypatch.setenv("MODELBUS_PORT", "x")
    with pytest.raises(ValidationError) as caught:
        _Aliased()
    [line] = settings_error_lines(caught.value, {"MODELBUS_PORT": "x"})
    assert line.startswith("MODELBUS_PORT: Input should be a valid integer")
    assert variable_names(_Aliased) == {"OTHER_PORT", "MODELBUS_PORT"}


def test_a_rule_across_settings_names_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELBUS_TOPIC_MIN_INSYNC_REPLICAS", "3")
    monkeypatch.delenv("MODELBUS_TOPIC_REPLICATION_FACTOR", raising=False)
    with pytest.raises(ValidationError) as caught:
        ModelbusSettings()
    assert settings_error_lines(caught.value, {}) == [
        "MODELBUS_TOPIC_MIN_INSYNC_REPLICAS (3) is above MODELBUS_TOPIC_REPLICATION_FACTOR "
        "(1): every write (acks=all) would be refused",
    ]


def test_errors_of_the_worker_settings_name_their_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELBUS_WORKER_CPUS", "many")
    with pytest.raises(ValidationError) as caught:
        ContainerSettings()
    assert settings_error_lines(caught.value, {}) == [
        "MODELBUS_WORKER_CPUS: Input should be a valid number, unable to parse string as a "
        "number (got 'many')",
    ]
