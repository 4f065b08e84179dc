#!/usr/bin/env bash
# Lint, then run the test suite. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$NIGHTSHIFT_ROOT"

step "ruff check (incl. AIR rules)"
.venv/bin/ruff check .
step "ruff format --check"
.venv/bin/ruff format --check .
step "pytest"
mkdir -p test-output
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
_step_done
exit $rc
