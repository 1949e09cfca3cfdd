"""The ``MODELBUS_*`` environment variables: which exist, which are misspelt, and errors that
name the variable a bad value came from.

A variable is known when a settings class reads it (``ModelbusSettings``,
``InterpreterSettings``, the worker's ``ContainerSettings`` and ``PipIndexSettings``) or when
a script or the compose file does (``OTHER_VARIABLES``). The worker's classes are not
imported here (a client process never loads the worker): their variables are listed in
``WORKER_VARIABLES``, which ``tests/unit/test_environment.py`` compares with the classes.

Pure: the environment is passed in.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import AliasChoices, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from .interpreters import InterpreterSettings
from .redact import is_secret_name
from .settings import ModelbusSettings

PREFIX = "MODELBUS_"

# Read by the worker's ContainerSettings (MODELBUS_WORKER_*) and PipIndexSettings
# (MODELBUS_PIP_*), beside InterpreterSettings' own.
WORKER_VARIABLES = frozenset({
    "MODELBUS_WORKER_BASE_IMAGE", "MODELBUS_WORKER_DEBIAN_MIRROR", "MODELBUS_WORKER_CACHE_DIR",
    "MODELBUS_WORKER_CONTAINER_PYTHON", "MODELBUS_WORKER_CONTAINER_GLIBC",
    "MODELBUS_WORKER_CONTAINER_ARCH", "MODELBUS_WORKER_CONTAINER_INSTALLER",
    "MODELBUS_WORKER_PIP_TIMEOUT_S", "MODELBUS_WORKER_DEPENDENCY_RETRY_INITIAL_S",
    "MODELBUS_WORKER_DEPENDENCY_RETRY_MAX_S", "MODELBUS_WORKER_IMAGE_MAX_IDLE",
    "MODELBUS_WORKER_IMAGE_BUDGET", "MODELBUS_WORKER_MAX_CONTAINERS",
    "MODELBUS_WORKER_IDLE_TIMEOUT_S", "MODELBUS_WORKER_REAP_INTERVAL_S",
    "MODELBUS_WORKER_MEMORY_LIMIT", "MODELBUS_WORKER_CPUS", "MODELBUS_WORKER_PIDS_LIMIT",
    "MODELBUS_WORKER_TMPFS_SIZE", "MODELBUS_WORKER_START_TIMEOUT_S",
    "MODELBUS_WORKER_REQUEST_TIMEOUT_S", "MODELBUS_WORKER_HEALTH_TIMEOUT_S",
    "MODELBUS_WORKER_STOP_TIMEOUT_S", "MODELBUS_WORKER_STANDBY_PER_IMAGE",
    "MODELBUS_WORKER_MAX_STANDBY",
    "MODELBUS_PIP_INDEX_URL", "MODELBUS_PIP_EXTRA_INDEX_URL", "MODELBUS_PIP_FIND_LINKS",
    "MODELBUS_PIP_TRUSTED_HOST",
})

# Read by no settings class: name → who reads it.
OTHER_VARIABLES: Mapping[str, str] = {
    "MODELBUS_PUBLISH_ADDRESS": "docker-compose.yml",
    "MODELBUS_KAFKA_ADVERTISED_HOST": "docker-compose.yml",
    "MODELBUS_CACHE_DIR": "docker-compose.yml",
    "MODELBUS_VERSION": "docker-compose.yml",
    "MODELBUS_SKIP_BASE_IMAGE": "deploy/setup.sh",
    "MODELBUS_DOCKERD_LOG": "deploy/setup.sh",
    "MODELBUS_DOCKERD_TIMEOUT": "deploy/setup.sh",
    "MODELBUS_MIN_FREE_MB": "deploy/setup.sh",
    "MODELBUS_SETUP_DONE": "deploy/run-tests.sh",
}


def variable_names(settings: type[BaseSettings]) -> frozenset[str]:
    """Every variable ``settings`` reads (upper case; nested settings classes left out:
    they read their own prefix)."""
    return frozenset(
        variable for name, field in settings.model_fields.items()
        if not _is_settings_class(field.annotation)
        for variable in _names(settings, field, name)
    )


def _is_settings_class(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseSettings)


def _names(settings: type[BaseSettings], field: FieldInfo, name: str) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [choice.upper() for choice in alias.choices if isinstance(choice, str)]
    if isinstance(alias, str):
        return [alias.upper()]
    return [f"{settings.model_config.get('env_prefix', '')}{name}".upper()]


def known_variables() -> frozenset[str]:
    """Every ``MODELBUS_*`` variable something of modelbus reads."""
    read = (variable_names(ModelbusSettings) | variable_names(InterpreterSettings)
            | WORKER_VARIABLES | frozenset(OTHER_VARIABLES))
    return frozenset(name for name in read if name.startswith(PREFIX))


def unknown_variables(
    environ: Mapping[str, str], known: Iterable[str] | None = None
) -> list[tuple[str, str | None]]:
    """(variable, the known name it is closest to, if any) for each ``MODELBUS_*``
    variable of ``environ`` that nothing reads, sorted. Names compare case-insensitively,
    as the settings read them."""
    known_set = frozenset(known) if known is not None else known_variables()
    suffixes = {name.removeprefix(PREFIX): name for name in known_set}
    found = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper in known_set:
            continue
        close = difflib.get_close_matches(upper.removeprefix(PREFIX), suffixes, n=1, cutoff=0.75)
        found.append((name, suffixes[close[0]] if close else None))
    return found


def unknown_variable_warnings(environ: Mapping[str, str]) -> list[str]:
    """One warning line per unknown ``MODELBUS_*`` variable of ``environ``."""
    return [
        f"modelbus: warning: {name} is not a modelbus variable and is ignored"
        + (f" (did you mean {close}?)" if close else "")
        for name, close in unknown_variables(environ)
    ]


# -- errors naming the variable ----------------------------------------------------------

_MAX_SHOWN_INPUT = 60


def settings_class(title: str) -> type[BaseSettings] | None:
    """The settings class a ValidationError's ``title`` names (loaded ones only)."""
    pending: list[type[BaseSettings]] = [BaseSettings]
    while pending:
        cls = pending.pop()
        if cls.__name__ == title and cls is not BaseSettings:
            return cls
        pending.extend(cls.__subclasses__())
    return None


def is_settings_error(exc: ValidationError) -> bool:
    """Whether ``exc`` was raised while a settings class read its values."""
    return settings_class(exc.title) is not None


def settings_error_lines(
    exc: ValidationError, environ: Mapping[str, str], named: Mapping[str, str] | None = None
) -> list[str]:
    """One line per problem of ``exc``, each naming the variable the value came from
    (``named`` says which fields came from elsewhere, e.g. ``{"kafka_client_id":
    "-X client.id"}``): ``MODELBUS_WORKER_MAX_IN_FLIGHT: Input should be a valid integer
    (got 'abc')``. A secret's value is never shown."""
    cls = settings_class(exc.title)
    named = named or {}
    lines = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = [str(part) for part in error["loc"]]
        if not loc:
            lines.append(message)
            continue
        found = _field(cls, loc[0]) if cls is not None else None
        if cls is not None and found is not None:
            name, field = found
            source = named.get(name) or _variable(cls, field, name, environ)
        else:
            name, field, source = loc[0], None, loc[0]
        where = source + "".join(f"[{part}]" for part in loc[1:])
        secret = is_secret_name(name) or (
            field is not None and "SecretStr" in repr(field.annotation)
        )
        shown = "" if secret else _shown_input(error.get("input"))
        lines.append(f"{where}: {message}{shown}")
    return lines


def _field(settings: type[BaseSettings], key: str) -> tuple[str, FieldInfo] | None:
    """The field an error's location names: by its name, or by an alias (pydantic names an
    aliased field by its first alias, whichever was set)."""
    for name, field in settings.model_fields.items():
        if key == name or key.upper() in _names(settings, field, name):
            return name, field
    return None


def _variable(
    settings: type[BaseSettings], field: FieldInfo, name: str, environ: Mapping[str, str]
) -> str:
    names = _names(settings, field, name)
    present = {key.upper() for key in environ}
    return next((n for n in names if n in present), names[0])


def _shown_input(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return ""
    text = str(value)
    if len(text) > _MAX_SHOWN_INPUT:
        text = text[:_MAX_SHOWN_INPUT] + "…"
    return f" (got {text!r})"
