"""Service processes draw no progress bars into their logs: MLflow's artifact bars and tqdm's
are off unless the user's environment turns them on."""

from __future__ import annotations

import os
import subprocess
import sys

from modelbus.progress_bars import quiet_progress_bars

# A process as a service is: the defaults set first, the libraries used after.
_SERVICE = """
import io, os, sys
from modelbus.progress_bars import quiet_progress_bars
quiet_progress_bars(os.environ)
from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
from tqdm import tqdm
out = io.StringIO()
for _ in tqdm(range(3), file=out):
    pass
print(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get(), repr(out.getvalue()))
"""


def test_the_defaults_turn_the_bars_off_and_keep_what_the_user_set() -> None:
    environ = {"TQDM_DISABLE": "0"}
    quiet_progress_bars(environ)
    assert environ == {"TQDM_DISABLE": "0", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def test_mlflow_and_tqdm_draw_nothing_in_a_service_process() -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("TQDM_DISABLE", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run([sys.executable, "-c", _SERVICE], env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    assert done.stdout.strip() == "False ''"
