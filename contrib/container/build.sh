#!/usr/bin/env bash
# Builds the pooldeskd release binary and the container image from
# contrib/container/Containerfile, with whichever of podman, buildah or
# docker is present (in that order; docker only when its daemon answers).
#
#   contrib/container/build.sh                 builds localhost/pooldesk:latest
#   contrib/container/build.sh --tag NAME      another image name
#
# Environment:
#   ENGINE=podman|buildah|docker   use this one
#   STORAGE_DRIVER=vfs             podman/buildah storage driver (vfs needs no
#                                  overlay support from the kernel; CI uses it)
#   POOLDESKD_BIN=PATH             use this pooldeskd instead of building one
#   CARGO_TARGET_DIR               where cargo builds (default: ./target)
#
# The image is FROM scratch, so nothing is pulled: it holds the stripped
# binary, the shared libraries `ldd` names (glibc's libc, libm, libgcc_s and
# the ELF interpreter: only the glibc Rust target is available here, no
# musl), /etc/passwd and /etc/group with the `pooldesk` user (10001), and an
# empty /data owned by it. Prints the libraries copied and the image size.
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE=localhost/pooldesk:latest
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) IMAGE=$2; shift 2 ;;
        -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

UID_GID=10001
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

pick_engine() {
    if [ -n "${ENGINE:-}" ]; then
        command -v "$ENGINE" >/dev/null || { echo "build.sh: ENGINE=$ENGINE is not installed" >&2; return 1; }
        echo "$ENGINE"
        return
    fi
    if command -v podman >/dev/null; then echo podman; return; fi
    if command -v buildah >/dev/null; then echo buildah; return; fi
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then echo docker; return; fi
    echo "build.sh: no podman, buildah or working docker found (apt-get install podman buildah)" >&2
    return 1
}
engine=$(pick_engine)

# ---- the binary ---------------------------------------------------------
if [ -n "${POOLDESKD_BIN:-}" ]; then
    bin=$POOLDESKD_BIN
else
    echo "==> cargo build --release --bin pooldeskd"
    cargo build --release --locked -p pooldesk-daemon --bin pooldeskd
    bin="$TARGET_DIR/release/pooldeskd"
fi
[ -x "$bin" ] || { echo "build.sh: $bin is not an executable" >&2; exit 1; }

# ---- the build context --------------------------------------------------
ctx="$TARGET_DIR/container/context"
rm -rf "$ctx"
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc" "$ctx/data"
chmod 0700 "$ctx/data"
install -d -m 1777 "$ctx/rootfs/tmp"
cp contrib/container/Containerfile "$ctx/Containerfile"

# Debug info (release keeps line tables, profile.release.debug = 1) is of no
# use without the sources; the symbol table stays, so a panic backtrace
# still names functions.
objcopy --strip-debug "$bin" "$ctx/rootfs/usr/local/bin/pooldeskd"
chmod 0755 "$ctx/rootfs/usr/local/bin/pooldeskd"

# Every shared object the dynamic linker loads, copied (dereferenced) to the
# path `ldd` resolved it at, so ld.so finds it in its default directories.
libs=()
while read -r path; do
    [ -n "$path" ] || continue
    install -D -m 0755 "$(readlink -f "$path")" "$ctx/rootfs$path"
    libs+=("$path")
done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3; next } $1 ~ /^\// { print $1 }')
if ldd "$bin" | grep -q 'not found'; then
    echo "build.sh: unresolved libraries:" >&2
    ldd "$bin" >&2
    exit 1
fi

cat >"$ctx/rootfs/etc/passwd" <<EOF
root:x:0:0:root:/:/nonexistent
pooldesk:x:$UID_GID:$UID_GID:pooldesk:/data:/nonexistent
EOF
cat >"$ctx/rootfs/etc/group" <<EOF
root:x:0:
pooldesk:x:$UID_GID:
EOF
# glibc's resolver: /etc/hosts first (compose and podman write service
# names there too), then DNS. files and dns are built into glibc ≥ 2.34.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$ctx/rootfs/etc/nsswitch.conf"
chmod 0644 "$ctx/rootfs/etc/passwd" "$ctx/rootfs/etc/group" "$ctx/rootfs/etc/nsswitch.conf"

echo "==> shared libraries copied into the image (from ldd $bin):"
for lib in "${libs[@]}"; do
    printf '    %-48s %8s bytes\n' "$lib" "$(stat -c %s "$ctx/rootfs$lib")"
done
printf '    %-48s %8s bytes\n' /usr/local/bin/pooldeskd "$(stat -c %s "$ctx/rootfs/usr/local/bin/pooldeskd")"

# ---- the image ------------------------------------------------------------
storage=()
if [ -n "${STORAGE_DRIVER:-}" ] && [ "$engine" != docker ]; then
    storage=(--storage-driver "$STORAGE_DRIVER")
fi
echo "==> $engine: building $IMAGE"
case "$engine" in
    # Docker format: the OCI image config has no HEALTHCHECK field.
    podman) podman "${storage[@]}" build --format docker -f "$ctx/Containerfile" -t "$IMAGE" "$ctx" ;;
    buildah) buildah "${storage[@]}" bud --format docker -f "$ctx/Containerfile" -t "$IMAGE" "$ctx" ;;
    docker) docker build -f "$ctx/Containerfile" -t "$IMAGE" "$ctx" ;;
    *) echo "build.sh: unknown engine $engine" >&2; exit 2 ;;
esac

# Uncompressed size of the image's layers, in bytes.
if [ "$engine" = docker ]; then
    size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
elif command -v podman >/dev/null; then
    # podman and buildah share the image store; podman says it in bytes.
    size=$(podman "${storage[@]}" image inspect --format '{{.Size}}' "$IMAGE")
else
    # buildah alone only gives a rounded figure ("21.9 MB", decimal units).
    size=$(buildah "${storage[@]}" images --json "$IMAGE" | python3 -c '
import json, sys
number, unit = json.load(sys.stdin)[0]["size"].split()
print(round(float(number) * {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9}[unit]))')
fi
echo "==> image $IMAGE: $size bytes ($(python3 -c "print(f'{$size / 1e6:.1f} MB, {$size / 1048576:.1f} MiB')"))"
echo "IMAGE_SIZE_BYTES=$size"
