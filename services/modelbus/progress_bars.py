"""Service processes write log lines, not progress bars.

MLflow draws a bar for every artifact download (a worker fetching a model's files) and
libraries draw tqdm bars; in a service's stderr they would interleave with its log lines.
Both are off by default in the service commands and ``modelbus up`` (whose services inherit
its environment); a value the user set is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

QUIET_DEFAULTS: Mapping[str, str] = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # read by MLflow at each download
    "TQDM_DISABLE": "1",  # tqdm >= 4.66 takes defaults from TQDM_* variables
}


def quiet_progress_bars(environ: MutableMapping[str, str]) -> None:
    """Turn the progress bars off in ``environ`` (``os.environ``) unless already set;
    before tqdm is imported (it reads its variables once, at import)."""
    for name, value in QUIET_DEFAULTS.items():
        environ.setdefault(name, value)
