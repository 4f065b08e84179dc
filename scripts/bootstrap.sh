#!/usr/bin/env bash
# Create or refresh .venv from requirements.txt pinned by requirements.lock.
#   scripts/bootstrap.sh          runtime dependencies
#   scripts/bootstrap.sh --dev    runtime + test/dev tools (requirements-dev.txt)
# Either way dbt gets its own venv (.venv-dbt, requirements-dbt.lock) and the dbt manifest is
# rebuilt when include/dbt changed (scripts/dbt_setup.sh).
# Re-running is cheap: nothing is installed when the lock, the requirement files
# and the interpreter are unchanged.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$NIGHTSHIFT_ROOT"

dev=0
[ "${1:-}" = "--dev" ] && dev=1
venv="${NIGHTSHIFT_VENV:-.venv}"

step "Checking system packages"
need_apt=()
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
if ! pkg-config --exists mysqlclient 2>/dev/null && ! pkg-config --exists mariadb 2>/dev/null; then
    need_apt+=(default-libmysqlclient-dev)
fi
command -v gcc >/dev/null 2>&1 || need_apt+=(build-essential)
# --dev: the e2e browser check drives Debian's headless Chromium through its matching driver.
if [ $dev = 1 ]; then
    [ -x /usr/bin/chromium ] || need_apt+=(chromium)
    [ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
    # The workbook print test converts .xlsx to PDF with headless LibreOffice (Calc alone, no GUI)
    # and reads page counts and sizes with poppler's pdfinfo.
    command -v soffice >/dev/null 2>&1 || need_apt+=(libreoffice-calc-nogui)
    command -v pdfinfo >/dev/null 2>&1 || need_apt+=(poppler-utils)
    # The spatial-type tests sync PostGIS geometry from the local Debian PostgreSQL.
    for pg in /usr/share/postgresql/[0-9]*; do
        [ -d "$pg/extension" ] && [ ! -f "$pg/extension/postgis.control" ] && need_apt+=("postgresql-$(basename "$pg")-postgis-3")
    done
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "    installing: ${need_apt[*]} (to build mysqlclient; --dev: Chromium for the browser check, LibreOffice Calc and pdfinfo for the workbook PDF test, PostGIS for the spatial tests)"
    if [ "$(id -u)" = 0 ]; then apt=(apt-get); elif command -v sudo >/dev/null; then apt=(sudo apt-get); else
        die "missing ${need_apt[*]}: install them with your package manager (Debian/Ubuntu: apt-get install ${need_apt[*]}) and re-run"
    fi
    "${apt[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

step "Finding Python 3.11/3.12"
python=""
for candidate in "${NIGHTSHIFT_PYTHON:-}" python3.11 python3.12 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 12)))' 2>/dev/null; then
        python="$(command -v "$candidate")"
        break
    fi
done
[ -n "$python" ] || die "Python 3.11 or 3.12 not found: install one, or set NIGHTSHIFT_PYTHON=/path/to/python3.11"
echo "    $python ($("$python" -V 2>&1))"

if [ ! -x "$venv/bin/python" ]; then
    step "Creating $venv"
    "$python" -m venv "$venv"
fi

# uv, pinned, installed into the venv, reading pip's own configuration (indexes, find-links,
# constraints) so that both installers see the same packages.
UV_VERSION=0.13.8
uv_install() {
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" \
        2> >(grep -v '^WARNING: Location' >&2) || return 1
    local conf line key value more find_links=() extra=() index="" constraints=()
    conf="$("$venv/bin/python" -m pip config list 2>/dev/null || true)"
    while IFS= read -r line; do
        key="${line%%=*}" && key="${key##*.}"
        value="${line#*=}" && value="${value#\'}" && value="${value%\'}"
        case "$key" in
            find-links) read -ra more <<<"$value" && find_links+=("${more[@]}") ;;
            extra-index-url) read -ra more <<<"$value" && extra+=("${more[@]}") ;;
            index-url) index="$value" ;;
            constraint) read -ra more <<<"$value" && constraints+=("${more[@]}") ;;
        esac
    done <<<"$conf"
    local args=(--python "$venv/bin/python" --compile-bytecode --index-strategy unsafe-best-match)
    [ -n "$index" ] && args+=(--index-url "$index")
    for value in $(printf '%s\n' "${find_links[@]}" | sort -u); do args+=(--find-links "$value"); done
    for value in $(printf '%s\n' "${extra[@]}" | sort -u); do args+=(--extra-index-url "$value"); done
    for value in $(printf '%s\n' "${constraints[@]}" | sort -u); do [ -f "$value" ] && args+=(-c "$value"); done
    "$venv/bin/uv" pip install --quiet "${args[@]}" "$@"
}

files=(requirements.txt requirements.lock)
[ $dev = 1 ] && files+=(requirements-dev.txt)
want="$(cat "${files[@]}" | sha256sum | cut -d' ' -f1) $("$venv/bin/python" -V 2>&1)"
stamp="$venv/.nightshift-installed"
if [ -f "$stamp" ] && grep -qxF "$want" "$stamp"; then
    step "Dependencies up to date ($venv)"
else
    step "Installing locked dependencies into $venv (first run takes a few minutes)"
    reqs=(-r requirements.txt)
    [ $dev = 1 ] && reqs+=(-r requirements-dev.txt)
    # The lock is a constraints file: exact versions for everything, direct and transitive.
    # uv installs the same pins in about 2 minutes instead of pip's 7; pip is the fallback.
    if ! uv_install "${reqs[@]}" -c requirements.lock; then
        echo "    uv unavailable or failed; installing with pip"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${reqs[@]}" -c requirements.lock \
            2> >(grep -v '^WARNING: Location' >&2)
    fi
    "$venv/bin/python" -m pip check >/dev/null || { "$venv/bin/python" -m pip check; die "inconsistent environment in $venv: delete it and re-run"; }
    echo "$want" >"$stamp"
    # A --dev install satisfies a later runtime-only check too.
    [ $dev = 1 ] && echo "$(cat requirements.txt requirements.lock | sha256sum | cut -d' ' -f1) $("$venv/bin/python" -V 2>&1)" >>"$stamp"
fi
_step_done
# The project's command (`nightshift sync init ...`) in the venv's bin/: a link, so it follows the checkout.
ln -sfn "$NIGHTSHIFT_ROOT/scripts/nightshift" "$venv/bin/nightshift"
# dbt: its own venv and the manifest the dbt DAG is rendered from (both skipped when up to date).
NIGHTSHIFT_DBT_PYTHON="$python" NIGHTSHIFT_FINGERPRINT_PYTHON="$venv/bin/python" scripts/dbt_setup.sh
