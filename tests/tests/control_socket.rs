//! The control socket: a 0600 filesystem socket, versioned hello, bounded
//! frames that close only the offending connection.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;

use pooldesk_e2e::daemon::{ControlClient, Daemon, DaemonOptions};
use pooldesk_e2e::skip::{root_or_skip, skip_or_fail, which};
use pooldesk_proto::control::{
    MAX_FRAME_BYTES, Outcome, Request, Response, ServerFrame, decode_server_frame,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::test(flavor = "multi_thread")]
async fn socket_is_a_0600_filesystem_path() {
    let daemon = Daemon::start(DaemonOptions::default()).await;
    let meta = std::fs::metadata(&daemon.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // Not in the abstract namespace: /proc/net/unix lists the listening
    // socket under a path in our directory (where it was bound before the
    // atomic rename), never as an `@name`.
    let dir = daemon.socket.parent().unwrap().display().to_string();
    let table = std::fs::read_to_string("/proc/net/unix").unwrap();
    let ours: Vec<&str> = table.lines().filter(|l| l.contains(&dir)).collect();
    assert!(!ours.is_empty(), "no socket under {dir} in /proc/net/unix");
    assert!(ours.iter().all(|l| !l.contains(" @")), "{ours:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_and_peer_uid() {
    let daemon = Daemon::start(DaemonOptions::default()).await;
    daemon.post_report("m1", "w1", 10).await;
    let mut client = daemon.control().await;
    // SAFETY: getuid cannot fail.
    assert_eq!(client.welcome.peer_uid, unsafe { libc::getuid() });
    // The snapshot refreshes every second: poll until it counts the miner
    // (the event), then check it, rather than sleeping past a refresh.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match client.request(Request::Snapshot).await.unwrap() {
            Outcome::Ok(Response::Snapshot(s)) if s.miners_total == 0 => assert!(
                tokio::time::Instant::now() < deadline,
                "the snapshot never counted the miner within 60 s"
            ),
            Outcome::Ok(Response::Snapshot(s)) => {
                assert_eq!(s.miners_total, 1);
                assert_eq!(s.ledger.owed_msat, 10 * 1000);
                assert!(!s.simulated);
                break;
            }
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribe_pushes_pool_events() {
    let daemon = Daemon::start(DaemonOptions::default()).await;
    let mut client = daemon.control().await;
    assert!(matches!(
        client.request(Request::Subscribe).await.unwrap(),
        Outcome::Ok(Response::Subscribed)
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no pool event within 60 s"
        );
        if let ServerFrame::Event(e) = client.next_frame().await.unwrap()
            && matches!(e.event, pooldesk_proto::model::Event::Pool(_))
        {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_frame_closes_only_that_connection() {
    let daemon = Daemon::start(DaemonOptions::default()).await;
    let mut good = daemon.control().await;

    let stream = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .unwrap();
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write
        .write_all(b"{\"type\":\"hello\",\"version\":1,\"client\":\"big\"}\n")
        .await
        .unwrap();
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).await.unwrap();
    assert!(matches!(
        decode_server_frame(&line[..line.len() - 1]).unwrap(),
        ServerFrame::Welcome(_)
    ));
    // A frame larger than the bound, without a newline.
    let big = vec![b'x'; MAX_FRAME_BYTES + 1024];
    let _ = write.write_all(&big).await;
    line.clear();
    let n = tokio::time::timeout(Duration::from_secs(60), reader.read_until(b'\n', &mut line))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 0);
    match decode_server_frame(&line[..line.len() - 1]).unwrap() {
        ServerFrame::Error(e) => assert_eq!(e.code, "frame_too_large"),
        other => panic!("{other:?}"),
    }
    line.clear();
    let n = tokio::time::timeout(Duration::from_secs(60), reader.read_until(b'\n', &mut line))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "the connection must be closed");

    // The other connection is unaffected.
    assert!(matches!(
        good.request(Request::Snapshot).await.unwrap(),
        Outcome::Ok(Response::Snapshot(_))
    ));
    // And new connections work.
    let mut again = ControlClient::connect(&daemon.socket).await.unwrap();
    assert!(matches!(
        again.request(Request::Snapshot).await.unwrap(),
        Outcome::Ok(_)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_protocol_version_gets_a_clear_error() {
    let daemon = Daemon::start(DaemonOptions::default()).await;
    let stream = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .unwrap();
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write
        .write_all(b"{\"type\":\"hello\",\"version\":99,\"client\":\"future\"}\n")
        .await
        .unwrap();
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).await.unwrap();
    match decode_server_frame(&line[..line.len() - 1]).unwrap() {
        ServerFrame::Error(e) => {
            assert_eq!(e.code, "unsupported_version");
            assert!(
                e.message.contains("99") && e.message.contains('1'),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }
    // A request before hello is refused too.
    let stream = tokio::net::UnixStream::connect(&daemon.socket)
        .await
        .unwrap();
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write
        .write_all(b"{\"type\":\"request\",\"id\":1,\"body\":{\"method\":\"snapshot\"}}\n")
        .await
        .unwrap();
    line.clear();
    reader.read_until(b'\n', &mut line).await.unwrap();
    match decode_server_frame(&line[..line.len() - 1]).unwrap() {
        ServerFrame::Error(e) => assert_eq!(e.code, "hello_expected"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_method_keeps_the_connection() {
    let daemon = Daemon::start(DaemonOptions::default()).await;
    let mut client = daemon.control().await;
    let stream_frame =
        b"{\"type\":\"request\",\"id\":77,\"body\":{\"method\":\"launch_rockets\"}}\n";
    client.send_bytes(stream_frame).await.unwrap();
    loop {
        if let ServerFrame::Response(r) = client.next_frame().await.unwrap() {
            assert_eq!(r.id, 77);
            assert!(matches!(r.outcome, Outcome::Err(ref e) if e.code == "unknown_method"));
            break;
        }
    }
    assert!(matches!(
        client.request(Request::Snapshot).await.unwrap(),
        Outcome::Ok(_)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn uid_not_allowed_is_refused() {
    // Only meaningful as root: run a client as `nobody` via setpriv.
    if !root_or_skip(
        "control_socket uid_not_allowed",
        "connecting as another uid",
    ) {
        return;
    }
    let python = std::path::Path::new("/usr/bin/python3");
    if which("setpriv").is_none() || !python.exists() {
        skip_or_fail(
            "control_socket uid_not_allowed",
            "needs setpriv (util-linux) and /usr/bin/python3 to connect as another uid",
        );
        return;
    }
    let daemon = Daemon::start(DaemonOptions::default()).await;
    // Let `nobody` reach the socket file (the mode stays 0600, so the kernel
    // refuses the connect) — and check the daemon would refuse anyway by
    // temporarily opening the mode: the uid check is the second wall.
    let dir = daemon.socket.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = format!(
        "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect({:?})\nexcept PermissionError:\n print('EACCES'); sys.exit(0)\ntry:\n s.sendall(b'{{\"type\":\"hello\",\"version\":1,\"client\":\"x\"}}\\n')\nexcept BrokenPipeError:\n pass\nprint(s.recv(4096).decode())\n",
        daemon.socket.display().to_string()
    );
    let run = |script: &str| {
        let out = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                script,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(
        run(&script).contains("EACCES"),
        "mode 0600 must keep other uids out"
    );
    std::fs::set_permissions(&daemon.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let answer = run(&script);
    assert!(
        answer.contains("forbidden") && answer.contains("65534"),
        "{answer}"
    );
}
