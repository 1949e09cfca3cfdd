"""MkDocs hooks of the documentation site (``hooks:`` in mkdocs.yml), run at every build.

- The CLI reference (``mkdocs-click`` on ``modelbus.cli:main``) lists a group's
  ``commands``; ``modelbus`` imports several of its commands only when they are asked for,
  so they are looked up here first, and every command the CLI lists is documented.
- The contract page gets its topics and message tables from the files in ``schemas/``
  (``modelbus.contract_docs``) where it says ``<!-- contract: generated from schemas/ -->``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

CONTRACT_PAGE = "concepts/contract.md"
CONTRACT_MARK = "<!-- contract: generated from schemas/ -->"


def _repository(config: Any) -> Path:
    return Path(config.config_file_path).resolve().parent


def on_config(config: Any) -> Any:
    from modelbus.cli import main

    context = click.Context(main, info_name="modelbus")
    for name in main.list_commands(context):
        if name not in main.commands:
            command = main.get_command(context, name)
            if command is not None:
                main.add_command(command, name)
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != CONTRACT_PAGE:
        return markdown
    if CONTRACT_MARK not in markdown:
        raise ValueError(f"{CONTRACT_PAGE} lost its mark {CONTRACT_MARK}")
    from modelbus.contract_docs import render_contract

    reference = render_contract(_repository(config) / "schemas", level=3)
    return markdown.replace(CONTRACT_MARK, reference)


def on_serve(server: Any, config: Any, builder: Any) -> Any:
    server.watch(str(_repository(config) / "schemas"))
    return server
