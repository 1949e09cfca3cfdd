"""Pure requirement normalization, tags and platforms (no Docker)."""

from __future__ import annotations

import pytest

from modelbus_worker.images.requirements import (
    RequirementsError,
    depset_tag,
    normalize_requirements,
    pip_platforms,
    sanitize_tag_part,
)


def test_mlflow_becomes_skinny_with_same_specifier_and_runtime_needs_are_added() -> None:
    got = normalize_requirements(["mlflow==3.17.2", "scikit-learn==1.5.0"])
    assert got == ["mlflow-skinny==3.17.2", "pandas", "pyarrow", "scikit-learn==1.5.0"]


def test_comments_blanks_and_options_are_dropped_and_order_does_not_matter() -> None:
    a = normalize_requirements(
        ["# generated", "", "  numpy<3  # inline", "-r other.txt", "--index-url http://x", "Pandas"]
    )
    b = normalize_requirements(["pandas", "numpy<3"])
    assert a == b == ["mlflow-skinny", "numpy<3", "pandas", "pyarrow"]


def test_extras_and_markers_survive_but_mlflow_extras_do_not() -> None:
    got = normalize_requirements(
        ["mlflow[extras]>=3.3; python_version >= '3.10'", "requests[socks]"]
    )
    assert 'mlflow-skinny>=3.3; python_version >= "3.10"' in got
    assert "requests[socks]" in got


def test_existing_runtime_constraints_are_kept() -> None:
    got = normalize_requirements(["pyarrow==16.1.0", "mlflow-skinny==3.3.0", "pandas<3"])
    assert got == ["mlflow-skinny==3.3.0", "pandas<3", "pyarrow==16.1.0"]


@pytest.mark.parametrize("bad", ["not a requirement!!", "pkg @ https://example.com/p.whl"])
def test_unreadable_or_url_requirements_are_rejected(bad: str) -> None:
    with pytest.raises(RequirementsError):
        normalize_requirements([bad])


def test_depset_tag_depends_on_requirements_and_salt_only() -> None:
    reqs = normalize_requirements(["mlflow==3.17.2"])
    same = normalize_requirements(["pyarrow", "mlflow==3.17.2", "pandas"])
    assert depset_tag(reqs, "s") == depset_tag(same, "s")
    assert depset_tag(reqs, "s") != depset_tag(reqs, "t")
    assert depset_tag(reqs, "s").startswith("modelbus/depset:")
    assert len(depset_tag(reqs, "s").split(":")[1]) == 16


def test_names_become_valid_docker_name_parts() -> None:
    assert sanitize_tag_part("My Model/ÄÖ v2") == "my-model-v2"
    assert sanitize_tag_part("x" * 200, 60) == "x" * 60
    assert sanitize_tag_part("...") == "model"


def test_pip_platforms_cover_glibc_range_down_to_manylinux2014() -> None:
    got = pip_platforms("2.36", "x86_64")
    assert got[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_28_x86_64" in got and "manylinux_2_17_x86_64" in got
    assert got[-1] == "manylinux2014_x86_64"
    assert "manylinux_2_16_x86_64" not in got
