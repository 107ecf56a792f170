#!/usr/bin/env bash
# Operations checks that are too long for `cargo test` (issue 7), run by
# contrib/test.sh after the workspace tests, so the binaries are built:
#
#  1. the nginx example against a real nginx, when this script had to
#     install nginx (where nginx was already there, `cargo test` ran it);
#  2. a short soak: pools, miners, SSE clients, faucet users and payouts
#     against one daemon together, then `pooldeskd verify`, no failed
#     request, RSS flat after the warm-up, the WAL bounded;
#  3. bounded coverage-guided fuzzing (cargo-fuzz / libFuzzer) of the
#     parsers in crates/proto; any crash fails the run and leaves its input
#     under fuzz/artifacts/<target>/ (turn it into a regression test).
#
# Knobs: SOAK_SECONDS (default 60), FUZZ_SECONDS per target (default 25),
# SKIP_SOAK=1, SKIP_FUZZ=1, SKIP_INSTALL=1 (do not install anything).
#
# cargo-fuzz needs nightly-only rustc flags; the machine has the stable
# toolchain only, so the fuzz build runs with RUSTC_BOOTSTRAP=1. Targets are
# built without AddressSanitizer (`-s none`): pooldesk-proto has no unsafe
# code, so ASan could only report what Rust's own checks (debug assertions
# and overflow checks stay on) already turn into a crash, and it costs ~45 s
# of build on two cores.
set -euo pipefail
cd "$(dirname "$0")/../.."

SOAK_SECONDS="${SOAK_SECONDS:-60}"
FUZZ_SECONDS="${FUZZ_SECONDS:-25}"
CARGO_FUZZ_VERSION=0.13.2
FUZZ_TARGETS=(canonical amount control_frame pow pool_report block_report withdraw_body faucet_body)
FUZZ_FLAGS=(-s none --codegen-units 16)

step() { printf '\n==> %s\n' "$*"; }
now() { date +%s; }
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root (or sudo) to run: $*" >&2; return 1; fi
}
t0=$(now)

# ---- 1. nginx ---------------------------------------------------------------
if ! command -v nginx >/dev/null && [ "${SKIP_INSTALL:-0}" != 1 ]; then
    step "installing nginx for the nginx example test"
    export DEBIAN_FRONTEND=noninteractive
    if as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends nginx openssl >/dev/null; then
        # Debian starts the packaged site on :80 where it can; we run our own.
        as_root systemctl stop nginx 2>/dev/null || true
        cargo test -q -p pooldesk-e2e --test ops_nginx
    else
        echo "could not install nginx; ops_nginx stays skipped"
    fi
fi

# ---- 2. soak ----------------------------------------------------------------
if [ "${SKIP_SOAK:-0}" != 1 ]; then
    step "soak: ${SOAK_SECONDS} s of pools, miners, SSE, faucet and payouts"
    cargo build -q --workspace --bins
    "${CARGO_TARGET_DIR:-target}/debug/soak" --duration "$SOAK_SECONDS"
fi
t_soak=$(now)

# ---- 3. fuzzing -------------------------------------------------------------
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
    if ! cargo fuzz --version >/dev/null 2>&1; then
        if [ "${SKIP_INSTALL:-0}" = 1 ]; then
            echo "cargo-fuzz is not installed and SKIP_INSTALL=1" >&2
            exit 1
        fi
        step "installing cargo-fuzz ${CARGO_FUZZ_VERSION}"
        cargo install -q cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
    fi
    export RUSTC_BOOTSTRAP=1
    step "building the fuzz targets (${FUZZ_TARGETS[*]})"
    (cd fuzz && cargo fuzz build "${FUZZ_FLAGS[@]}")

    step "fuzzing each target for ${FUZZ_SECONDS} s, two at a time"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    run_target() {
        local target=$1
        mkdir -p "$work/corpus/$target"
        # First corpus dir is written to (a scratch copy); the committed
        # seeds are only read. -timeout: a slow input is a failure too.
        (cd fuzz && cargo fuzz run "${FUZZ_FLAGS[@]}" "$target" \
            "$work/corpus/$target" "seeds/$target" -- \
            -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1) >"$work/$target.log" 2>&1
    }
    failed=()
    for ((i = 0; i < ${#FUZZ_TARGETS[@]}; i += 2)); do
        pids=()
        for target in "${FUZZ_TARGETS[@]:i:2}"; do
            run_target "$target" &
            pids+=("$!:$target")
        done
        for entry in "${pids[@]}"; do
            if ! wait "${entry%%:*}"; then failed+=("${entry#*:}"); fi
        done
    done
    for target in "${FUZZ_TARGETS[@]}"; do
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$target.log" | grep -o '[0-9]*$' || echo '?')
        cov=$(grep -oE 'cov: [0-9]+' "$work/$target.log" | tail -1 || true)
        printf '  %-14s %10s runs  %s\n' "$target" "$runs" "$cov"
    done
    if [ ${#failed[@]} -gt 0 ]; then
        for target in "${failed[@]}"; do
            echo "---- fuzz target $target FAILED; log tail:"
            tail -n 60 "$work/$target.log"
            for crash in fuzz/artifacts/"$target"/*; do
                [ -f "$crash" ] || continue
                echo "crash input $crash (hex): $(od -An -tx1 -v "$crash" | tr -d ' \n' | head -c 2000)"
            done
        done
        echo "fuzzing found crashes in: ${failed[*]}" >&2
        exit 1
    fi
fi
t_end=$(now)
echo
echo "extra checks passed: soak $((t_soak - t0)) s, fuzz $((t_end - t_soak)) s, total $((t_end - t0)) s"
