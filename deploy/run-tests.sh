#!/usr/bin/env bash
# Set the machine up (deploy/setup.sh, idempotent) and run the test suite.
#   deploy/run-tests.sh [pytest arguments]      e.g. -m "not integration", tests/stack -x
# Exits with pytest's status; "no tests collected" (5) counts as a failure too.
# -h/--help prints the usage and sets up nothing (pytest's own: .venv/bin/python -m pytest --help).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

for arg in "$@"; do
    case "$arg" in
        -h|--help)
            cat <<'USAGE'
Usage: bash deploy/run-tests.sh [pytest arguments]

Sets this Debian 12 machine up (as root; idempotent; see deploy/setup.sh; skipped when
MODELBUS_SETUP_DONE=1), then runs pytest with the arguments given, e.g.
  bash deploy/run-tests.sh -m "not integration"     the unit tests only
  bash deploy/run-tests.sh tests/stack -x           one area, stop at the first failure
Exits with pytest's status; "no tests collected" counts as a failure.
pytest's own options: .venv/bin/python -m pytest --help
USAGE
            exit 0 ;;
    esac
done
# .ci/run has already run the set-up (and says so) before printing versions.
[ "${MODELBUS_SETUP_DONE:-0}" = "1" ] || bash "$REPO/deploy/setup.sh"
cd "$REPO"
status=0
"$REPO/.venv/bin/python" -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "[run-tests] error: pytest collected no tests" >&2
fi
exit "$status"
