# Shared helpers of contrib/test.sh and the scripts it runs: timed phases,
# a record of skipped suites, and the closing summary.
#
#   phase NAME CMD...   run CMD as a named, timed phase (a failure ends the run
#                       after printing the summary so far)
#   skipped NAME WHY    record that a suite could not run; with CI=true it
#                       fails the run instead
#   finish              print phase times and skips; exit non-zero if any
#
# Skips found inside `cargo test` are written by the tests themselves to
# $POOLDESK_SKIP_LOG (one "suite: reason" line each); finish prints them.

PHASE_LOG="${PHASE_LOG:-$(mktemp)}"
export POOLDESK_SKIP_LOG="${POOLDESK_SKIP_LOG:-$(mktemp)}"
export PHASE_LOG
RUN_T0="${RUN_T0:-$(date +%s)}"
export RUN_T0

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root (or sudo) to run: $*" >&2; return 1; fi
}

step() { printf '\n==> %s\n' "$*"; }

phase() {
    local name=$1; shift
    step "$name"
    local t0 rc=0
    t0=$(date +%s)
    "$@" || rc=$?
    local took=$(( $(date +%s) - t0 ))
    printf '%s\t%s\t%s\n' "$took" "$rc" "$name" >>"$PHASE_LOG"
    if [ "$rc" != 0 ]; then
        echo "phase FAILED (exit $rc): $name" >&2
        summary
        exit "$rc"
    fi
}

skipped() {
    local name=$1 why=$2
    echo "SKIPPED $name: $why" >&2
    printf '%s: %s\n' "$name" "$why" >>"$POOLDESK_SKIP_LOG"
    if [ "${CI:-}" = true ]; then
        echo "CI=true: a suite that cannot run fails the run ($name)" >&2
        return 1
    fi
}

summary() {
    local took rc name
    echo
    echo "==> phase times"
    while IFS=$'\t' read -r took rc name; do
        local status=ok
        [ "$rc" = 0 ] || status="FAILED ($rc)"
        printf '  %6ss  %-8s %s\n' "$took" "$status" "$name"
    done <"$PHASE_LOG"
    printf '  %6ss  total\n' "$(( $(date +%s) - RUN_T0 ))"
    echo "==> skipped suites"
    if [ -s "$POOLDESK_SKIP_LOG" ]; then
        sed 's/^/  /' "$POOLDESK_SKIP_LOG" | sort -u
    else
        echo "  none"
    fi
}

finish() {
    summary
    if [ -s "$POOLDESK_SKIP_LOG" ] && [ "${CI:-}" = true ]; then
        echo "skipped suites under CI=true" >&2
        exit 1
    fi
    step "all tests passed"
}
