"""The commands of a Markdown page: its fenced code blocks, and the shell commands in them.

The quickstart (``docs/quickstart.md``) is run by ``tests/docs/test_quickstart.py`` as
written. Its rules, checked by ``quickstart_problems``:

- every ```` ```bash ```` block is run, one command at a time, in order, in one shell
  session (what one command exports, the next sees);
- the one block after ``<!-- quickstart: stack -->`` starts the stack, which runs until it
  is stopped: the test starts it in the background instead of running it in turn;
- other blocks are not run: ```` ```console ```` shows output, ```` ```python ```` only
  includes a file of the repository (``--8<-- "examples/…"``) that a ``bash`` command runs;
  a block in another shell dialect (``sh``, ``shell``, no language) is refused, so that no
  command escapes the test by its block's language;
- no command may run until it is stopped: ``modelbus catalog --watch``, ``modelbus results``
  without ``--max-idle``, a second stack.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

STACK_MARK = "<!-- quickstart: stack -->"
RUN_LANGUAGE = "bash"
SHOWN_LANGUAGES = frozenset({"console", "python", "text", "csv"})
SNIPPET = re.compile(r'^--8<-- "([^"]+)"$')
_FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<info>[^\s`]*)")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, text, first line (1-based) and its mark, if any."""

    language: str
    text: str
    line: int
    mark: str | None = None


def fenced_blocks(markdown: str) -> list[Block]:
    """Every fenced code block at the top level of ``markdown``, in order."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    mark: str | None = None
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        opening = _FENCE.match(lines[i])
        if opening is None:
            if stripped.startswith("<!--") and stripped.endswith("-->"):
                mark = stripped
            elif stripped:
                mark = None  # a mark belongs to the block right after it
            i += 1
            continue
        fence = opening.group("fence")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].startswith(fence):
            body.append(lines[j])
            j += 1
        blocks.append(Block(opening.group("info").lower(), "\n".join(body), i + 1, mark))
        mark = None
        i = j + 1
    return blocks


def commands(block_text: str) -> list[str]:
    """The commands of a shell block: one per line, ``\\`` continuations joined, comment
    lines and blank lines left out (a trailing comment stays: the shell ignores it)."""
    out: list[str] = []
    pending = ""
    for line in block_text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1].rstrip() + " "
            continue
        out.append((pending + line.strip()).strip())
        pending = ""
    if pending.strip():
        out.append(pending.strip())
    return out


def words(command: str) -> list[str]:
    """The command's words as the shell splits them (a trailing comment dropped)."""
    return shlex.split(command, comments=True)


def unbounded(command: str) -> str | None:
    """Why ``command`` would run until stopped, or None when it ends by itself."""
    argv = words(command)
    if any(w.endswith("run-stack.sh") for w in argv) or _subcommand(argv)[:1] == ["up"]:
        return "it starts the stack, which runs until stopped"
    sub = _subcommand(argv)
    if sub[:1] == ["catalog"] and "--watch" in argv:
        return "`modelbus catalog --watch` runs until stopped"
    if sub[:1] == ["results"] and not any(w.startswith("--max-idle") for w in argv):
        return "`modelbus results` runs until stopped without --max-idle"
    if sub[:1] == ["tail"] and not any(
        w.startswith(("--no-follow", "--max-idle", "--max-records")) for w in argv
    ):
        return "`modelbus tail` follows until stopped (no --no-follow, --max-idle, --max-records)"
    return None


def _subcommand(argv: list[str]) -> list[str]:
    """The words after the ``modelbus`` program (empty when the command is not modelbus)."""
    for i, word in enumerate(argv):
        if Path(word).name == "modelbus":
            return argv[i + 1:]
    return []


def quickstart_problems(markdown: str, repository: Path) -> list[str]:
    """Where a quickstart page breaks the rules above (empty: it can be run as written)."""
    problems: list[str] = []
    blocks = fenced_blocks(markdown)
    stacks = [b for b in blocks if b.mark == STACK_MARK]
    if len(stacks) != 1:
        problems.append(f"{len(stacks)} blocks marked {STACK_MARK}, expected 1")
    run_text = "\n".join(b.text for b in blocks if b.language == RUN_LANGUAGE)
    for block in blocks:
        where = f"line {block.line}"
        if block.mark == STACK_MARK:
            if block.language != RUN_LANGUAGE or len(commands(block.text)) != 1:
                problems.append(f"{where}: the stack block is one `bash` command")
            continue
        if block.language == RUN_LANGUAGE:
            for command in commands(block.text):
                if (why := unbounded(command)) is not None:
                    problems.append(f"{where}: `{command}`: {why}")
        elif block.language == "python":
            snippet = SNIPPET.match(block.text.strip())
            if snippet is None:
                problems.append(f"{where}: a python block only includes a file (--8<-- \"…\")")
            elif not (repository / snippet.group(1)).is_file():
                problems.append(f"{where}: {snippet.group(1)} does not exist")
            elif snippet.group(1) not in run_text:
                problems.append(f"{where}: no bash command runs {snippet.group(1)}")
        elif block.language not in SHOWN_LANGUAGES:
            problems.append(
                f"{where}: a `{block.language or 'plain'}` block; commands go in `bash` blocks "
                f"(run by the test), output in `console` blocks"
            )
    return problems


def run_commands(markdown: str) -> tuple[str, list[str]]:
    """The stack command, and every other command the quickstart runs, in order."""
    blocks = fenced_blocks(markdown)
    stack = next(b for b in blocks if b.mark == STACK_MARK)
    later = [b for b in blocks if b.language == RUN_LANGUAGE and b.mark != STACK_MARK]
    return commands(stack.text)[0], [c for b in later for c in commands(b.text)]
