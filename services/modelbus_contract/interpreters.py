"""Which Python a model version runs under, and what the catalog says when none matches.

A version runs under the Python minor version it was logged with wherever workers can have
that interpreter: offline from a Debian suite (bookworm ships 3.11, trixie 3.13, …) or from
an image template such as ``python:{python}-slim`` where a registry is reachable. Where no
interpreter matches, the nearest offered one is used if the model's files are likely to load
under it (pickled estimators, ONNX, source code), and the version is refused if they cannot
(a cloudpickled ``PythonModel`` holds code objects of its own minor version).

Pure logic plus the settings both the catalog and the worker read (``MODELBUS_WORKER_``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Debian suite → (its python3 minor version, its glibc).
DEBIAN_SUITES: dict[str, tuple[str, str]] = {
    "bullseye": ("3.9", "2.31"),
    "bookworm": ("3.11", "2.36"),
    "trixie": ("3.13", "2.41"),
}
_MINOR = re.compile(r"^\s*(\d+)\.(\d+)")


class InterpreterSettings(BaseSettings):
    """Where model interpreters come from (env prefix ``MODELBUS_WORKER_``)."""

    model_config = SettingsConfigDict(env_prefix="MODELBUS_WORKER_", extra="ignore")

    debian_suite: str = Field(
        default="bookworm", description="Suite of the default base image (models whose Python "
        "is unknown, or has no interpreter of its own, run here)."
    )
    python_suites: str = Field(
        default="bookworm,trixie",
        description="Debian suites whose python3 model containers may run, built offline on "
        "demand (bookworm: 3.11, trixie: 3.13, bullseye: 3.9).",
    )
    base_image_template: str | None = Field(
        default=None,
        description="An image providing any Python, e.g. `python:{python}-slim` ({python} is "
        "the model's minor version); used when no suite offers that version and the image "
        "exists locally or can be pulled.",
    )


def python_minor(version: object) -> str | None:
    """``"3.12.3"`` → ``"3.12"``; None for anything that is not a version."""
    match = _MINOR.match(str(version)) if version is not None else None
    return f"{match[1]}.{match[2]}" if match else None


@dataclass(frozen=True)
class Offer:
    """One interpreter workers can run: its Python, glibc and where it comes from."""

    python: str
    glibc: str
    suite: str | None = None
    image: str | None = None

    def describe(self) -> str:
        source = f"Debian {self.suite}" if self.suite else self.image
        return f"{self.python} ({source})"


def suite_offers(settings: InterpreterSettings) -> list[Offer]:
    """The interpreters the configured Debian suites provide, default suite first."""
    names = [settings.debian_suite, *(s.strip() for s in settings.python_suites.split(","))]
    offers: dict[str, Offer] = {}
    for name in names:
        if name in DEBIAN_SUITES:
            python, glibc = DEBIAN_SUITES[name]
            offers.setdefault(python, Offer(python, glibc, suite=name))
    return list(offers.values())


def template_offer(settings: InterpreterSettings, python: str, glibc: str = "2.36") -> Offer | None:
    """The template's image for ``python``, if a template is configured."""
    template = settings.base_image_template
    if not template:
        return None
    return Offer(python, glibc, image=template.replace("{python}", python))


def _key(python: str) -> tuple[int, int]:
    major, minor = python.split(".")
    return int(major), int(minor)


def nearest(python: str, offers: list[Offer]) -> Offer:
    """The offer closest in minor version (the older one on a tie: pinned libraries of an
    older model more often have wheels for an older Python)."""
    want = _key(python)
    return min(offers, key=lambda o: (abs(_key(o.python)[1] - want[1]) + 100 * abs(
        _key(o.python)[0] - want[0]), _key(o.python)))


def code_is_version_bound(flavors: Mapping[str, Any]) -> bool:
    """Whether the model's files hold pickled Python code objects, which no other minor
    version can load: a cloudpickled ``PythonModel`` (not one logged from source code)."""
    pyfunc = flavors.get("python_function")
    if not isinstance(pyfunc, Mapping):
        return False
    return (
        pyfunc.get("loader_module") == "mlflow.pyfunc.model"
        and "model_code_path" not in pyfunc
    )


@dataclass(frozen=True)
class Placement:
    """Where a version runs; ``problem`` is set when its own Python is not offered."""

    offer: Offer | None  # None: refused (its code cannot load elsewhere)
    problem: str | None = None


def place(
    model_python: object, flavors: Mapping[str, Any], offers: list[Offer],
    template: Offer | None = None,
) -> Placement:
    """Choose the interpreter of a model logged with ``model_python`` (pure).

    Exact suite offer, else the template, else the nearest offer if the model is likely to
    load there (with a problem saying so), else refused (with a problem saying why).
    """
    python = python_minor(model_python)
    if python is None:
        return Placement(offers[0])
    for offer in offers:
        if offer.python == python:
            return Placement(offer)
    if template is not None:
        return Placement(template)
    fallback = nearest(python, offers)
    offered = ", ".join(o.describe() for o in offers)
    head = f"logged with Python {python}; workers offer Python {offered}"
    if code_is_version_bound(flavors):
        return Placement(None, (
            f"{head}: its cloudpickled PythonModel holds Python {python} code that Python "
            f"{fallback.python} cannot load, so requests answer model_unavailable (offer "
            f"{python}: MODELBUS_WORKER_BASE_IMAGE_TEMPLATE, or log it with Python "
            f"{fallback.python})"
        ))
    return Placement(fallback, (
        f"{head}: it runs under Python {fallback.python} and will likely load (its files "
        "hold no Python code objects)"
    ))
