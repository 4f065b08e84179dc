#!/usr/bin/env bash
# dbt's own virtualenv and the manifest Cosmos renders the dbt DAG from (no dbt at DAG-parse time).
#   scripts/dbt_setup.sh           install .venv-dbt from requirements-dbt.lock when it changed, then `dbt parse`
#   scripts/dbt_setup.sh parse     only rebuild include/dbt/target/manifest.json
# NIGHTSHIFT_DBT_VENV picks another venv folder (the Docker image uses /opt/dbt-venv);
# NIGHTSHIFT_DBT_PROJECT another project folder (tests); NIGHTSHIFT_DBT_TARGET where the manifest goes
# (the Docker image: its include/ may be mounted read-only).
# A bad project (a missing ref, a YAML error, a Jinja error) fails here with dbt's message naming the file.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$NIGHTSHIFT_ROOT"
venv="${NIGHTSHIFT_DBT_VENV:-.venv-dbt}"
project="${NIGHTSHIFT_DBT_PROJECT:-include/dbt}"
target="${NIGHTSHIFT_DBT_TARGET:-$project/target}"

if [ "${1:-}" != parse ]; then
    python="${NIGHTSHIFT_DBT_PYTHON:-$(command -v python3.11 || command -v python3.12 || command -v python3)}"
    [ -x "$venv/bin/python" ] || { step "Creating $venv (dbt)"; "$python" -m venv "$venv"; }
    want="$(cat requirements-dbt.txt requirements-dbt.lock | sha256sum | cut -d' ' -f1) $("$venv/bin/python" -V 2>&1)"
    stamp="$venv/.nightshift-installed"
    if [ -f "$stamp" ] && grep -qxF "$want" "$stamp"; then
        step "dbt up to date ($venv)"
    else
        step "Installing dbt into $venv from requirements-dbt.lock"
        if "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==0.13.8" 2>/dev/null; then
            "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --compile-bytecode \
                -r requirements-dbt.txt -c requirements-dbt.lock
        else
            "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-dbt.txt -c requirements-dbt.lock
        fi
        echo "$want" >"$stamp"
    fi
fi

# Nothing to do when the manifest was parsed from exactly these files.
fingerprint() {
    "${NIGHTSHIFT_FINGERPRINT_PYTHON:-python3}" - "$project" "$target" "$1" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, str(Path.cwd() / "include"))
from nightshift_core.dbt import RENDER_MANIFEST, fingerprint, write_render_manifest
project, target = Path(sys.argv[1]), Path(sys.argv[2])
if sys.argv[3] == "write":
    write_render_manifest(project, target)
else:
    stamp = target / "nightshift_fingerprint.txt"
    fresh = stamp.is_file() and (target / RENDER_MANIFEST).is_file() and stamp.read_text().strip() == fingerprint(project)
    sys.exit(0 if fresh else 1)
PY
}
if [ "${NIGHTSHIFT_DBT_FORCE_PARSE:-0}" != 1 ] && fingerprint check; then
    step "dbt manifest up to date ($target)"
    _step_done
    exit 0
fi
step "dbt parse ($target/manifest.json)"
profiles="$(mktemp -d)"
trap 'rm -rf "$profiles"' EXIT
# Parsing needs an adapter but no warehouse: an in-memory DuckDB. Runs get their profile from the
# Airflow connection nightshift_warehouse through Cosmos.
printf 'nightshift:\n  target: parse\n  outputs:\n    parse: {type: duckdb, path: ":memory:", schema: main}\n' >"$profiles/profiles.yml"
DBT_SEND_ANONYMOUS_USAGE_STATS=false DO_NOT_TRACK=1 "$venv/bin/dbt" parse --quiet --no-version-check \
    --project-dir "$project" --profiles-dir "$profiles" --target-path "$(realpath -m "$target")" \
    || die "dbt parse failed: fix the file named above (include/dbt), then re-run scripts/dbt_setup.sh parse"
fingerprint write
_step_done
