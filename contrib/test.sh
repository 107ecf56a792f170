#!/usr/bin/env bash
# Runs every test of pooldesk, on a fresh machine that has only the Rust
# toolchain: installs what the tests need first (Debian packages for the
# browser and terminal tests, Python's requests for the seed examples),
# then formatting, lints, the whole workspace test suite (unit, property,
# end-to-end against real daemon processes, browser, tmux), bounded
# fuzzing and a short soak. Every phase is timed; the run ends with a
# summary of phase times and of anything that was skipped and why.
#
#   contrib/test.sh            everything
#   SKIP_INSTALL=1 contrib/test.sh   assume the tools are there
#
# Exit status is non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=contrib/ci/lib.sh
. contrib/ci/lib.sh

install_test_dependencies() {
    local missing=()
    for pair in chromium:chromium chromedriver:chromium-driver tmux:tmux systemd-analyze:systemd curl:curl nginx:nginx openssl:openssl strace:strace cc:gcc setpriv:util-linux; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        as_root apt-get update -qq
        as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
        # Debian starts the packaged nginx site where it can; tests run their own.
        as_root systemctl stop nginx 2>/dev/null || true
    fi
    if command -v python3 >/dev/null && ! python3 -c 'import requests' 2>/dev/null; then
        python3 -m pip install -q requests
    fi
}

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    phase "installing test dependencies" install_test_dependencies
fi

phase "cargo fmt --check" cargo fmt --all -- --check
phase "cargo clippy --all-targets -- -D warnings" cargo clippy --workspace --all-targets -- -D warnings
phase "building the binaries" cargo build --workspace --bins

# A real Bitcoin Core for the payout tests: found, or built once and cached
# (contrib/ci/bitcoind.sh). Without one, CI=true fails the run here.
obtain_bitcoind() {
    local exe
    exe=$(contrib/ci/bitcoind.sh | tail -n1) && [ -n "$exe" ] \
        || { skipped payouts_bitcoind "no Bitcoin Core node (contrib/ci/bitcoind.sh failed)"; return; }
    export BITCOIND_EXE=$exe BITCOIN_CLI_EXE="${BITCOIN_CLI_EXE:-${exe%/*}/bitcoin-cli}"
    echo "BITCOIND_EXE=$BITCOIND_EXE"
}
phase "bitcoind for the real-node tests (contrib/ci/bitcoind.sh)" obtain_bitcoind

# Every suite runs even after one fails (--no-fail-fast: CI shows all failures).
# End-to-end tests start real daemons; a few threads keep a 2-core machine
# responsive enough for their assertions (which wait on events, not clocks).
phase "cargo test (workspace)" cargo test --workspace --no-fail-fast -- --test-threads "${TEST_THREADS:-4}"
phase "container image (contrib/ci/container.sh)" contrib/ci/container.sh

if [ -x contrib/ci/extra.sh ]; then
    phase "fuzzing and soak (contrib/ci/extra.sh)" contrib/ci/extra.sh
fi

finish
