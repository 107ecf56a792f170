//! Who the control socket serves, against a real daemon, with clients run
//! as other uids (`setpriv` + Python, so root only; under `CI=true` a run
//! that is not root fails instead of skipping): with an `admin_group` the
//! socket is 0660 owned by that group and its members are served whether
//! the group is their primary or a supplementary one; a uid in
//! `control.allowed_uids` is served; any other uid is refused, by the
//! kernel (the mode) and — with the mode opened as an ACL would — by the
//! daemon's SO_PEERCRED check, which names the uid. Actions are audited
//! under the peer's uid.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use pooldesk_e2e::daemon::{Daemon, DaemonOptions};
use pooldesk_e2e::skip::{root_or_skip, skip_or_fail, which};
use serde_json::Value;

const SUITE: &str = "control_socket_peers";
const PYTHON: &str = "/usr/bin/python3";
/// An existing group used as the admin group (Debian has `adm`, gid 4);
/// the test only reads the group database.
const GROUPS: [&str; 3] = ["adm", "staff", "users"];
/// Uids no account uses on a test machine; 65534 is `nobody`.
const ALLOWED_UID: u32 = 65533;
const MEMBER_UID: u32 = 65532;
const PRIMARY_MEMBER_UID: u32 = 65531;
const STRANGER_UID: u32 = 65534;

fn group_gid(name: &str) -> Option<u32> {
    let c_name = std::ffi::CString::new(name).ok()?;
    // SAFETY: NUL-terminated name; the result is read at once.
    let group = unsafe { libc::getgrnam(c_name.as_ptr()) };
    // SAFETY: non-null pointer to libc's struct group.
    (!group.is_null()).then(|| unsafe { (*group).gr_gid })
}

/// What a client run as `uid` with primary group `gid` and supplementary
/// `groups` got: `EACCES` from connect, or the server's frames — the
/// answer to its hello and, when welcomed, to a request that is audited
/// (pausing payouts).
#[derive(Debug)]
enum Seen {
    Eacces,
    Frames(Vec<Value>),
}

fn connect_as(socket: &std::path::Path, uid: u32, gid: u32, groups: &[u32]) -> Seen {
    let script = format!(
        r#"import json, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect({socket:?})
except PermissionError:
    print("EACCES"); sys.exit(0)
f = s.makefile("rwb")
def send(frame):
    f.write(json.dumps(frame).encode() + b"\n"); f.flush()
def recv():
    line = f.readline()
    if line: print(line.decode().strip())
    return line
try:
    send({{"type": "hello", "version": 1, "client": "peer-test"}})
except BrokenPipeError:
    pass
if b'"welcome"' in recv():
    send({{"type": "request", "id": 1, "body": {{"method": "set_payouts_paused", "params": {{"paused": True}}}}}})
    recv()
"#,
        socket = socket.display().to_string()
    );
    let groups_arg = if groups.is_empty() {
        "--clear-groups".to_string()
    } else {
        format!(
            "--groups={}",
            groups
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let out = std::process::Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg(groups_arg)
        .args([PYTHON, "-c", &script])
        .output()
        .expect("run setpriv");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client as uid {uid} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if stdout.trim() == "EACCES" {
        return Seen::Eacces;
    }
    Seen::Frames(
        stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect(),
    )
}

/// Panics unless the client was welcomed as `uid` and its request served.
fn assert_served(seen: &Seen, uid: u32, who: &str) {
    let Seen::Frames(frames) = seen else {
        panic!("{who}: connect refused by the socket's mode: {seen:?}");
    };
    assert_eq!(frames.len(), 2, "{who}: hello and one answer: {frames:?}");
    assert_eq!(frames[0]["type"], "welcome", "{who}: {frames:?}");
    assert_eq!(frames[0]["peer_uid"], uid, "{who}: {frames:?}");
    assert_eq!(frames[1]["type"], "response", "{who}: {frames:?}");
    assert_eq!(frames[1]["id"], 1, "{who}: {frames:?}");
    assert!(frames[1].get("ok").is_some(), "{who}: served: {frames:?}");
}

fn assert_forbidden(seen: &Seen, uid: u32) {
    let Seen::Frames(frames) = seen else {
        panic!("uid {uid}: the daemon must answer, not the mode: {seen:?}");
    };
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["type"], "error", "{frames:?}");
    assert_eq!(frames[0]["code"], "forbidden", "{frames:?}");
    assert!(
        frames[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&uid.to_string())),
        "{frames:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_uids_and_admin_group_members_are_served_other_uids_refused() {
    if !root_or_skip(SUITE, "connecting as other uids") {
        return;
    }
    if which("setpriv").is_none() || !std::path::Path::new(PYTHON).exists() {
        skip_or_fail(
            SUITE,
            "needs setpriv (util-linux) and /usr/bin/python3 to connect as other uids",
        );
        return;
    }
    let Some((group, gid)) = GROUPS
        .iter()
        .find_map(|g| group_gid(g).map(|gid| (*g, gid)))
    else {
        skip_or_fail(SUITE, &format!("none of the groups {GROUPS:?} exists"));
        return;
    };
    let daemon = Daemon::start(DaemonOptions {
        config: format!("[control]\nallowed_uids = [{ALLOWED_UID}]\nadmin_group = \"{group}\"\n"),
        ..Default::default()
    })
    .await;
    // Let other uids reach the socket file; its own mode still decides.
    let dir = daemon.socket.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let meta = std::fs::metadata(&daemon.socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660, "admin group: mode 0660");
    assert_eq!(meta.gid(), gid, "owned by the admin group");

    // A member through a supplementary group (how `usermod -aG` adds one).
    let seen = connect_as(&daemon.socket, MEMBER_UID, STRANGER_UID, &[gid]);
    assert_served(&seen, MEMBER_UID, "supplementary member of the admin group");
    // A member through the primary group.
    let seen = connect_as(&daemon.socket, PRIMARY_MEMBER_UID, gid, &[]);
    assert_served(
        &seen,
        PRIMARY_MEMBER_UID,
        "primary member of the admin group",
    );
    // Anyone else: the mode keeps them out.
    assert!(matches!(
        connect_as(&daemon.socket, STRANGER_UID, STRANGER_UID, &[]),
        Seen::Eacces
    ));

    // The mode opened (as an ACL granting the allowed uid would): the
    // daemon's own check is the second wall.
    std::fs::set_permissions(&daemon.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let seen = connect_as(&daemon.socket, ALLOWED_UID, STRANGER_UID, &[]);
    assert_served(&seen, ALLOWED_UID, "uid in control.allowed_uids");
    let seen = connect_as(&daemon.socket, STRANGER_UID, STRANGER_UID, &[]);
    assert_forbidden(&seen, STRANGER_UID);

    // Every served action is audited under its peer's uid; the refused
    // one left nothing.
    let conn = rusqlite::Connection::open_with_flags(
        daemon.data_dir.join("ledger.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT actor FROM audit_log WHERE action = 'pause_payouts' ORDER BY id")
        .unwrap();
    let actors: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        actors,
        [MEMBER_UID, PRIMARY_MEMBER_UID, ALLOWED_UID]
            .iter()
            .map(|u| format!("uid:{u}"))
            .collect::<Vec<_>>()
    );
    daemon.assert_verified();
}
