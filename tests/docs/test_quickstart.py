"""The quickstart runs as written: every command of ``docs/quickstart.md`` against the demo stack.

The page's stack command (``bash deploy/run-stack.sh --demo``) is started in the background
the way ``run-stack.sh`` ends, ``.venv/bin/modelbus up`` with the page's arguments, on free
ports (another stack may hold the defaults) and without the set-up step (the machine running
the tests is set up; the set-up would reinstall the virtualenv). Then every other command of
the page runs in its turn, exactly as written, in one shell session (what a command exports,
the next one sees), from a directory laid out like a fresh clone: the repository's tracked
files, linked, and ``.venv`` the virtualenv running the tests, so what the commands write
stays out of the repository. Two substitutions are made, and checked: the stack's real Kafka
address replaces the default one in the page's ``export MODELBUS_KAFKA_BOOTSTRAP_SERVERS``,
and the gateway's address (the ``gateway:`` line) the default one in ``export GATEWAY``.

Each command must exit 0; the commands below also have their output checked. A command of
the page that does not end by itself fails the rules before anything starts
(``tests/support/doc_commands.py``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.csv
import pyarrow.parquet as pq
import pytest
from tests.support.doc_commands import quickstart_problems, run_commands, words
from tests.support.waiting import wait_for

from modelbus.stack import free_tcp_port

pytestmark = pytest.mark.integration

REPOSITORY = Path(__file__).resolve().parents[2]
QUICKSTART = REPOSITORY / "docs" / "quickstart.md"
STACK_COMMAND = "bash deploy/run-stack.sh --demo"
DEFAULT_KAFKA = "127.0.0.1:9092"  # what `modelbus up` prints with its default port
EXPORT_KAFKA = f"export MODELBUS_KAFKA_BOOTSTRAP_SERVERS={DEFAULT_KAFKA}"
DEFAULT_GATEWAY = "http://127.0.0.1:8080"  # what `modelbus up` prints with its default port
EXPORT_GATEWAY = f"export GATEWAY={DEFAULT_GATEWAY}"
READY_TIMEOUT_S = 180.0
# A fresh machine builds the demo models' images first (tests/stack/test_up.py waits as long).
DEMO_TIMEOUT_S = 1500.0
COMMAND_TIMEOUT_S = 300.0
# What a user's shell would not have: settings that send the commands elsewhere.
_FOREIGN_SETTINGS = ("MODELBUS_TOPIC", "MODELBUS_KAFKA", "MODELBUS_CLIENT", "MLFLOW_TRACKING")


@dataclass
class Ran:
    """One command of the page, run: its output, and the directory it ran in."""

    command: str
    stdout: str
    stderr: str
    cwd: Path


def _catalog(ran: Ran) -> None:
    assert "demo-molecule-score/1  ready" in ran.stdout
    assert "in(Molecule:string[Molecule]) -> out(Predicted:double[Score])" in ran.stdout
    assert "demo-iris-species/1  ready" in ran.stdout
    for column in ("sepal_length", "sepal_width", "petal_length", "petal_width"):
        assert f"{column}:double" in ran.stdout


def _molecules_printed(ran: Ran) -> None:
    lines = ran.stdout.split("\n")
    assert lines[0].strip() == "Predicted", ran.stdout
    shipped = pyarrow.csv.read_csv(ran.cwd / "examples" / "molecules.csv").num_rows
    assert len([line for line in lines[1:] if line.strip()]) == shipped
    assert lines[shipped].strip() == "NaN"  # the last example is not a molecule


def _iris_written(ran: Ran) -> None:
    assert "6 of 6 rows answered" in ran.stdout
    scored = pyarrow.csv.read_csv(ran.cwd / "iris-scored.csv")
    assert scored.column_names == ["species"]
    assert scored.column("species").to_pylist() == [0, 0, 1, 1, 2, 2]


def _iris_shown(ran: Ran) -> None:
    assert ran.stdout.split() == ['"species"', "0", "0", "1", "1", "2", "2"]


def _python_sdk(ran: Ran) -> None:
    # Exactly what the script prints: the SDK writes no log lines of its own to stdout.
    assert ran.stdout.splitlines() == [
        "inputs: ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'] "
        "outputs: ['species']",
        "0 setosa", "1 setosa", "2 versicolor", "3 versicolor", "4 virginica", "5 virginica",
    ]


def _results_written(ran: Ran) -> None:
    assert ran.stdout.strip() == "1 results written under results"
    table = pq.read_table(ran.cwd / "results" / "demo-iris-species" / "v1")
    assert table.num_rows == 6
    assert table.column("species").to_pylist() == [0, 0, 1, 1, 2, 2]
    assert not (ran.cwd / "results" / "_errors").exists()


def _results_shown(ran: Ran) -> None:
    header = ran.stdout.split("\n")[0].split()
    assert header == ["correlation_id", "model", "model_version", "row_index", "species"]
    assert ran.stdout.count("demo-iris-species") == 6


def _results_tailed(ran: Ran) -> None:
    first = ran.stdout.split("\n")[0]
    assert re.fullmatch(r"modelbus\.inference\.results/\d+@\d+  \S+Z  key='demo-iris-species'",
                        first), ran.stdout
    assert "  model: demo-iris-species" in ran.stdout and "  model_version: 1" in ran.stdout
    assert "value: Arrow (" in ran.stdout and "6 rows: species: int64 [IrisSpecies]" in ran.stdout
    assert ran.stderr.strip().endswith("1 record shown"), ran.stderr


def _no_dead_letters(ran: Ran) -> None:
    assert ran.stdout == ""
    assert ran.stderr.strip().endswith("0 dead letters in modelbus.inference.dlq, 0 reasons")


def _http_answer(ran: Ran) -> None:
    assert json.loads(ran.stdout) == {"predictions": [0, 2]}  # as serve answers one column


# Output checks of commands of the page (each must be on the page: a check never goes stale).
CHECKS: dict[str, Callable[[Ran], None]] = {
    ".venv/bin/modelbus catalog": _catalog,
    ".venv/bin/modelbus predict --model demo-molecule-score examples/molecules.csv":
        _molecules_printed,
    ".venv/bin/modelbus predict --model demo-iris-species --version 1 examples/iris.csv "
    "-o iris-scored.csv": _iris_written,
    "cat iris-scored.csv": _iris_shown,
    ".venv/bin/python examples/predict_iris.py": _python_sdk,
    ".venv/bin/modelbus results --out results/ --max-idle 10": _results_written,
    ".venv/bin/python -c \"import pyarrow.parquet as pq; "
    "print(pq.read_table('results/demo-iris-species/v1').to_pandas().to_string())\"":
        _results_shown,
    ".venv/bin/modelbus tail results --from-beginning --no-follow": _results_tailed,
    ".venv/bin/modelbus dlq list": _no_dead_letters,
    "curl -sS --fail-with-body \"$GATEWAY/models/demo-iris-species/invocations\" -H "
    "'Content-Type: application/json' -d '{\"dataframe_split\": {\"columns\": "
    "[\"sepal_length\", \"sepal_width\", \"petal_length\", \"petal_width\"], "
    "\"data\": [[5.1, 3.5, 1.4, 0.2], [6.9, 3.2, 5.7, 2.3]]}}'": _http_answer,
}


def _fresh_clone(target: Path) -> Path:
    """``target`` laid out like a clone: the tracked top-level entries linked, and ``.venv``."""
    listed = subprocess.run(
        ["git", "-C", str(REPOSITORY), "ls-files", "-z"], capture_output=True, check=False
    )
    if listed.returncode == 0 and listed.stdout:
        names = {p.split("/", 1)[0] for p in listed.stdout.decode().split("\0") if p}
    else:  # not a git checkout: the project's own top-level entries
        names = {p.name for p in REPOSITORY.iterdir() if not p.name.startswith(".")}
    target.mkdir()
    for name in sorted(names):
        if (REPOSITORY / name).exists():
            (target / name).symlink_to(REPOSITORY / name)
    venv = Path(sys.prefix)
    assert (venv / "bin" / "modelbus").is_file(), f"no modelbus in the test's virtualenv {venv}"
    (target / ".venv").symlink_to(venv)
    return target


def _user_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_SETTINGS)}


@dataclass
class Stack:
    proc: subprocess.Popen[str]
    stderr_path: Path
    lines: list[str] = field(default_factory=list)

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"the stack exited {self.proc.returncode}:\n{self.stderr()[-3000:]}"
            )
        return True


@pytest.fixture
def demo_stack(tmp_path: Path) -> Iterator[tuple[Stack, Path]]:
    """The page's stack command, started in a fresh clone; (stack, clone)."""
    stack_command, _ = run_commands(QUICKSTART.read_text())
    assert stack_command == STACK_COMMAND, "the test starts the stack as run-stack.sh does"
    script = (REPOSITORY / "deploy" / "run-stack.sh").read_text()
    assert '.venv/bin/modelbus" up "$@"' in script, "run-stack.sh runs modelbus up ARGS"
    clone = _fresh_clone(tmp_path / "clone")
    up_args = words(stack_command)[2:]
    stderr_path = tmp_path / "stack.err"
    env = _user_environment()
    # MLflow's usage telemetry sometimes races with a process's first registry call
    # (tests/stack/test_recovery.py); the demo registers its models in `modelbus up`.
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [".venv/bin/modelbus", "up", *up_args,
             "--kafka-port", str(free_tcp_port()), "--mlflow-port", str(free_tcp_port()),
             "--metrics-port", "0", "--gateway-port", str(free_tcp_port())],
            cwd=clone, env=env, stdout=subprocess.PIPE, stderr=stderr,
            stdin=subprocess.DEVNULL, text=True, start_new_session=True,
        )
    stack = Stack(proc, stderr_path)
    threading.Thread(target=stack.read, daemon=True).start()
    try:
        yield stack, clone
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # Ctrl-C of the page's last step
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _run(command: str, clone: Path, env: dict[str, str], state: Path) -> Ran:
    """``command`` in bash, in ``clone``, with ``env``; the environment it leaves is saved."""
    script = f'{command}\n__status=$?\nenv -0 > "{state}"\nexit $__status\n'
    done = subprocess.run(
        ["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, (
        f"`{command}` exited {done.returncode}\n--- stdout\n{done.stdout[-3000:]}\n"
        f"--- stderr\n{done.stderr[-3000:]}"
    )
    return Ran(command, done.stdout, done.stderr, clone)


def _environment_after(state: Path) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in state.read_text().split("\0") if "=" in item)
    return {name: value for name, value in pairs if name not in ("_", "SHLVL", "PWD", "OLDPWD")}


def test_quickstart_runs_as_written(
    demo_stack: tuple[Stack, Path], tmp_path: Path
) -> None:
    page = QUICKSTART.read_text()
    assert quickstart_problems(page, REPOSITORY) == []
    _, page_commands = run_commands(page)
    assert not set(CHECKS) - set(page_commands), "checked commands that the page lost"
    assert EXPORT_KAFKA in page_commands, "the page tells the user the stack's Kafka address"
    assert EXPORT_GATEWAY in page_commands, "the page tells the user the gateway's address"

    stack, clone = demo_stack
    wait_for(lambda: stack.alive() and "modelbus is up (Ctrl-C to stop)" in stack.lines,
             READY_TIMEOUT_S, interval=0.2, message="the stack's ready line")
    printed = [line for line in stack.lines if line.startswith("kafka bootstrap servers: ")]
    assert len(printed) == 1, stack.lines
    kafka = printed[0].removeprefix("kafka bootstrap servers: ")
    assert kafka.rsplit(":", 1)[0] == DEFAULT_KAFKA.rsplit(":", 1)[0], stack.lines
    # The page says to wait until both demo models have answered.
    wait_for(lambda: stack.alive() and ("demo_finished" in stack.stderr()
                                        or "demo_failed" in stack.stderr()),
             DEMO_TIMEOUT_S, interval=0.5, message="the demo's predictions")
    assert "demo_failed" not in stack.stderr(), stack.stderr()[-3000:]
    assert any(line.startswith("== demo-molecule-score v1") for line in stack.lines)
    assert any(line.startswith("== demo-iris-species v1") for line in stack.lines)

    gateways = [line for line in stack.lines if line.startswith("gateway: ")]
    assert len(gateways) == 1, stack.lines
    gateway = gateways[0].removeprefix("gateway: ")
    assert gateway.rsplit(":", 1)[0] == DEFAULT_GATEWAY.rsplit(":", 1)[0], stack.lines

    env, state = _user_environment(), tmp_path / "shell.env"
    for command in page_commands:
        written = command
        # The two substitutions: this stack's ports, where the page has the defaults.
        if command == EXPORT_KAFKA:
            command = command.replace(DEFAULT_KAFKA, kafka)
        elif command == EXPORT_GATEWAY:
            command = command.replace(DEFAULT_GATEWAY, gateway)
        ran = _run(command, clone, env, state)
        env = _environment_after(state)
        if written in CHECKS:
            CHECKS[written](ran)
    assert env.get("MODELBUS_KAFKA_BOOTSTRAP_SERVERS") == kafka
    stack.alive()
