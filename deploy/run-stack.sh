#!/usr/bin/env bash
# Set the machine up (deploy/setup.sh, idempotent) and run the local stack in the foreground.
#   deploy/run-stack.sh [modelbus up options]   e.g. --demo, --kafka-port 19092
# -h/--help prints the usage (and `modelbus up --help` once installed) and sets up nothing.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    cat <<'USAGE'
Usage: bash deploy/run-stack.sh [modelbus up options]

Sets this Debian 12 machine up (as root; idempotent: apt packages, the Docker engine, the
virtualenv .venv, the offline base image; see deploy/setup.sh), then runs
`.venv/bin/modelbus up` with the options given, in the foreground until Ctrl-C:
the embedded Kafka broker, an MLflow server and the modelbus services.
e.g. bash deploy/run-stack.sh --demo
USAGE
    if [ -x "$REPO/.venv/bin/modelbus" ]; then
        printf '\n'
        "$REPO/.venv/bin/modelbus" up --help
    else
        printf '\nThe options of `modelbus up` are listed once the set-up has run.\n'
    fi
}

for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
    esac
done

bash "$REPO/deploy/setup.sh"
cd "$REPO"
exec "$REPO/.venv/bin/modelbus" up "$@"
