#!/usr/bin/env bash
# Lint, build the runtime venv, then run the test suite. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$NIGHTSHIFT_ROOT"

step "ruff check (incl. AIR rules)"
.venv/bin/ruff check .
step "ruff format --check"
.venv/bin/ruff format --check .
# The runtime venv, built exactly as `make run` builds .venv (no dev tools): the import check and
# the local-stack test run from it, so a package only the dev tools bring in fails here.
step "Runtime venv (.venv-runtime, as make run installs it)"
NIGHTSHIFT_VENV=.venv-runtime scripts/bootstrap.sh | sed 's/^/    /'
export NIGHTSHIFT_RUNTIME_PYTHON="$NIGHTSHIFT_ROOT/.venv-runtime/bin/python"
step "pytest"
mkdir -p test-output
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
_step_done
exit $rc
