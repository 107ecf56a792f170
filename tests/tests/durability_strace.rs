//! An acknowledgement follows the flush, seen in the daemon's system calls.
//!
//! `kill -9` leaves the page cache intact, so the crash tests would pass
//! even if the daemon never synced. Here the daemon runs under `strace`,
//! reports are sent one at a time on connections whose client port we
//! know, and for each `200` the trace must show, in this order on the
//! daemon's side: the request read from that socket, a write of WAL
//! frames, an `fdatasync`/`fsync` of the ledger's `-wal` file returning 0,
//! and only then the response bytes written to that socket — in both
//! `store.durability` modes. Syncs by the background checkpointer do not
//! count: an acknowledgement must not depend on a checkpoint happening to
//! run.
//!
//! Then the sync fails: an `LD_PRELOAD` shim, compiled here with `cc`,
//! makes `fdatasync`/`fsync` of the `-wal` file return `EIO` once a trigger
//! file exists. The daemon must abort without answering the report whose
//! commit could not be synced, and a restart must hold every report it did
//! acknowledge.
//!
//! Needs `strace` and `cc` (contrib/test.sh installs them); without them
//! the suite is skipped on stderr, and with `CI=true` fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pooldesk_e2e::daemon::{Daemon, DaemonOptions, now_s};
use pooldesk_e2e::skip::tool_or_skip;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SUITE: &str = "durability_strace";
const REPORTS: usize = 8;
const SHARES: u64 = 10;
/// The default `ingest.msat_per_share`.
const RATE_MSAT: i64 = 1000;

/// The syscalls that matter: syncs, writes (WAL frames and responses) and
/// socket reads (requests: std and tokio read sockets with `recv`).
const TRACED: &str = "trace=fdatasync,fsync,pwrite64,write,writev,sendto,sendmsg,recvfrom";

/// Sends one signed report on a fresh connection; (client port, raw
/// response, or the I/O error that ended the exchange).
async fn report_once(d: &Daemon, miner: &str, n: usize) -> (u16, Result<String, String>) {
    let body = serde_json::to_vec(&serde_json::json!({
        "miner_id": miner,
        "worker_name": "rig",
        "shares": SHARES,
        "event_id": format!("dur-{miner}-{n}"),
        "ts": now_s(),
    }))
    .unwrap();
    let sig = pooldesk_proto::sig::hmac_sha256_hex(d.report_secret.as_bytes(), &body);
    let mut stream = tokio::net::TcpStream::connect(d.http_addr)
        .await
        .expect("connect");
    let port = stream.local_addr().unwrap().port();
    let head = format!(
        "POST /api/report_share HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         X-Report-Sig: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        d.http_addr,
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(&body);
    let exchange = async {
        stream.write_all(&request).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).into_owned())
    };
    let answer = tokio::time::timeout(Duration::from_secs(120), exchange)
        .await
        .expect("the daemon neither answered nor closed within 120 s");
    (port, answer.map_err(|e| e.to_string()))
}

/// One line of `strace -f -tt -yy` output, as far as this test cares.
#[derive(Debug)]
struct Call {
    tid: u32,
    /// The syscall name (for a `<... X resumed>` line, X).
    name: String,
    /// The text after the name: fd with its path or socket, and arguments.
    rest: String,
    /// The line finishes the call (`= ret` seen), and the return value.
    ret: Option<String>,
}

/// Parses strace's lines, joining `<unfinished ...>` with its resumption:
/// an unfinished call is listed where it started, and its completion as a
/// second entry where it returned (with the first entry's arguments).
fn parse_trace(text: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut pending: HashMap<u32, String> = HashMap::new();
    for line in text.lines() {
        let (tid, rest) = match line.strip_prefix("[pid ") {
            Some(r) => {
                let (tid, rest) = r.split_once(']').unwrap_or(("0", r));
                (tid.trim().parse().unwrap_or(0), rest.trim_start())
            }
            None => match line.split_once(' ') {
                // strace pads the pid column ("3970  06:03:27…" for
                // four-digit pids): trim, or the timestamp reads as the name.
                Some((tid, rest)) if tid.chars().all(|c| c.is_ascii_digit()) => {
                    (tid.parse().unwrap_or(0), rest.trim_start())
                }
                _ => (0, line),
            },
        };
        // Skip the timestamp.
        let Some((_, body)) = rest.split_once(' ') else {
            continue;
        };
        if let Some(resumed) = body.strip_prefix("<... ") {
            let Some((name, after)) = resumed.split_once(" resumed>") else {
                continue;
            };
            // The call's text is split across two lines: the arguments
            // before the pause (the fd) and the data after it.
            let args = pending.remove(&tid).unwrap_or_default();
            let args = args.trim_end_matches("<unfinished ...>").trim_end();
            calls.push(Call {
                tid,
                name: name.to_string(),
                rest: format!("{args} {}", after.trim_start()),
                ret: after.rsplit_once(" = ").map(|(_, r)| r.trim().to_string()),
            });
            continue;
        }
        let Some((name, args)) = body.split_once('(') else {
            continue;
        };
        if body.ends_with("<unfinished ...>") {
            pending.insert(tid, args.to_string());
            calls.push(Call {
                tid,
                name: name.to_string(),
                rest: args.to_string(),
                ret: None,
            });
        } else {
            calls.push(Call {
                tid,
                name: name.to_string(),
                rest: args.to_string(),
                ret: args.rsplit_once(" = ").map(|(_, r)| r.trim().to_string()),
            });
        }
    }
    calls
}

fn is_sync(c: &Call) -> bool {
    c.name == "fdatasync" || c.name == "fsync"
}

fn on_wal(c: &Call) -> bool {
    c.rest
        .split_once('>')
        .is_some_and(|(fd, _)| fd.ends_with("ledger.sqlite-wal"))
}

fn on_client(c: &Call, port: u16) -> bool {
    c.rest
        .split_once(">,")
        .is_some_and(|(fd, _)| fd.contains(&format!("->127.0.0.1:{port}]")))
}

/// Thread id → name of the daemon's threads (`/proc/PID/task/*/comm`).
fn thread_names(pid: u32) -> HashMap<u32, String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the daemon's threads")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let tid = entry.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            Some((tid, name.trim().to_string()))
        })
        .collect()
}

async fn acknowledgement_follows_the_wal_sync(durability: &str) {
    let Some(strace) = tool_or_skip(SUITE, "strace", "strace") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let wrapper = vec![
        strace.display().to_string(),
        "-f".into(),
        "-tt".into(),
        "-yy".into(),
        "-s".into(),
        "40".into(),
        "-e".into(),
        TRACED.into(),
        "-o".into(),
        trace.display().to_string(),
        "--".into(),
    ];
    let mut d = Daemon::start_wrapped(
        DaemonOptions {
            config: format!("[store]\ndurability = \"{durability}\"\n"),
            ..Default::default()
        },
        wrapper,
    )
    .await;
    let mut ports = Vec::new();
    for n in 0..REPORTS {
        let (port, answer) = report_once(&d, "dur", n).await;
        let answer = answer.expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "report {n}: {answer}");
        ports.push(port);
    }
    let pid = d.daemon_pid().expect("the daemon under strace");
    let names = thread_names(pid);
    // SIGTERM the daemon itself and let strace exit on its own, so the
    // trace is complete (a killed strace loses what it had not written).
    // SAFETY: plain kill(2) on the daemon we started.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    assert!(
        d.wait_exit(Duration::from_secs(120)).is_some(),
        "the daemon did not stop on SIGTERM:\n{}",
        d.log_tail()
    );
    let text = std::fs::read_to_string(&trace).expect("the trace");
    let calls = parse_trace(&text);
    let counted = |c: &Call| {
        // Unknown tids (threads gone by now) count: only the checkpointer
        // is excluded, by name.
        !names
            .get(&c.tid)
            .is_some_and(|n| n.starts_with("ledger-checkpoi"))
    };
    for (n, port) in ports.iter().enumerate() {
        let what = format!("report {n} (client port {port}, durability {durability})");
        let read = calls
            .iter()
            .position(|c| {
                c.name == "recvfrom"
                    && on_client(c, *port)
                    && c.rest.contains("POST /api/report_share")
            })
            .unwrap_or_else(|| {
                let port_text = format!(":{port}");
                let mine: Vec<&str> = text.lines().filter(|l| l.contains(&port_text)).take(20).collect();
                panic!(
                    "{what}: its request is not in the trace; lines naming the port:\n{}\nfirst lines:\n{}",
                    mine.join("\n"),
                    text.lines().take(30).collect::<Vec<_>>().join("\n")
                )
            });
        let response = calls
            .iter()
            .position(|c| {
                ["write", "writev", "sendto", "sendmsg"].contains(&c.name.as_str())
                    && on_client(c, *port)
                    && c.rest.contains("HTTP/1.1 200")
            })
            .unwrap_or_else(|| panic!("{what}: its 200 response is not in the trace"));
        assert!(read < response, "{what}: answered before it was read");
        let frames = (read..response)
            .find(|&i| {
                let c = &calls[i];
                (c.name == "pwrite64" || c.name == "write") && on_wal(c)
            })
            .unwrap_or_else(|| {
                panic!("{what}: no WAL frames written between its request and its response")
            });
        let synced = (frames..response).any(|i| {
            let c = &calls[i];
            is_sync(c) && on_wal(c) && c.ret.as_deref() == Some("0") && counted(c)
        });
        assert!(
            synced,
            "{what}: acknowledged without an fdatasync/fsync of the WAL returning in between \
             (calls {frames}..{response}):\n{}",
            calls[frames..response]
                .iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// One traced daemon at a time: two straced daemons side by side are slow
/// on a 2-core machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_acknowledges_only_after_the_wal_is_synced() {
    let _one = ONE_AT_A_TIME.lock().await;
    acknowledgement_follows_the_wal_sync("pipelined").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn full_acknowledges_only_after_the_wal_is_synced() {
    let _one = ONE_AT_A_TIME.lock().await;
    acknowledgement_follows_the_wal_sync("full").await;
}

/// `fdatasync`/`fsync` of any `*-wal` file fail with EIO while the file
/// named by `$SHIM_FAIL_TRIGGER` exists; everything else is the real call.
const SHIM_C: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failing(int fd) {
    const char *trigger = getenv("SHIM_FAIL_TRIGGER");
    if (!trigger || access(trigger, F_OK) != 0) return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 4) return 0;
    path[n] = 0;
    return strcmp(path + n - 4, "-wal") == 0;
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    if (failing(fd)) { errno = EIO; return -1; }
    return real(fd);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    if (failing(fd)) { errno = EIO; return -1; }
    return real(fd);
}
"#;

fn build_shim(cc: &Path, dir: &Path) -> PathBuf {
    let source = dir.join("failsync.c");
    let library = dir.join("libfailsync.so");
    std::fs::write(&source, SHIM_C).unwrap();
    let out = Command::new(cc)
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&library)
        .arg(&source)
        .arg("-ldl")
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    library
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_wal_sync_aborts_without_acknowledging() {
    use std::os::unix::process::ExitStatusExt;
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(cc) = tool_or_skip(SUITE, "cc", "gcc") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let shim = build_shim(&cc, dir.path());
    let trigger = dir.path().join("fail-now");
    let mut d = Daemon::start(DaemonOptions {
        env: vec![
            ("LD_PRELOAD".into(), shim.display().to_string()),
            ("SHIM_FAIL_TRIGGER".into(), trigger.display().to_string()),
        ],
        ..Default::default()
    })
    .await;
    let before = 3;
    for n in 0..before {
        let (_, answer) = report_once(&d, "eio", n).await;
        let answer = answer.expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "report {n}: {answer}");
    }
    std::fs::write(&trigger, b"").unwrap();
    let (_, answer) = report_once(&d, "eio", before).await;
    // The connection ends without a response (or at most with an error
    // status, never a 200).
    if let Ok(text) = &answer {
        assert!(
            !text.starts_with("HTTP/1.1 200"),
            "a report whose WAL sync failed was acknowledged: {text}"
        );
    }
    let status = d.wait_exit(Duration::from_secs(120)).unwrap_or_else(|| {
        panic!(
            "the daemon kept running after a failed WAL sync:\n{}",
            d.log_tail()
        )
    });
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "exit {status}:\n{}",
        d.log_tail()
    );
    let log = d.log_tail();
    assert!(log.contains("fdatasync of the ledger WAL failed"), "{log}");

    // Every acknowledged report is there after a restart (the shim stays
    // loaded, the trigger is gone).
    std::fs::remove_file(&trigger).unwrap();
    d.start_again().await;
    // The unanswered report may or may not have reached the disk; every
    // answered one must have.
    let per_report_msat = SHARES as i64 * RATE_MSAT;
    let balance = d.balance_msat("eio").await;
    assert!(
        balance == before as i64 * per_report_msat
            || balance == (before as i64 + 1) * per_report_msat,
        "balance {balance} msat after {before} acknowledged reports of {per_report_msat}"
    );
    d.assert_verified();
}

/// strace pads short pids ("3970  06:…"); a fresh machine has them.
#[test]
fn trace_lines_parse_with_short_and_long_pids() {
    let text = "3970  06:03:27.473389 recvfrom(25<TCP:[127.0.0.1:1->127.0.0.1:2]>, \"POST\"..., 8192, 0, NULL, NULL) = 298\n\
                15817 06:03:27.479147 fdatasync(11</d/ledger.sqlite-wal>) = 0\n\
                [pid 42] 06:03:27.5 sendto(3<x>, \"y\", 1, 0, NULL, 0) = 1\n";
    let calls = parse_trace(text);
    let names: Vec<(u32, &str)> = calls.iter().map(|c| (c.tid, c.name.as_str())).collect();
    assert_eq!(
        names,
        [(3970, "recvfrom"), (15817, "fdatasync"), (42, "sendto")]
    );
    assert_eq!(calls[0].ret.as_deref(), Some("298"));
    // An interrupted call: the resumed call holds both the fd and the data.
    let text = "19287 06:14:52.304860 recvfrom(25<TCP:[127.0.0.1:1->127.0.0.1:56268]>,  <unfinished ...>\n\
                19288 06:14:52.304900 fdatasync(11</d/ledger.sqlite-wal>) = 0\n\
                19287 06:14:52.305000 <... recvfrom resumed>\"POST /api/report_share\"..., 8192, 0, NULL, NULL) = 298\n";
    let calls = parse_trace(text);
    let resumed = calls.last().unwrap();
    assert_eq!(resumed.name, "recvfrom");
    assert!(on_client(resumed, 56268), "{}", resumed.rest);
    assert!(
        resumed.rest.contains("POST /api/report_share"),
        "{}",
        resumed.rest
    );
    assert_eq!(resumed.ret.as_deref(), Some("298"));
}
