#!/usr/bin/env bash
# Runs every test of pooldesk, on a fresh machine that has only the Rust
# toolchain: installs what the tests need first (Debian packages for the
# browser and terminal tests, Python's requests for the seed examples),
# then formatting, lints, the whole workspace test suite (unit, property,
# end-to-end against real daemon processes, browser, tmux), bounded
# fuzzing and a short soak.
#
#   contrib/test.sh            everything
#   SKIP_INSTALL=1 contrib/test.sh   assume the tools are there
#
# Exit status is non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root (or sudo) to run: $*" >&2; return 1; fi
}

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    step "installing test dependencies"
    missing=()
    for pair in chromium:chromium chromedriver:chromium-driver tmux:tmux systemd-analyze:systemd curl:curl nginx:nginx openssl:openssl; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        as_root apt-get update -qq
        as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
    if command -v python3 >/dev/null && ! python3 -c 'import requests' 2>/dev/null; then
        python3 -m pip install -q requests
    fi
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "building the binaries"
cargo build --workspace --bins

step "cargo test (workspace)"
# End-to-end tests start real daemons; two threads keep a 2-core machine
# responsive enough for their timing-free assertions.
cargo test --workspace -- --test-threads "${TEST_THREADS:-4}"
if [ -z "${BITCOIND_EXE:-}" ]; then
    echo "NOTE: payouts against a real Bitcoin Core were SKIPPED (BITCOIND_EXE is not set);"
    echo "      the same flows ran against the regtest stand-in. Set BITCOIND_EXE=/path/to/bitcoind to run them."
fi

if [ -x contrib/ci/extra.sh ]; then
    step "fuzzing and soak (contrib/ci/extra.sh)"
    contrib/ci/extra.sh
fi

step "all tests passed"
