"""The commands of the docs (tests/support/doc_commands.py): the quickstart follows the rules
that let tests/docs/test_quickstart.py run it as written, and the README's walk-through runs
nothing the quickstart does not."""

from __future__ import annotations

from pathlib import Path

from tests.support.doc_commands import (
    STACK_MARK,
    commands,
    fenced_blocks,
    quickstart_problems,
    run_commands,
    unbounded,
    words,
)

REPOSITORY = Path(__file__).resolve().parents[2]
QUICKSTART = REPOSITORY / "docs" / "quickstart.md"


def test_fenced_blocks_carry_their_language_and_mark() -> None:
    page = (
        "text\n\n"
        f"{STACK_MARK}\n```bash\nrun it\n```\n\n"
        "```console\noutput\n```\n\n"
        "<!-- quickstart: stack -->\nnot a block: the mark is lost\n\n"
        "```bash\nfirst\nsecond\n```\n"
    )
    blocks = fenced_blocks(page)
    assert [(b.language, b.text, b.mark) for b in blocks] == [
        ("bash", "run it", STACK_MARK),
        ("console", "output", None),
        ("bash", "first\nsecond", None),
    ]
    assert blocks[0].line == 4


def test_commands_join_continuations_and_skip_comments() -> None:
    text = "# a comment\n\nexport A=1\nmodelbus predict \\\n    --model m x.csv  # note\n"
    assert commands(text) == ["export A=1", "modelbus predict --model m x.csv  # note"]
    assert words("modelbus predict --model m x.csv  # note") == [
        "modelbus", "predict", "--model", "m", "x.csv"
    ]


def test_commands_that_never_end_are_named() -> None:
    assert unbounded(".venv/bin/modelbus catalog --watch --json") is not None
    assert unbounded(".venv/bin/modelbus results --out r/") is not None
    assert unbounded(".venv/bin/modelbus results --out r/ --max-idle 10") is None
    assert unbounded("bash deploy/run-stack.sh --demo") is not None
    assert unbounded("modelbus up --demo") is not None
    assert unbounded(".venv/bin/modelbus catalog") is None
    assert unbounded("cat results.csv") is None
    assert unbounded(".venv/bin/modelbus tail requests --model m") is not None
    assert unbounded(".venv/bin/modelbus tail results --from-beginning --no-follow") is None
    assert unbounded(".venv/bin/modelbus tail dlq --max-idle 5") is None
    assert unbounded(".venv/bin/modelbus tail dlq --max-records=3") is None


def test_rules_refuse_what_the_test_could_not_run(tmp_path: Path) -> None:
    (tmp_path / "shown.py").write_text("print(1)\n")
    page = (
        f"{STACK_MARK}\n```bash\nbash deploy/run-stack.sh --demo\n```\n"
        "```sh\nmodelbus catalog\n```\n"
        "```bash\nmodelbus catalog --watch\n```\n"
        '```python\nprint("not run")\n```\n'
        '```python\n--8<-- "shown.py"\n```\n'
        '```python\n--8<-- "missing.py"\n```\n'
    )
    problems = quickstart_problems(page, tmp_path)
    assert len(problems) == 5, problems
    assert "`sh` block" in problems[0]
    assert "--watch" in problems[1]
    assert "only includes a file" in problems[2]
    assert "no bash command runs shown.py" in problems[3]
    assert "missing.py does not exist" in problems[4]
    assert quickstart_problems("```bash\nls\n```\n", tmp_path) == [
        f"0 blocks marked {STACK_MARK}, expected 1"
    ]


def test_the_quickstart_can_be_run_as_written() -> None:
    page = QUICKSTART.read_text()
    assert quickstart_problems(page, REPOSITORY) == []
    stack, later = run_commands(page)
    assert stack == "bash deploy/run-stack.sh --demo"
    assert later, "the quickstart runs commands against the stack"


def test_the_readme_walk_through_runs_only_what_the_quickstart_runs() -> None:
    """Its commands are the quickstart's (run by tests/docs/test_quickstart.py), except
    ``catalog --watch``, which never ends and is shown only."""
    readme = (REPOSITORY / "README.md").read_text()
    section = readme.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    walk_through = next(b for b in fenced_blocks(section) if b.language == "sh")
    _, quickstart = run_commands(QUICKSTART.read_text())
    run = [words(c) for c in quickstart]
    shown_only = []
    for command in commands(walk_through.text):
        if unbounded(command) is not None:
            shown_only.append(command)
            continue
        assert words(command) in run, f"README's `{command}` is not run by the quickstart test"
    assert [words(c) for c in shown_only] == [
        [".venv/bin/modelbus", "catalog", "--watch", "--json"]
    ]
