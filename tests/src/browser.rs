//! Web clients for the end-to-end tests: an `EventSource`-like reader of
//! the daemon's SSE stream, and headless Chromium driven over WebDriver
//! (Debian's `chromium` + `chromium-driver`).
//!
//! Chromium is optional on a developer machine: [`Browser::start`] returns
//! `None` when either binary is missing, after [`crate::skip::skip_or_fail`]
//! says so on stderr (and, with `CI=true`, fails the test instead).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

// ---- SSE ---------------------------------------------------------------------

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `message` when the server named none.
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }

    pub fn id_u64(&self) -> Option<u64> {
        self.id.as_deref().and_then(|id| id.parse().ok())
    }
}

/// Reads an SSE response the way a browser's `EventSource` does (event,
/// id and data fields; comments ignored; dispatch on a blank line).
pub struct EventStream {
    response: reqwest::Response,
    buf: Vec<u8>,
    pending: Option<SseEvent>,
    pub status: u16,
    /// Keep-alive comments seen.
    pub comments: usize,
}

impl EventStream {
    /// Opens `url` with an optional `Last-Event-ID` header.
    pub async fn open(url: &str, last_event_id: Option<&str>) -> EventStream {
        let client = reqwest::Client::builder().build().expect("http client");
        let mut request = client.get(url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("open the event stream");
        EventStream {
            status: response.status().as_u16(),
            response,
            buf: Vec::new(),
            pending: None,
            comments: 0,
        }
    }

    /// Response headers (content type, cache control…).
    pub fn header(&self, name: &str) -> Option<String> {
        self.response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The next event, or `None` when `timeout` passed. A stream that
    /// ended or failed panics: it is not "no event" (use [`Self::ended`]
    /// where the end is what a test waits for).
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(event) = self.parse_one() {
                return Some(event);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => self.buf.extend_from_slice(&bytes),
                Ok(Ok(None)) => panic!("the event stream ended while waiting for an event"),
                Ok(Err(e)) => panic!("the event stream failed while waiting for an event: {e}"),
                Err(_) => return None,
            }
        }
    }

    /// The next event, or `None` when the server ended the stream; a
    /// timeout or a failed stream panics.
    pub async fn next_or_end(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(event) = self.parse_one() {
                return Some(event);
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.extend_from_slice(&bytes),
                Ok(Ok(None)) => return None,
                Ok(Err(e)) => panic!("the event stream failed: {e}"),
                Err(_) => panic!("no event and no end of the stream within {timeout:?}"),
            }
        }
    }

    /// The next event of one of `kinds`, skipping others.
    pub async fn next_of(&mut self, kinds: &[&str], timeout: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self.next(left).await?;
            if kinds.contains(&event.event.as_str()) {
                return Some(event);
            }
        }
    }

    /// True when the server closed the stream within `timeout`.
    pub async fn ended(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) | Ok(Err(_)) => return true,
                Err(_) => return false,
            }
        }
    }

    fn parse_one(&mut self) -> Option<SseEvent> {
        loop {
            let newline = self.buf.iter().position(|b| *b == b'\n')?;
            let line: Vec<u8> = self.buf.drain(..=newline).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1])
                .trim_end_matches('\r')
                .to_string();
            if line.is_empty() {
                if let Some(event) = self.pending.take() {
                    return Some(event);
                }
                continue;
            }
            if line.starts_with(':') {
                self.comments += 1;
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()),
                None => (line.clone(), String::new()),
            };
            let event = self.pending.get_or_insert_with(|| SseEvent {
                event: "message".into(),
                id: None,
                data: String::new(),
            });
            match field.as_str() {
                "event" => event.event = value,
                "id" => event.id = Some(value),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(&value);
                }
                _ => {}
            }
        }
    }
}

// ---- Chromium over WebDriver ------------------------------------------------------

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Where screenshots go: `<repo>/artifacts/screenshots/` (gitignored; CI
/// keeps them).
pub fn screenshot_dir() -> PathBuf {
    crate::daemon::workspace_root()
        .join("artifacts")
        .join("screenshots")
}

/// A headless Chromium session. The driver and the browser are stopped on
/// drop.
pub struct Browser {
    pub client: fantoccini::Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a fresh headless Chromium (new profile, no
    /// background networking: this machine has no network and Chromium
    /// would otherwise flood refused connections). `None` when Chromium is
    /// not installed: the caller's test (`suite`) is skipped and says so,
    /// or fails under `CI=true`.
    pub async fn start(suite: &str) -> Option<Browser> {
        if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists()
        {
            crate::skip::skip_or_fail(
                suite,
                &format!(
                    "{CHROMIUM} or {CHROMEDRIVER} is not installed \
                     (apt-get install chromium chromium-driver; contrib/test.sh installs them)"
                ),
            );
            return None;
        }
        let port = crate::daemon::free_port();
        // Its own process group: Chromium is chromedriver's child, and a
        // killed chromedriver leaves it running (a leaked browser per test
        // eats a 2-core machine); the group is killed as one.
        let driver = Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        let driver_url = format!("http://127.0.0.1:{port}");
        wait_for_driver(&driver_url).await;
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver_url)
            .await
            .expect("start a Chromium session");
        Some(Browser {
            client,
            driver,
            _profile: profile,
        })
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Runs a script (`return …`) and gives its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Runs an async script; it must call `arguments[arguments.length-1]`.
    pub async fn eval_async(&self, script: &str) -> Value {
        self.client
            .execute_async(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("async script failed: {e}\n{script}"))
    }

    /// The text of the first element matching `css` (empty when none).
    pub async fn text(&self, css: &str) -> String {
        let script = format!(
            "const n = document.querySelector({}); return n ? n.textContent : '';",
            serde_json::to_string(css).expect("json")
        );
        self.eval(&script).await.as_str().unwrap_or("").to_string()
    }

    /// Waits until the text of `css` satisfies `ok`; returns it.
    pub async fn wait_text(
        &self,
        css: &str,
        timeout: Duration,
        what: &str,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text(css).await;
            if ok(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {css} shows {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types into an input (replacing its value).
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self
            .client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Resizes the window (the viewport in headless mode).
    pub async fn viewport(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize");
    }

    /// Saves a PNG screenshot as `<name>.png` under [`screenshot_dir`].
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let png = self.client.screenshot().await.expect("screenshot");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Desktop (1280×900) and phone (390×844) screenshots of the current
    /// page; leaves the window at desktop size.
    pub async fn screenshots(&self, name: &str) {
        self.viewport(1280, 900).await;
        self.screenshot(&format!("{name}-desktop")).await;
        self.viewport(390, 844).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.screenshot(&format!("{name}-phone")).await;
        self.viewport(1280, 900).await;
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        // Drop kills what is left.
    }

    /// chromedriver and every browser process it started.
    fn kill_all(&mut self) {
        // SAFETY: killpg on the group this Browser created; no memory
        // is touched.
        unsafe {
            libc::killpg(self.driver.id() as libc::pid_t, libc::SIGKILL);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill_all();
    }
}

async fn wait_for_driver(url: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(format!("{url}/status")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
