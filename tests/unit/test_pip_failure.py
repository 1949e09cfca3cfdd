"""Reading why ``pip download`` failed from its real ``-vv`` output (see pip_output/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelbus_worker.images.pip_failure import explain

SAMPLES = Path(__file__).parents[1] / "containers" / "pip_output"
WHERE = "no wheel for Python 3.11 / manylinux_2_36_x86_64"


def explained(sample: str) -> tuple[str, str, bool, str]:
    failure = explain((SAMPLES / sample).read_text(), "3.11", "manylinux_2_36_x86_64")
    return failure.kind, failure.decisive, failure.model_fault, failure.message


def test_a_requirement_with_only_a_source_distribution() -> None:
    kind, decisive, fault, message = explained("sdist_only.txt")
    assert (kind, fault) == ("no_wheel", True)
    assert decisive == f"docopt==0.6.2: {WHERE} (only a source distribution)"
    assert message == (
        f"{decisive}\npip: Could not find a version that satisfies the requirement "
        "docopt==0.6.2 (from versions: none)\nNo matching distribution found for docopt==0.6.2"
    )


def test_wheels_only_for_newer_pythons_name_them_and_requires_python() -> None:
    kind, decisive, fault, _ = explained("numpy_only_newer_python.txt")
    assert (kind, fault) == ("no_wheel", True)
    assert decisive == (
        f"numpy==2.5.5: {WHERE} (wheels only for cp312, cp313, cp314, cp315; "
        "Requires-Python >=3.12)"
    )


def test_wheels_only_for_older_pythons() -> None:
    kind, decisive, _, _ = explained("numpy_only_older_python.txt")
    assert (kind, decisive) == (
        "no_wheel", f"numpy==1.21.0: {WHERE} (wheels only for cp37, pp37, cp38, cp39)"
    )


def test_a_pure_wheel_that_requires_a_newer_python() -> None:
    kind, decisive, fault, _ = explained("requires_python.txt")
    assert (kind, fault) == ("requires_python", True)
    assert decisive == (
        "django==6.0: requires a different Python (Requires-Python >=3.12, the container "
        "runs 3.11)"
    )


def test_a_version_that_does_not_exist_lists_the_newest_ones() -> None:
    kind, decisive, fault, _ = explained("no_such_version.txt")
    assert (kind, fault) == ("no_version", True)
    assert decisive == (
        "requests==99.0: no matching version (pip: from versions: …, 2.32.4, 2.32.5, 2.33.0, "
        "2.33.1, 2.34.0.dev1, 2.34.0, 2.34.1, 2.34.2)"
    )


def test_conflicting_pins_quote_pips_causes() -> None:
    kind, decisive, fault, message = explained("conflict.txt")
    assert (kind, fault) == ("conflict", True)
    assert decisive == (
        "conflicting requirements: The user requested urllib3==1.20; requests 2.31.0 depends "
        "on urllib3<3 and >=1.21.1"
    )
    assert message.startswith(f"{decisive}\npip: Cannot install -r ")


def test_an_unreachable_index_is_not_the_models_fault() -> None:
    kind, decisive, fault, message = explained("network.txt")
    assert (kind, fault) == ("network", False)
    assert decisive == (
        "package index error: Could not fetch URL http://user:****@127.0.0.1:9/simple/"
        "docopt/: connection error: [Errno 111] Connection refused - skipping"
    )
    assert "s3cret" not in message


def test_credentials_the_index_refuses_are_not_the_models_fault() -> None:
    kind, decisive, fault, _ = explained("auth_refused.txt")
    assert (kind, fault) == ("network", False)
    assert decisive == (
        "package index error: Could not fetch URL http://builder:****@127.0.0.1:8080/"
        "simple/inhouse-scale/: 401 Client Error: Unauthorized for url: "
        "http://127.0.0.1:8080/simple/inhouse-scale/ - skipping"
    )


def test_a_project_no_index_has_is_the_models_fault_despite_the_404() -> None:
    kind, decisive, fault, _ = explained("no_such_project.txt")
    assert (kind, fault) == ("no_version", True)
    assert decisive == (
        "modelbus-no-such-package-4711==1.0: no matching version (pip: from versions: none)"
    )


@pytest.mark.parametrize(
    "line",
    [
        "HTTP error 401 while getting http://user:****@127.0.0.1:8080/simple/x/",
        "ERROR: 403 Client Error: Forbidden for url: https://example.org/simple/x/",
        "WARNING: Retrying (Retry(total=0)) after connection broken by 'ReadTimeoutError(...)'",
    ],
)
def test_refused_credentials_and_timeouts_are_network_failures(line: str) -> None:
    output = f"{line}\nERROR: No matching distribution found for x==1\n"
    assert explain(output, "3.11", "manylinux_2_36_x86_64").kind == "network"


def test_output_without_a_known_cause_is_unknown_with_pips_last_error() -> None:
    failure = explain("ERROR: Disk quota exceeded\n", "3.11", "manylinux_2_36_x86_64")
    assert (failure.kind, failure.decisive, failure.model_fault) == (
        "unknown", "Disk quota exceeded", False
    )
