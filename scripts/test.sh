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
_step_done
# The private log-enabled MariaDB and PostgreSQL the change-capture tests use (the project's own, on
# their own ports and data folders; the shared servers are never touched): started here if they are
# not up, so `make test` alone runs them, and stopped at the end if this run started them (`.ci/run`
# starts them through scripts/services.sh first). Without the server packages the script says which
# to install, and their tests fail under CI=true.
cdc_before=" $(scripts/cdc_services.sh running) "
scripts/cdc_services.sh start || true
cdc_started=""
for name in $(scripts/cdc_services.sh running); do
    [[ "$cdc_before" == *" $name "* ]] || cdc_started+=" $name"
done
step "pytest"
mkdir -p test-output
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
_step_done
if [ -n "$cdc_started" ]; then
    # shellcheck disable=SC2086  # one word per server
    scripts/cdc_services.sh stop $cdc_started || echo "    could not stop the change-capture servers:$cdc_started"
fi
exit $rc
