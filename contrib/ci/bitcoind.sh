#!/usr/bin/env bash
# Finds or builds a Bitcoin Core `bitcoind` (with `bitcoin-cli` beside it)
# for the tests against a real regtest node, and prints its absolute path as
# the last line on stdout. Everything else goes to stderr.
#
# In this order:
#   1. $BITCOIND_EXE, if set (bitcoin-cli must sit beside it, or be named by
#      $BITCOIN_CLI_EXE);
#   2. `bitcoind` on PATH;
#   3. a build cached by an earlier run, keyed by version and source hash:
#        ${POOLDESK_CACHE_DIR:-$HOME/.cache/pooldesk}/bitcoind/<version>-<sha16>/bin/
#   4. a fresh build of Bitcoin Core from the source distribution of the PyPI
#      package py-bitcoinkernel (its depend/bitcoin/ is a complete Bitcoin
#      Core tree), verified by sha256 before anything is unpacked. Takes about
#      14 minutes at -j2. The build is installed into a temporary directory
#      beside the cache entry and renamed into place only when complete, so an
#      interrupted build is never mistaken for a cached one.
#
# Exit status is non-zero if no node could be found or built.
set -euo pipefail

PKG_NAME=py-bitcoinkernel
PKG_VERSION=0.1.0a5
PKG_SHA256=71b91eecac7a8b07248be04471c3bf98016b38bf823aefd28f7b31179940520d
CORE_VERSION=31.99

log() { echo "bitcoind.sh: $*" >&2; }
die() { log "$*"; exit 1; }

check_pair() {
    # $1: a bitcoind; succeeds if it is executable and has bitcoin-cli beside it.
    local exe=$1
    [ -x "$exe" ] || return 1
    [ -x "$(dirname "$exe")/bitcoin-cli" ] || [ -n "${BITCOIN_CLI_EXE:-}" ] || return 1
}

abspath() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd -P)" "$(basename "$1")"); }

# 1. explicit
if [ -n "${BITCOIND_EXE:-}" ]; then
    check_pair "$BITCOIND_EXE" \
        || die "BITCOIND_EXE=$BITCOIND_EXE is not an executable with bitcoin-cli beside it"
    log "using BITCOIND_EXE"
    abspath "$BITCOIND_EXE"
    exit 0
fi

# 2. PATH
if exe=$(command -v bitcoind 2>/dev/null) && check_pair "$exe"; then
    log "using bitcoind from PATH"
    abspath "$exe"
    exit 0
fi

# 3. cache
CACHE_ROOT="${POOLDESK_CACHE_DIR:-$HOME/.cache/pooldesk}/bitcoind"
KEY="${CORE_VERSION}-${PKG_SHA256:0:16}"
DEST="$CACHE_ROOT/$KEY"
if check_pair "$DEST/bin/bitcoind"; then
    log "using cached build $DEST"
    echo "$DEST/bin/bitcoind"
    exit 0
fi

# 4. build
log "no bitcoind found; building Bitcoin Core $CORE_VERSION from $PKG_NAME==$PKG_VERSION into $DEST"

install_build_dependencies() {
    local missing=() pkg
    for pkg in cmake pkg-config build-essential libboost-dev libevent-dev libsqlite3-dev; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null \
        || die "missing build dependencies (${missing[*]}) and no apt-get to install them"
    log "installing ${missing[*]}"
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq >&2
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

install_build_dependencies
mkdir -p "$CACHE_ROOT"
WORK=$(mktemp -d "$CACHE_ROOT/.build-$KEY.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

T0=$(date +%s)
PIP=(python3 -m pip)
command -v python3 >/dev/null || die "python3 (with pip) is needed to fetch the source distribution"
# Only the package itself from source: with `--no-binary :all:` pip would
# also compile its build backend's dependencies (ninja, cmake) from source
# just to read the sdist's metadata.
"${PIP[@]}" download -q --no-deps --no-binary "$PKG_NAME" -d "$WORK/dl" "$PKG_NAME==$PKG_VERSION" >&2 \
    || die "pip download of $PKG_NAME==$PKG_VERSION failed"
shopt -s nullglob
sdists=("$WORK"/dl/*.tar.gz)
shopt -u nullglob
[ ${#sdists[@]} -eq 1 ] || die "expected one source distribution, found: ${sdists[*]:-none}"
SDIST=${sdists[0]}
got=$(sha256sum "$SDIST" | cut -d' ' -f1)
if [ "$got" != "$PKG_SHA256" ]; then
    die "sha256 mismatch for $(basename "$SDIST"): got $got, expected $PKG_SHA256; refusing to build"
fi
log "sha256 verified: $got"

mkdir "$WORK/src"
tar -xzf "$SDIST" -C "$WORK/src" --strip-components=1
CORE_SRC="$WORK/src/depend/bitcoin"
[ -f "$CORE_SRC/CMakeLists.txt" ] || die "no Bitcoin Core tree at depend/bitcoin/ in the source distribution"

JOBS=$(nproc)
log "configuring"
cmake -S "$CORE_SRC" -B "$WORK/build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_GUI=OFF -DBUILD_TESTS=OFF -DBUILD_BENCH=OFF -DBUILD_FUZZ_BINARY=OFF \
    -DBUILD_KERNEL_LIB=OFF -DBUILD_UTIL=OFF -DBUILD_TX=OFF -DBUILD_WALLET_TOOL=OFF \
    -DENABLE_IPC=OFF -DENABLE_WALLET=ON -DWITH_ZMQ=OFF \
    -DBUILD_DAEMON=ON -DBUILD_CLI=ON >&2
log "building bitcoind and bitcoin-cli with -j$JOBS"
cmake --build "$WORK/build" -j"$JOBS" --target bitcoind bitcoin-cli >&2

STAGE="$WORK/out"
mkdir -p "$STAGE/bin"
for exe in bitcoind bitcoin-cli; do
    found=$(find "$WORK/build" -type f -name "$exe" -perm -u+x | head -n1)
    [ -n "$found" ] || die "build produced no $exe"
    install -m 0755 "$found" "$STAGE/bin/$exe"
done
"$STAGE/bin/bitcoind" -version | head -n1 >&2
cat >"$STAGE/SOURCE" <<INFO
$PKG_NAME==$PKG_VERSION sha256=$PKG_SHA256
Bitcoin Core $CORE_VERSION (depend/bitcoin), built $(date -u +%Y-%m-%dT%H:%M:%SZ) with -j$JOBS
INFO

# Atomic: a concurrent run may have finished first; keep whichever is there.
if ! mv -T "$STAGE" "$DEST" 2>/dev/null; then
    check_pair "$DEST/bin/bitcoind" || die "could not move the build into $DEST"
fi
TOOK=$(( $(date +%s) - T0 ))
log "built Bitcoin Core in ${TOOK}s ($((TOOK / 60))m$((TOOK % 60))s) with -j$JOBS; cached at $DEST"
echo "$DEST/bin/bitcoind"
