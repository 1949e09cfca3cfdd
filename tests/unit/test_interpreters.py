"""Which interpreter a model version runs under (pure rules of the contract and the worker)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from modelbus.images_command import images
from modelbus_catalog.entry import python_problem
from modelbus_contract.errors import ModelUnavailable
from modelbus_contract.interpreters import (
    InterpreterSettings,
    Offer,
    code_is_version_bound,
    nearest,
    place,
    python_minor,
    suite_offers,
    template_offer,
)
from modelbus_worker.images.base import base_tag
from modelbus_worker.images.interpreter import (
    Interpreter,
    default_interpreter,
    interpreter_for,
    interpreter_of_python,
    logged_python,
)
from modelbus_worker.settings import ContainerSettings

PYTHON_MODEL = {"python_function": {"loader_module": "mlflow.pyfunc.model",
                                    "python_model": "python_model.pkl", "python_version": "3.12.3"}}
FROM_CODE = {"python_function": {"loader_module": "mlflow.pyfunc.model",
                                 "model_code_path": "model.py", "python_version": "3.12.3"}}
SKLEARN = {"python_function": {"loader_module": "mlflow.sklearn", "python_version": "3.12.3"},
           "sklearn": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"}}
BOOKWORM = Offer("3.11", "2.36", suite="bookworm")
TRIXIE = Offer("3.13", "2.41", suite="trixie")


@pytest.mark.parametrize(("text", "minor"), [
    ("3.12.3", "3.12"), ("3.13", "3.13"), (" 3.10.14+", "3.10"), ("", None), (None, None),
    ("three", None), (3.11, "3.11"),
])
def test_python_minor(text: object, minor: str | None) -> None:
    assert python_minor(text) == minor


def test_default_offers_are_bookworm_then_trixie() -> None:
    assert suite_offers(InterpreterSettings()) == [BOOKWORM, TRIXIE]


def test_unknown_suites_are_ignored_and_the_default_comes_first() -> None:
    settings = InterpreterSettings(debian_suite="trixie", python_suites="sid, bookworm,trixie")
    assert suite_offers(settings) == [TRIXIE, BOOKWORM]


def test_nearest_prefers_the_older_on_a_tie() -> None:
    assert nearest("3.12", [BOOKWORM, TRIXIE]) == BOOKWORM
    assert nearest("3.14", [BOOKWORM, TRIXIE]) == TRIXIE
    assert nearest("3.10", [TRIXIE, BOOKWORM]) == BOOKWORM


def test_only_a_cloudpickled_python_model_is_version_bound() -> None:
    assert code_is_version_bound(PYTHON_MODEL)
    assert not code_is_version_bound(FROM_CODE)
    assert not code_is_version_bound(SKLEARN)
    assert not code_is_version_bound({"onnx": {}})


def test_an_offered_python_runs_under_its_own_interpreter() -> None:
    assert place("3.13.5", PYTHON_MODEL, [BOOKWORM, TRIXIE]).offer == TRIXIE
    assert place("3.11.2", PYTHON_MODEL, [BOOKWORM, TRIXIE]).offer == BOOKWORM
    assert place("3.13.5", PYTHON_MODEL, [BOOKWORM, TRIXIE]).problem is None


def test_an_unknown_python_runs_under_the_default() -> None:
    assert place(None, PYTHON_MODEL, [BOOKWORM, TRIXIE]) == place("?", {}, [BOOKWORM])
    assert place(None, PYTHON_MODEL, [BOOKWORM, TRIXIE]).offer == BOOKWORM


def test_a_python_model_of_a_missing_version_is_refused_naming_both_versions() -> None:
    placement = place("3.12.3", PYTHON_MODEL, [BOOKWORM, TRIXIE])
    assert placement.offer is None
    assert placement.problem == (
        "logged with Python 3.12; workers offer Python 3.11 (Debian bookworm), 3.13 (Debian "
        "trixie): its cloudpickled PythonModel holds Python 3.12 code that Python 3.11 cannot "
        "load, so requests answer model_unavailable (offer 3.12: "
        "MODELBUS_WORKER_BASE_IMAGE_TEMPLATE, or log it with Python 3.11)"
    )


def test_a_pickled_estimator_of_a_missing_version_runs_on_the_nearest() -> None:
    placement = place("3.10.4", SKLEARN, [BOOKWORM, TRIXIE])
    assert placement.offer == BOOKWORM
    assert placement.problem == (
        "logged with Python 3.10; workers offer Python 3.11 (Debian bookworm), 3.13 (Debian "
        "trixie): it runs under Python 3.11 and will likely load (its files hold no Python "
        "code objects)"
    )


def test_a_template_offers_every_python() -> None:
    settings = InterpreterSettings(base_image_template="python:{python}-slim")
    template = template_offer(settings, "3.12")
    assert template == Offer("3.12", "2.36", image="python:3.12-slim")
    assert place("3.12.1", PYTHON_MODEL, [BOOKWORM], template) == place(
        "3.12", {}, [], template)
    assert place("3.12.1", PYTHON_MODEL, [BOOKWORM], template).offer == template
    assert template_offer(InterpreterSettings(), "3.12") is None


def test_the_catalog_problem_of_each_case() -> None:
    default = InterpreterSettings()
    assert python_problem("3.13.1", PYTHON_MODEL, default) is None
    assert python_problem(None, PYTHON_MODEL, default) is None
    refused = python_problem("3.12.3", PYTHON_MODEL, default)
    assert refused is not None and refused.startswith("python: logged with Python 3.12;")
    assert "model_unavailable" in refused
    likely = python_problem("3.12.3", SKLEARN, default)
    assert likely is not None and "runs under Python 3.11 and will likely load" in likely
    templated = InterpreterSettings(base_image_template="python:{python}-slim")
    assert python_problem("3.12.3", PYTHON_MODEL, templated) is None


def _model_dir(tmp_path: Path, flavors: dict[str, object], env_python: str | None) -> Path:
    (tmp_path / "MLmodel").write_text(yaml.safe_dump({"flavors": flavors}))
    if env_python is not None:
        (tmp_path / "python_env.yaml").write_text(yaml.safe_dump({"python": env_python}))
    return tmp_path


def test_logged_python_reads_python_env_over_mlmodel(tmp_path: Path) -> None:
    assert logged_python(_model_dir(tmp_path, PYTHON_MODEL, "3.13.5")) == ("3.13", PYTHON_MODEL)
    (tmp_path / "python_env.yaml").unlink()
    assert logged_python(tmp_path) == ("3.12", PYTHON_MODEL)
    (tmp_path / "MLmodel").write_text(": not yaml :\n  - [")
    assert logged_python(tmp_path) == (None, {})


def test_the_worker_places_models_by_their_files(tmp_path: Path) -> None:
    settings = ContainerSettings(cache_dir=tmp_path / "cache")
    trixie = interpreter_for(_model_dir(tmp_path, PYTHON_MODEL, "3.13.5"), settings)
    assert trixie == Interpreter("3.13", "2.41", "x86_64", suite="trixie")
    assert base_tag(trixie) == "modelbus/base:trixie-py313"
    with pytest.raises(ModelUnavailable, match=r"^logged with Python 3\.12;"):
        interpreter_for(_model_dir(tmp_path, PYTHON_MODEL, "3.12.3"), settings)
    sklearn = interpreter_for(_model_dir(tmp_path, SKLEARN, "3.12.3"), settings)
    assert sklearn == default_interpreter(settings)
    assert base_tag(sklearn) == "modelbus/base:bookworm-py311"


def test_the_worker_uses_a_template_only_where_its_image_is_usable(tmp_path: Path) -> None:
    settings = ContainerSettings(cache_dir=tmp_path / "cache",
                                 base_image_template="registry.local/python:{python}")
    model = _model_dir(tmp_path, PYTHON_MODEL, "3.12.3")
    asked: list[str] = []

    def usable(image: str) -> bool:
        asked.append(image)
        return image.endswith("3.12")

    chosen = interpreter_for(model, settings, usable)
    assert chosen == Interpreter("3.12", "2.36", "x86_64", image="registry.local/python:3.12")
    assert base_tag(chosen) == "modelbus/base:from-registry.local-python-3.12"
    assert asked == ["registry.local/python:3.12"]
    with pytest.raises(ModelUnavailable):
        interpreter_for(model, settings, lambda image: False)
    asked.clear()
    # A suite's own Python never asks for the template.
    assert interpreter_for(_model_dir(tmp_path, PYTHON_MODEL, "3.11.9"), settings, usable) \
        == default_interpreter(settings)
    assert asked == []


def test_an_explicit_base_image_is_the_default_interpreter(tmp_path: Path) -> None:
    settings = ContainerSettings(cache_dir=tmp_path, base_image="python:3.12-slim",
                                 container_python="3.12")
    assert default_interpreter(settings) == Interpreter(
        "3.12", "2.36", "x86_64", image="python:3.12-slim")
    assert interpreter_for(_model_dir(tmp_path, PYTHON_MODEL, "3.12.3"), settings) \
        == default_interpreter(settings)
    assert interpreter_for(_model_dir(tmp_path, PYTHON_MODEL, "3.13.3"), settings).suite \
        == "trixie"


def test_interpreter_of_python(tmp_path: Path) -> None:
    settings = ContainerSettings(cache_dir=tmp_path)
    assert interpreter_of_python(settings, "3.13") == Interpreter(
        "3.13", "2.41", "x86_64", suite="trixie")
    with pytest.raises(ModelUnavailable, match=r"^no interpreter offers Python 3\.12 \(offered: "
                       r"3\.11 \(Debian bookworm\), 3\.13 \(Debian trixie\);"):
        interpreter_of_python(settings, "3.12")
    templated = ContainerSettings(cache_dir=tmp_path, base_image_template="py:{python}")
    assert interpreter_of_python(templated, "3.12.1").image == "py:3.12"


def test_images_base_of_a_python_nobody_offers_is_one_error_line() -> None:
    result = CliRunner().invoke(images, ["base", "--python", "3.12"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "error: no interpreter offers Python 3.12 (offered: 3.11 (Debian bookworm), 3.13 "
        "(Debian trixie); see MODELBUS_WORKER_PYTHON_SUITES and _BASE_IMAGE_TEMPLATE)"
    ]
