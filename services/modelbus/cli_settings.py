"""Settings for a CLI command: a bad environment variable is one readable line, exit 1."""

from __future__ import annotations

import click
from pydantic import ValidationError

from modelbus_contract.settings import ModelbusSettings


def load_settings() -> ModelbusSettings:
    try:
        return ModelbusSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise click.ClickException(f"invalid configuration: {problems}") from None
