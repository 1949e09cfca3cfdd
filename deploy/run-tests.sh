#!/usr/bin/env bash
# Set the machine up (deploy/setup.sh, idempotent) and run the test suite.
#   deploy/run-tests.sh [pytest arguments]      e.g. -m "not integration", tests/stack -x
# Exits with pytest's status; "no tests collected" (5) counts as a failure too.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# .ci/run has already run the set-up (and says so) before printing versions.
[ "${MODELBUS_SETUP_DONE:-0}" = "1" ] || bash "$REPO/deploy/setup.sh"
cd "$REPO"
status=0
"$REPO/.venv/bin/python" -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "[run-tests] error: pytest collected no tests" >&2
fi
exit "$status"
