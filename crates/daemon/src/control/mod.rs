//! The control socket: a Unix stream socket at a filesystem path, for the
//! admin TUI (`pooldesk`) and scripts.
//!
//! Safety properties:
//! - The socket is bound inside a fresh 0700 directory, given its final
//!   mode (0600, or 0660 for a configured admin group), and only then
//!   renamed to its public path: nobody can connect before the mode is
//!   right. The Linux abstract namespace (which ignores permissions) is
//!   never used.
//! - Every connection's peer uid comes from SO_PEERCRED; only root, the
//!   daemon's own uid, configured uids and members of the admin group are
//!   served. Every action is audited under that uid.
//! - Frames are bounded ([`MAX_FRAME_BYTES`]); an oversized frame closes
//!   that connection only.

mod dispatch;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pooldesk_proto::control::{
    ClientFrame, ErrorBody, EventFrame, MAX_FRAME_BYTES, Outcome, PROTOCOL_VERSION, ResponseFrame,
    ServerFrame, Welcome, decode_client_frame, encode_frame, salvage_request_id, split_frame,
};
use pooldesk_proto::model::Event;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, broadcast, mpsc};

use crate::app::App;
use crate::events::BusEvent;

/// Requests of one connection handled at once; more wait (bounded work).
const REQUESTS_IN_FLIGHT: usize = 8;
/// Frames queued for one connection's writer; a client that stops reading
/// is dropped rather than buffered without bound.
const OUTBOX_FRAMES: usize = 256;
/// Connections at once.
const MAX_CONNECTIONS: usize = 64;

/// Who may connect.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    pub uids: Vec<u32>,
    pub gid: Option<u32>,
}

impl PeerPolicy {
    pub fn from_config(app: &App) -> anyhow::Result<PeerPolicy> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let own = unsafe { libc::geteuid() };
        let mut uids = vec![0, own];
        uids.extend(app.config.control.allowed_uids.iter().copied());
        let gid = match &app.config.control.admin_group {
            Some(name) if !name.is_empty() => Some(group_id(name)?),
            _ => None,
        };
        Ok(PeerPolicy { uids, gid })
    }

    /// `groups`: the peer's supplementary groups. A member of the admin
    /// group usually has it as a supplementary group (`usermod -aG`), which
    /// is also what lets the kernel open the 0660 socket for them; the
    /// primary gid alone would refuse them after the kernel let them in.
    pub fn allows(&self, uid: u32, gid: u32, groups: &[u32]) -> bool {
        self.uids.contains(&uid) || self.gid.is_some_and(|g| g == gid || groups.contains(&g))
    }
}

/// `SO_PEERGROUPS` (Linux 4.13): not exported by `libc` for every target.
#[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
const SO_PEERGROUPS: libc::c_int = 59;
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const SO_PEERGROUPS: libc::c_int = 0x003d;

/// The peer's supplementary groups as of its `connect` (`SO_PEERGROUPS`),
/// empty when the kernel cannot tell (then only uid and primary gid count).
fn peer_groups(stream: &UnixStream) -> Vec<u32> {
    use std::os::fd::AsRawFd;
    const GID: usize = std::mem::size_of::<libc::gid_t>();
    // NGROUPS_MAX is 65536: the buffer is bounded.
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    for _ in 0..2 {
        let mut len = (groups.len() * GID) as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `groups`,
        // which holds that many, and sets `len` to what it wrote (or, on
        // ERANGE, to what it needs).
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            groups.truncate(len as usize / GID);
            return groups;
        }
        let needed = len as usize / GID;
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE)
            || needed <= groups.len()
            || needed > 65_536
        {
            break;
        }
        groups.resize(needed, 0);
    }
    Vec::new()
}

fn group_id(name: &str) -> anyhow::Result<u32> {
    let c_name = std::ffi::CString::new(name)?;
    // SAFETY: getgrnam reads a NUL-terminated name; the result is only read
    // immediately, before any other getgr* call on this thread.
    let group = unsafe { libc::getgrnam(c_name.as_ptr()) };
    anyhow::ensure!(
        !group.is_null(),
        "control.admin_group: no group named {name:?}"
    );
    // SAFETY: non-null pointer to a struct group owned by libc.
    Ok(unsafe { (*group).gr_gid })
}

/// Binds the socket at `path` with the right mode before anyone can reach
/// it (see the module docs).
pub fn bind(path: &Path, gid: Option<u32>) -> anyhow::Result<UnixListener> {
    use std::os::unix::ffi::OsStrExt;
    anyhow::ensure!(
        !path.as_os_str().as_bytes().starts_with(b"\0") && !path.as_os_str().is_empty(),
        "control socket must be a filesystem path, not an abstract name"
    );
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    if path.exists() {
        // A live daemon answers; a stale file from a crash does not.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another pooldeskd is already listening on {}",
                path.display()
            );
        }
        std::fs::remove_file(path)?;
    }
    let staging = parent.join(format!(
        ".control-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir(&staging)?;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o700))?;
    let staged = staging.join("control.sock");
    let result = (|| -> anyhow::Result<UnixListener> {
        let listener = UnixListener::bind(&staged)?;
        let mode = if gid.is_some() { 0o660 } else { 0o600 };
        if let Some(gid) = gid {
            std::os::unix::fs::chown(&staged, None, Some(gid))?;
        }
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// Accepts connections until shutdown.
pub async fn serve(app: App, listener: UnixListener, path: PathBuf) -> anyhow::Result<()> {
    let policy = Arc::new(PeerPolicy::from_config(&app)?);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = app.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let _ = refuse(stream, "busy", "too many control connections").await;
            continue;
        };
        let app = app.clone();
        let policy = policy.clone();
        tokio::spawn(async move {
            app.metrics.control_clients.inc();
            if let Err(e) = session(app.clone(), stream, &policy).await {
                tracing::debug!(error = %e, "control session ended");
            }
            app.metrics.control_clients.dec();
            drop(permit);
        });
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

async fn refuse(mut stream: UnixStream, code: &str, message: &str) -> std::io::Result<()> {
    if let Ok(bytes) = encode_frame(&ServerFrame::Error(ErrorBody::new(code, message))) {
        stream.write_all(&bytes).await?;
    }
    stream.shutdown().await
}

/// Reads frames with a hard size bound.
struct FrameReader {
    stream: tokio::net::unix::OwnedReadHalf,
    buf: Vec<u8>,
}

enum Read {
    Frame(Vec<u8>),
    Closed,
    TooLarge,
}

impl FrameReader {
    async fn next(&mut self) -> std::io::Result<Read> {
        loop {
            match split_frame(&self.buf) {
                Ok(Some((line, used))) => {
                    let frame = line.to_vec();
                    self.buf.drain(..used);
                    return Ok(Read::Frame(frame));
                }
                Ok(None) => {}
                Err(_) => return Ok(Read::TooLarge),
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(Read::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

async fn session(app: App, stream: UnixStream, policy: &PeerPolicy) -> anyhow::Result<()> {
    let cred = stream.peer_cred()?;
    let (uid, gid) = (cred.uid(), cred.gid());
    if !policy.allows(uid, gid, &peer_groups(&stream)) {
        tracing::warn!(uid, gid, "control connection refused: uid not allowed");
        // Read what the client sends first (its hello, briefly) so it is not
        // writing into a closed socket and gets to read the refusal.
        let mut scratch = [0u8; 1024];
        let mut stream = stream;
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            stream.read(&mut scratch),
        )
        .await;
        refuse(
            stream,
            "forbidden",
            &format!("uid {uid} may not use this control socket"),
        )
        .await?;
        return Ok(());
    }
    let (read_half, mut write_half) = stream.into_split();
    let mut reader = FrameReader {
        stream: read_half,
        buf: Vec::with_capacity(4096),
    };

    // Hello first.
    let hello = match reader.next().await? {
        Read::Frame(frame) => decode_client_frame(&frame),
        Read::Closed => return Ok(()),
        Read::TooLarge => {
            let bytes = encode_frame(&ServerFrame::Error(ErrorBody::new(
                "frame_too_large",
                format!("frames are limited to {MAX_FRAME_BYTES} bytes"),
            )))?;
            write_half.write_all(&bytes).await?;
            return Ok(());
        }
    };
    let client = match hello {
        Ok(ClientFrame::Hello(hello)) if hello.version == PROTOCOL_VERSION => hello.client,
        Ok(ClientFrame::Hello(hello)) => {
            let bytes = encode_frame(&ServerFrame::Error(ErrorBody::new(
                "unsupported_version",
                format!(
                    "this pooldeskd speaks control protocol {PROTOCOL_VERSION}, the client sent {}; upgrade the older side",
                    hello.version
                ),
            )))?;
            write_half.write_all(&bytes).await?;
            return Ok(());
        }
        _ => {
            let bytes = encode_frame(&ServerFrame::Error(ErrorBody::new(
                "hello_expected",
                format!(
                    "the first frame must be {{\"type\":\"hello\",\"version\":{PROTOCOL_VERSION},\"client\":\"...\"}}"
                ),
            )))?;
            write_half.write_all(&bytes).await?;
            return Ok(());
        }
    };
    tracing::info!(uid, client = %client, "control client connected");

    let (outbox, mut outbox_rx) = mpsc::channel::<ServerFrame>(OUTBOX_FRAMES);
    let writer = tokio::spawn(async move {
        while let Some(frame) = outbox_rx.recv().await {
            let bytes = match encode_frame(&frame) {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::error!(error = %e, "control frame could not be encoded");
                    continue;
                }
            };
            if write_half.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = write_half.shutdown().await;
    });
    outbox
        .send(ServerFrame::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            server: crate::snapshot::server_name(),
            peer_uid: uid,
            simulated: app.simulated(),
        }))
        .await?;

    let in_flight = Arc::new(Semaphore::new(REQUESTS_IN_FLIGHT));
    let mut subscription: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let read = tokio::select! {
            _ = app.shutdown.cancelled() => break,
            read = reader.next() => read?,
        };
        let frame = match read {
            Read::Frame(frame) => frame,
            Read::Closed => break,
            Read::TooLarge => {
                let _ = outbox
                    .send(ServerFrame::Error(ErrorBody::new(
                        "frame_too_large",
                        format!(
                            "frames are limited to {MAX_FRAME_BYTES} bytes; closing this connection"
                        ),
                    )))
                    .await;
                break;
            }
        };
        let request = match decode_client_frame(&frame) {
            Ok(ClientFrame::Request(request)) => request,
            Ok(ClientFrame::Hello(_)) => continue,
            Err(e) => {
                if let Some(id) = salvage_request_id(&frame) {
                    let _ = outbox
                        .send(ServerFrame::Response(ResponseFrame {
                            id,
                            outcome: Outcome::Err(ErrorBody::new(
                                "unknown_method",
                                format!("request not understood: {e}"),
                            )),
                        }))
                        .await;
                    continue;
                }
                let _ = outbox
                    .send(ServerFrame::Error(ErrorBody::new(
                        "bad_frame",
                        format!("frame not understood: {e}"),
                    )))
                    .await;
                break;
            }
        };
        if matches!(request.body, pooldesk_proto::control::Request::Subscribe)
            && subscription.is_none()
        {
            subscription = Some(tokio::spawn(forward_events(app.clone(), outbox.clone())));
        }
        let permit = in_flight.clone().acquire_owned().await?;
        let app = app.clone();
        let outbox = outbox.clone();
        tokio::spawn(async move {
            let outcome = dispatch::handle(&app, uid, request.body).await;
            let _ = outbox
                .send(ServerFrame::Response(ResponseFrame {
                    id: request.id,
                    outcome,
                }))
                .await;
            drop(permit);
        });
    }
    if let Some(task) = subscription {
        task.abort();
    }
    drop(outbox);
    let _ = writer.await;
    tracing::info!(uid, "control client disconnected");
    Ok(())
}

/// Pushes bus events to a subscriber. Credits are not forwarded (the TUI
/// reads totals from the per-second pool snapshot); a subscriber that
/// falls behind gets `Lagged` and should re-read its views.
async fn forward_events(app: App, outbox: mpsc::Sender<ServerFrame>) {
    let mut rx = app.bus.subscribe();
    loop {
        let envelope = tokio::select! {
            _ = app.shutdown.cancelled() => return,
            received = rx.recv() => received,
        };
        let (seq, event) = match envelope {
            Ok(envelope) => {
                let event = match &envelope.event {
                    BusEvent::Pool(snapshot) => Event::Pool(Box::new((**snapshot).clone())),
                    BusEvent::Withdrawal(row) => Event::Withdrawal(row.clone()),
                    BusEvent::Batch(row) => Event::Batch(row.clone()),
                    BusEvent::Audit(entry) => Event::Audit(entry.clone()),
                    BusEvent::Block(row) => Event::Block(row.clone()),
                    BusEvent::Credits(_) | BusEvent::Faucet { .. } => continue,
                };
                (envelope.seq, event)
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                app.metrics.events_lagged.inc_by(missed);
                (0, Event::Lagged { missed })
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        // A full outbox means the client stopped reading: drop events for
        // it rather than grow memory; it is told how many.
        match outbox.try_send(ServerFrame::Event(EventFrame { seq, event })) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                app.metrics.events_lagged.inc();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}
