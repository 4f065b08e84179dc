# Shared shell helpers: step banners with timings, and the project root.
# shellcheck shell=bash
NIGHTSHIFT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export NIGHTSHIFT_ROOT

_step_started=0
step() {
    _step_done
    _step_name="$*"
    _step_started=$(date +%s.%N)
    printf '\033[1m==> %s\033[0m\n' "$_step_name"
}
_step_done() {
    if [ "$_step_started" != 0 ]; then
        awk -v s="$_step_started" -v e="$(date +%s.%N)" -v n="$_step_name" 'BEGIN { printf "    done: %s (%.1fs)\n", n, e - s }'
        _step_started=0
    fi
}
die() {
    printf '\033[31merror:\033[0m %s\n' "$*" >&2
    exit 1
}
