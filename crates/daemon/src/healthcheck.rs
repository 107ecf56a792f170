//! `pooldeskd healthcheck`: asks a running daemon's `GET /healthz` and
//! turns the answer into an exit status (0 healthy, 1 anything else).
//!
//! It exists for container images, which carry no shell and no curl: the
//! image's `HEALTHCHECK` runs the daemon binary itself. Plain blocking
//! HTTP/1.1 over one TCP connection, every step bounded by a timeout, no
//! runtime started: a wedged daemon must make the check fail, not hang.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Most of an answer read: `/healthz` is a few hundred bytes.
const MAX_ANSWER: u64 = 16 * 1024;

/// The address to connect to for a listen address: a daemon listening on
/// every interface (`0.0.0.0`, `[::]`) is asked on loopback.
pub fn target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// What `/healthz` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn healthy(&self) -> bool {
        self.status == 200
    }
}

/// `GET /healthz` on `addr`; the whole exchange takes at most `timeout`.
pub fn check(addr: SocketAddr, timeout: Duration) -> anyhow::Result<Answer> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| anyhow::anyhow!("no answer within {} ms", timeout.as_millis()))
    };
    let mut stream = TcpStream::connect_timeout(&addr, left()?)
        .map_err(|e| anyhow::anyhow!("cannot connect to {addr}: {e}"))?;
    stream.set_write_timeout(Some(left()?))?;
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: pooldeskd-healthcheck\r\n\
         Accept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot send to {addr}: {e}"))?;
    let mut raw = Vec::new();
    let mut limited = (&stream).take(MAX_ANSWER);
    let mut chunk = [0u8; 4096];
    loop {
        stream.set_read_timeout(Some(left()?))?;
        match limited.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => anyhow::bail!("reading the answer from {addr}: {e}"),
        }
    }
    parse(&raw).ok_or_else(|| {
        anyhow::anyhow!(
            "{addr} did not answer HTTP: {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(80)])
        )
    })
}

/// Status code and body of a raw HTTP/1.x answer (`Connection: close`, so
/// the body is whatever follows the head; a chunked body is shown as is).
fn parse(raw: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(raw);
    let status_line = text.lines().next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim().to_string())
        .unwrap_or_default();
    Some(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-connection server that reads the request head and writes `answer`
    /// (or, with `None`, never answers). Returns its address and the request.
    fn serve_once(answer: Option<&'static str>) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            match answer {
                Some(answer) => conn.write_all(answer.as_bytes()).unwrap(),
                None => std::thread::sleep(Duration::from_millis(1500)),
            }
            String::from_utf8(head).unwrap()
        });
        (addr, handle)
    }

    #[test]
    fn unspecified_listen_address_is_asked_on_loopback() {
        assert_eq!(
            target("0.0.0.0:8080".parse().unwrap()),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            target("[::]:8080".parse().unwrap()),
            "[::1]:8080".parse().unwrap()
        );
        assert_eq!(
            target("10.1.2.3:9".parse().unwrap()),
            "10.1.2.3:9".parse().unwrap()
        );
    }

    #[test]
    fn ok_answer_is_healthy_and_the_request_is_get_healthz() {
        let (addr, server) = serve_once(Some(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"status\":\"ok\"}",
        ));
        let answer = check(addr, Duration::from_secs(5)).unwrap();
        assert!(answer.healthy());
        assert_eq!(answer.body, "{\"status\":\"ok\"}");
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("Connection: close"), "{request}");
    }

    #[test]
    fn degraded_ledger_is_unhealthy() {
        let (addr, _server) = serve_once(Some(
            "HTTP/1.1 503 Service Unavailable\r\n\r\n{\"status\":\"degraded\"}",
        ));
        let answer = check(addr, Duration::from_secs(5)).unwrap();
        assert_eq!(answer.status, 503);
        assert!(!answer.healthy());
    }

    #[test]
    fn nothing_listening_is_an_error() {
        let addr = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        assert!(check(addr, Duration::from_secs(2)).is_err());
    }

    #[test]
    fn silent_server_times_out_instead_of_hanging() {
        let (addr, _server) = serve_once(None);
        let started = Instant::now();
        let err = check(addr, Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1), "{err}");
    }

    #[test]
    fn garbage_is_not_a_health_answer() {
        let (addr, _server) = serve_once(Some("SSH-2.0-OpenSSH_9.2\r\n\r\n"));
        assert!(check(addr, Duration::from_secs(5)).is_err());
    }
}
