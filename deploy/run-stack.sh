#!/usr/bin/env bash
# Set the machine up (deploy/setup.sh, idempotent) and run the local stack in the foreground.
#   deploy/run-stack.sh [modelbus up options]   e.g. --demo, --kafka-port 19092
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/deploy/setup.sh"
cd "$REPO"
exec "$REPO/.venv/bin/modelbus" up "$@"
