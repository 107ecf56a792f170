#!/usr/bin/env bash
# The container image, built and started (issue 16), run by contrib/test.sh.
#
#  1. installs buildah (and podman) from Debian when missing; with CI=true a
#     missing tool fails the run instead of skipping it;
#  2. builds the release binary and the image with contrib/container/build.sh
#     (buildah, --storage-driver=vfs: no overlayfs, no daemon, no registry);
#  3. checks the image config: entrypoint pooldeskd (so `bridge ckpool` and
#     every other subcommand pass straight through), non-root user, /data
#     volume (owned by that user in the image), port 8080, the HEALTHCHECK
#     running the daemon itself, no shell;
#  4. starts `pooldeskd --demo` in it with `buildah run --isolation chroot`
#     (shares the host's network, so it listens on 127.0.0.1:<free port>),
#     a host directory mounted on /data and the report secret mounted at
#     /run/secrets/report_secret, and from the host checks: /healthz is 200,
#     the image's own healthcheck command exits 0, a report signed with the
#     mounted secret is credited, the process runs as uid/gid 10001 inside
#     the image's root, the ledger is in the mounted directory owned by
#     10001; then SIGTERM, a clean exit (status 0), the healthcheck now
#     exits 1, and `pooldeskd verify` passes on the ledger left behind;
#  5. checks compose.yml's structure (services, volume, bridge command,
#     nginx using the tested contrib/nginx config, declared secrets);
#  6. prints the image size and fails above IMAGE_SIZE_LIMIT_MB (30, decimal MB).
#
# Knobs: SKIP_INSTALL=1 (install nothing), KEEP_IMAGE=1 (leave the image in
# the vfs store), POOLDESKD_BIN=PATH (skip the release build; the image is
# then built from that binary).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=contrib/ci/lib.sh
. contrib/ci/lib.sh

IMAGE=localhost/pooldesk:ci-$$
IMAGE_SIZE_LIMIT_MB="${IMAGE_SIZE_LIMIT_MB:-30}"
UID_GID=10001
export STORAGE_DRIVER=vfs
B=(buildah --storage-driver vfs)
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

fail() { echo "container check FAILED: $*" >&2; exit 1; }

# ---- 1. tools ----------------------------------------------------------
if ! command -v buildah >/dev/null && [ "${SKIP_INSTALL:-0}" != 1 ]; then
    step "installing buildah and podman (Debian)"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq || true
    as_root apt-get install -y -qq --no-install-recommends buildah podman >/dev/null || true
fi
if ! command -v buildah >/dev/null; then
    skipped "container image (contrib/ci/container.sh)" "buildah is not installed (apt-get install buildah podman)"
    exit 0 # not reached under CI=true: skipped fails the run there
fi
if ! command -v python3 >/dev/null; then
    skipped "container image (contrib/ci/container.sh)" "python3 is needed to read the image config"
    exit 0
fi
have_yaml=1
if ! python3 -c 'import yaml' 2>/dev/null; then
    if [ "${SKIP_INSTALL:-0}" != 1 ]; then
        as_root apt-get install -y -qq --no-install-recommends python3-yaml >/dev/null || true
    fi
    python3 -c 'import yaml' 2>/dev/null || have_yaml=0
fi

work=$(mktemp -d)
ctr=""
buildah_pid=""
cleanup() {
    if [ -n "$buildah_pid" ] && kill -0 "$buildah_pid" 2>/dev/null; then
        kill -TERM "$buildah_pid" 2>/dev/null || true
        sleep 1
        kill -KILL "$buildah_pid" 2>/dev/null || true
    fi
    [ -z "$ctr" ] || "${B[@]}" rm "$ctr" >/dev/null 2>&1 || true
    if [ "${KEEP_IMAGE:-0}" != 1 ]; then
        "${B[@]}" rmi "$IMAGE" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# ---- 2. build ----------------------------------------------------------
step "building the release binary and the image $IMAGE (buildah, vfs)"
ENGINE=buildah contrib/container/build.sh --tag "$IMAGE" | tee "$work/build.log"
size=$(sed -n 's/^IMAGE_SIZE_BYTES=//p' "$work/build.log")
[ -n "$size" ] || fail "build.sh printed no image size"
host_bin="${POOLDESKD_BIN:-$TARGET_DIR/release/pooldeskd}"

# ---- 3. image config -----------------------------------------------------
step "image config: entrypoint, user, volume, port, healthcheck"
"${B[@]}" inspect --type image "$IMAGE" |
    python3 -c 'import json,sys; json.dump(json.load(sys.stdin)["Docker"]["config"], sys.stdout)' >"$work/config.json"
python3 - "$work/config.json" "$UID_GID" <<'EOF'
import json, sys
config = json.load(open(sys.argv[1]))
uid = sys.argv[2]
problems = []
def expect(what, got, want):
    if got != want:
        problems.append(f"{what}: {got!r}, expected {want!r}")
expect("Entrypoint", config.get("Entrypoint"), ["/usr/local/bin/pooldeskd"])
expect("Cmd", config.get("Cmd") or [], [])
expect("User", config.get("User"), f"{uid}:{uid}")
expect("Volumes", sorted((config.get("Volumes") or {}).keys()), ["/data"])
expect("ExposedPorts", sorted((config.get("ExposedPorts") or {}).keys()), ["8080/tcp"])
expect("Healthcheck.Test", (config.get("Healthcheck") or {}).get("Test"),
       ["CMD", "/usr/local/bin/pooldeskd", "healthcheck"])
env = dict(e.split("=", 1) for e in config.get("Env") or [])
expect("POOLDESK_DATA_DIR", env.get("POOLDESK_DATA_DIR"), "/data")
expect("POOLDESK_HTTP", env.get("POOLDESK_HTTP"), "0.0.0.0:8080")
for p in problems:
    print("image config:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
echo "ok: entrypoint pooldeskd, user $UID_GID:$UID_GID, VOLUME /data, EXPOSE 8080, HEALTHCHECK pooldeskd healthcheck"

# ---- 4. run it -----------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
data="$work/data"
secrets="$work/secrets"
install -d -m 0700 -o "$UID_GID" -g "$UID_GID" "$data"
install -d -m 0755 "$secrets"
secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
printf '%s\n' "$secret" >"$secrets/report_secret"
chown "$UID_GID:$UID_GID" "$secrets/report_secret"
chmod 0400 "$secrets/report_secret"

ctr=$("${B[@]}" from --pull=never "$IMAGE")
# The image's files: /data owned by the daemon's user (a fresh named volume
# copies this owner), no shell, nothing but what build.sh staged.
rootfs=$("${B[@]}" mount "$ctr")
[ "$(stat -c %u:%g "$rootfs/data")" = "$UID_GID:$UID_GID" ] || fail "/data in the image is not owned by $UID_GID"
[ ! -e "$rootfs/bin/sh" ] || fail "the image has a shell"
echo "image files:"
(cd "$rootfs" && find . -type f -printf '    /%P %s\n' | sort)
"${B[@]}" umount "$ctr" >/dev/null
# What the HEALTHCHECK runs, taken from the image (minus "CMD").
mapfile -t healthcheck < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["Healthcheck"]["Test"][1:]))' "$work/config.json")
# The image sets POOLDESK_HTTP=0.0.0.0:8080; here the address is a free
# loopback port of the host (chroot isolation shares the host's network),
# given the same way compose does, so the healthcheck reads it too.
run_in_image() {
    "${B[@]}" run --isolation chroot --env "POOLDESK_HTTP=127.0.0.1:$port" \
        -v "$data:/data" -v "$secrets:/run/secrets:ro" "$ctr" -- "$@"
}

step "pooldeskd --demo in the image on 127.0.0.1:$port"
run_in_image /usr/local/bin/pooldeskd --demo >"$work/daemon.log" 2>&1 &
buildah_pid=$!
show_log() { echo "---- daemon log"; tail -n 40 "$work/daemon.log"; }

url="http://127.0.0.1:$port"
deadline=$(( $(date +%s) + 90 ))
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/healthz" || true)" = 200 ]; do
    if ! kill -0 "$buildah_pid" 2>/dev/null; then show_log; fail "the daemon exited before /healthz answered"; fi
    if [ "$(date +%s)" -gt "$deadline" ]; then show_log; fail "/healthz did not answer 200 within 90 s"; fi
    sleep 0.5
done
echo "ok: GET /healthz 200 from the host: $(curl -s "$url/healthz")"

# The daemon process: found by its environment (our port), not its name.
daemon_pid=""
for dir in /proc/[0-9]*; do
    [ "$(readlink "$dir/exe" 2>/dev/null || true)" != "" ] || continue
    case "$(tr '\0' ' ' <"$dir/cmdline" 2>/dev/null || true)" in
        "/usr/local/bin/pooldeskd --demo "*) ;;
        *) continue ;;
    esac
    if tr '\0' '\n' <"$dir/environ" 2>/dev/null | grep -qx "POOLDESK_HTTP=127.0.0.1:$port"; then
        daemon_pid=${dir#/proc/}
        break
    fi
done
[ -n "$daemon_pid" ] || { show_log; fail "cannot find the daemon process for port $port"; }
uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$daemon_pid/status")
gids=$(awk '/^Gid:/ { print $2, $3, $4, $5 }' "/proc/$daemon_pid/status")
want="$UID_GID $UID_GID $UID_GID $UID_GID"
[ "$uids" = "$want" ] || fail "daemon pid $daemon_pid runs with Uid $uids, expected $want"
[ "$gids" = "$want" ] || fail "daemon pid $daemon_pid runs with Gid $gids, expected $want"
# Inside the image: its root is the container's root filesystem, not /.
root_link=$(readlink "/proc/$daemon_pid/root")
[ "$root_link" != / ] || fail "daemon pid $daemon_pid runs in the host's root, not the image's"
[ -x "/proc/$daemon_pid/root/usr/local/bin/pooldeskd" ] && [ ! -e "/proc/$daemon_pid/root/bin/sh" ] ||
    fail "daemon pid $daemon_pid: its root is not the scratch image (pooldeskd missing or a shell present)"
echo "ok: pid $daemon_pid runs as uid/gid $UID_GID (Uid: $uids) inside the image root"

grep -q 'secret loaded.*report_secret.*/run/secrets/report_secret\|/run/secrets/report_secret.*report_secret' "$work/daemon.log" ||
    { show_log; fail "the daemon did not take report_secret from /run/secrets/report_secret"; }

step "the image's healthcheck command: ${healthcheck[*]}"
run_in_image "${healthcheck[@]}" || fail "the image's healthcheck failed while the daemon answers"
echo "ok: healthcheck exited 0"

step "a signed pool report from the host is credited"
miner="container-check-$$"
"$host_bin" sign-report --secret "$secret" --url "$url" --miner "$miner" --worker rig1 --shares 1000 ||
    fail "the signed report was refused"
balance=$(curl -sf "$url/api/miners/$miner" | python3 -c 'import json,sys; print(json.load(sys.stdin)["balance_msat"])')
# 1000 shares × 0.00000001 BTC = 1000 sat = 1,000,000 msat.
[ "$balance" = 1000000 ] || fail "miner $miner has balance_msat $balance, expected 1000000"
echo "ok: $miner credited $balance msat"

[ -f "$data/ledger.sqlite" ] || fail "no ledger.sqlite in the mounted data directory $data"
owner=$(stat -c %u:%g "$data/ledger.sqlite")
[ "$owner" = "$UID_GID:$UID_GID" ] || fail "ledger.sqlite is owned by $owner, expected $UID_GID:$UID_GID"
echo "ok: the ledger is in the mounted directory: $(ls -l "$data/ledger.sqlite")"

step "SIGTERM to pid $daemon_pid"
kill -TERM "$daemon_pid"
rc=0
timeout 60 tail --pid="$buildah_pid" -f /dev/null || fail "the daemon did not exit within 60 s of SIGTERM"
wait "$buildah_pid" || rc=$?
buildah_pid=""
[ "$rc" = 0 ] || { show_log; fail "exit status $rc after SIGTERM, expected 0"; }
grep -q 'pooldeskd stopped; every acknowledged write is committed' "$work/daemon.log" ||
    { show_log; fail "no clean-shutdown line in the daemon log"; }
echo "ok: exit status 0 after SIGTERM, shutdown logged"

rc=0
run_in_image "${healthcheck[@]}" >"$work/health-after.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$work/health-after.log"; fail "healthcheck exited $rc with the daemon stopped, expected 1"; }
echo "ok: healthcheck exits 1 once the daemon is gone: $(head -n 1 "$work/health-after.log")"

# (without lib.sh's POOLDESK_SKIP_LOG: pooldeskd refuses unknown POOLDESK_* variables)
env -u POOLDESK_SKIP_LOG "$host_bin" verify --data-dir "$data" ||
    fail "pooldeskd verify failed on the ledger the container left"

# ---- 5. compose.yml ------------------------------------------------------
step "contrib/container/compose.yml"
if [ "$have_yaml" = 1 ]; then
    python3 - contrib/container/compose.yml <<'EOF'
import os, sys, yaml
path = sys.argv[1]
here = os.path.dirname(path)
doc = yaml.safe_load(open(path))
services = doc["services"]
problems = []
for name in ("pooldeskd", "bridge", "bitcoind", "nginx"):
    if name not in services:
        problems.append(f"no service {name}")
d, b, n = services["pooldeskd"], services["bridge"], services["nginx"]
if d.get("image") != b.get("image"):
    problems.append("the bridge must run the pooldeskd image")
if b.get("command", [])[:2] != ["bridge", "ckpool"]:
    problems.append(f"bridge command {b.get('command')!r} does not start with bridge ckpool")
if not any(str(v).endswith(":/data") and not str(v).startswith(("/", ".")) for v in d.get("volumes", [])):
    problems.append("pooldeskd has no named volume on /data")
for v in d.get("volumes", []):
    name = str(v).split(":")[0]
    if not name.startswith(("/", ".", "$")) and name not in (doc.get("volumes") or {}):
        problems.append(f"volume {name} is not declared")
conf = [str(v).split(":")[0] for v in n.get("volumes", []) if str(v).split(":")[1] == "/etc/nginx/conf.d/pooldesk.conf"]
if not conf or os.path.realpath(os.path.join(here, conf[0])) != os.path.realpath("contrib/nginx/pooldesk.conf"):
    problems.append(f"nginx does not mount contrib/nginx/pooldesk.conf (got {conf})")
for svc in ("nginx", "bridge"):
    if services[svc].get("network_mode") != "service:pooldeskd":
        problems.append(f"{svc} must share pooldeskd's network (the nginx config proxies 127.0.0.1:8080)")
declared = doc.get("secrets") or {}
for name, svc in services.items():
    for s in svc.get("secrets", []):
        if s not in declared:
            problems.append(f"{name} uses undeclared secret {s}")
if "bitcoin-rpc" not in d.get("networks", []) or not doc["networks"]["bitcoin-rpc"].get("internal"):
    problems.append("the Bitcoin Core RPC network must be internal and joined by pooldeskd")
for p in problems:
    print("compose.yml:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
    echo "ok: compose.yml has pooldeskd, the bridge on the same image, Bitcoin Core, nginx with the tested config"
else
    skipped "compose.yml structure check" "python3-yaml is not installed"
fi

# ---- 6. size -------------------------------------------------------------
mb=$(python3 -c "print(f'{$size / 1e6:.1f} MB ({$size / 1048576:.1f} MiB)')")
echo "image size: $size bytes = $mb; limit $IMAGE_SIZE_LIMIT_MB MB"
[ "$size" -le $(( IMAGE_SIZE_LIMIT_MB * 1000000 )) ] || fail "the image is $mb, over $IMAGE_SIZE_LIMIT_MB MB"
echo "container checks passed"
