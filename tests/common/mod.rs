//! What the black-box tests of the running service share: a minimal HTTP client (and a
//! server-sent events reader), a hall of simulated devices served by the real `hallctl` binary
//! on a temporary data directory, and the steps of a job's way through it.
//!
//! The HTTP client is a few lines over `std::net::TcpStream` (HTTP/1.1, one request per
//! connection): it needs no dependency, and it can send what a well-behaved client library
//! would not (malformed JSON, oversized bodies).
//!
//! Every wait is for an event or a condition (polled), with a generous deadline; nothing asserts
//! on timing. The deadlines only turn a test that would hang into a failure: on a busy machine
//! everything takes longer.

// Each test binary uses a part of this.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{Datelike, Months, Utc};
use hallctl_jobs::intake::{IntakeContext, JobRequest, PersonalizationRequest, validate};
use hallctl_jobs::job::JobId;
use serde_json::{Value, json};

// ---- waits ---------------------------------------------------------------------------------------

/// The ceiling of an awaited event in the async tests.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Awaits `fut`; panics naming `what` when it has not completed within [`PATIENCE`]. (The
/// blocking tests poll with [`wait_for`].)
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {PATIENCE:?} waiting for {what}"),
    }
}

// ---- a minimal HTTP client ----------------------------------------------------------------------

/// An answer: status and body (parsed as JSON when it is JSON, else `Value::Null`).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub text: String,
    pub body: Value,
}

impl Resp {
    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16, what: &str) -> Value {
        assert_eq!(self.status, status, "{what}: {}", self.text);
        self.body
    }

    /// Asserts the one error body: `{"error": {"code", "message", ...}}`.
    #[track_caller]
    pub fn error(&self, what: &str) -> (String, String, Option<String>) {
        let e = &self.body["error"];
        let code = e["code"].as_str();
        let message = e["message"].as_str();
        assert!(
            code.is_some_and(|c| !c.is_empty()) && message.is_some_and(|m| !m.is_empty()),
            "{what}: not the one error body: {}",
            self.text
        );
        (
            code.unwrap().to_string(),
            message.unwrap().to_string(),
            e["field"].as_str().map(str::to_string),
        )
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
}

impl Client {
    /// Sends one request under `/api/v1` and reads the whole answer.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
        content_type: &str,
    ) -> Resp {
        let mut last_err = None;
        // A server that refuses a large body may reset the connection before the answer is
        // read; one more try then.
        for _ in 0..3 {
            match self.once(method, path, token, body, content_type) {
                Ok(r) => return r,
                Err(e) => last_err = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{method} {path}: {last_err:?}");
    }

    pub fn once(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
        content_type: &str,
    ) -> std::io::Result<Resp> {
        // `/metrics` is where scrapers look, outside the API.
        let path = if path == "/metrics" {
            path.to_string()
        } else {
            format!("/api/v1{path}")
        };
        self.once_at(method, &path, token, body, content_type)
    }

    /// A GET of a path outside `/api/v1` (`/metrics`, another service's routes).
    pub fn get_at(&self, path: &str, token: Option<&str>) -> Resp {
        self.once_at("GET", path, token, None, "application/json")
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// One request to `path` as given.
    pub fn once_at(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
        content_type: &str,
    ) -> std::io::Result<Resp> {
        let mut s = TcpStream::connect(self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        s.set_write_timeout(Some(Duration::from_secs(60)))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\n",
            self.addr
        );
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        let body = body.unwrap_or_default();
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        // The server may answer (413) before it reads the body: write it from another thread
        // while this one reads, and ignore a write error.
        let writer = {
            let mut w = s.try_clone()?;
            let body = body.to_vec();
            std::thread::spawn(move || {
                let _ = w.write_all(&body);
            })
        };
        let mut raw = Vec::new();
        let read = s.read_to_end(&mut raw);
        let _ = writer.join();
        if let Err(e) = read
            && raw.is_empty()
        {
            return Err(e);
        }
        parse_response(&raw)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.raw("GET", path, token, None, "application/json")
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Resp {
        let b = serde_json::to_vec(body).unwrap();
        self.raw("POST", path, token, Some(&b), "application/json")
    }

    pub fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.raw("DELETE", path, token, None, "application/json")
    }
}

// ---- server-sent events -------------------------------------------------------------------------

/// One open `GET /api/v1/stream`: reads the chunked body as it comes and splits it into events.
pub struct SseStream {
    reader: BufReader<TcpStream>,
    buf: String,
}

impl Client {
    /// Opens the status stream with `token` and checks the answer is an event stream.
    pub fn stream(&self, token: &str) -> SseStream {
        let mut s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET /api/v1/stream HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("a header line");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        assert!(head.starts_with("HTTP/1.1 200"), "the stream opens: {head}");
        assert!(
            head.to_ascii_lowercase().contains("text/event-stream"),
            "{head}"
        );
        SseStream {
            reader,
            buf: String::new(),
        }
    }
}

impl SseStream {
    /// The next event (name, JSON data), skipping keep-alive comments; panics after 30 s
    /// without one.
    pub fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(event) = next_sse_event(&mut self.buf) {
                return event;
            }
            // One chunk: its size in hex, CRLF, the data, CRLF.
            let mut size = String::new();
            self.reader
                .read_line(&mut size)
                .expect("a chunk within 30 s");
            let n = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
            assert!(n > 0, "the stream ended");
            let mut chunk = vec![0; n + 2];
            self.reader.read_exact(&mut chunk).expect("the chunk");
            self.buf
                .push_str(std::str::from_utf8(&chunk[..n]).expect("UTF-8"));
        }
    }

    /// The next event, or `None` once the stream ends or fails (for a reader on a thread of its
    /// own, which outlives its hall).
    pub fn try_next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(event) = next_sse_event(&mut self.buf) {
                return Some(event);
            }
            let mut size = String::new();
            self.reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 {
                return None;
            }
            let mut chunk = vec![0; n + 2];
            self.reader.read_exact(&mut chunk).ok()?;
            self.buf.push_str(std::str::from_utf8(&chunk[..n]).ok()?);
        }
    }

    /// Reads events until `f` accepts one; panics after `max` events.
    #[track_caller]
    pub fn until(
        &mut self,
        max: usize,
        mut f: impl FnMut(&str, &Value) -> bool,
    ) -> (String, Value) {
        for _ in 0..max {
            let (name, v) = self.next();
            if f(&name, &v) {
                return (name, v);
            }
        }
        panic!("no such event among the next {max}");
    }
}

pub fn parse_response(raw: &[u8]) -> std::io::Result<Resp> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("bad chunk"))?;
            let size_text = String::from_utf8_lossy(&rest[..eol]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size.min(rest.len())]);
            rest = &rest[(size + 2).min(rest.len())..];
        }
        body = out;
    }
    let text = String::from_utf8_lossy(&body).to_string();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Resp { status, text, body })
}

// ---- the hall -----------------------------------------------------------------------------------

/// Everyone's PIN (6 digits, not trivial, distinct).
pub const PEOPLE: &[(&str, &str, &str)] = &[
    ("S1", "supervisor", "482917"),
    ("A1", "operator", "395172"),
    ("A2", "operator", "618204"),
    ("B1", "operator", "730581"),
    ("B2", "operator", "264093"),
    ("C1", "operator", "851736"),
    ("D1", "operator", "507349"),
    ("V1", "operator", "942615"),
    ("V2", "operator", "176428"),
    ("AU1", "auditor", "583061"),
    ("AD1", "admin", "329748"),
];

pub fn pin(user: &str) -> &'static str {
    PEOPLE
        .iter()
        .find(|p| p.0 == user)
        .map(|p| p.2)
        .expect("a known user")
}

pub fn hallctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hallctl"));
    c.env_remove("RUST_BACKTRACE").env("RUST_LOG", "info");
    c
}

/// The test hall. Its devices are simulated; their request timeout is seconds (the defaults are a
/// real line's 150 ms and 100 ms), so that a busy machine never makes a healthy device miss polls
/// and go offline in the middle of a test. The faults the tests inject (a jam, a pulled cable)
/// are reported at once, not by timeouts.
pub const HALL_TOML: &str = r#"
[hall]
id = "svc-test"
name = "Service API test hall"
issuing_state = "D"

[server]
listen = "127.0.0.1:0"
data_dir = "data"
body_limit_bytes = 65536
request_timeout_secs = 30
shutdown_grace_secs = 2

[[buses]]
id = "rs485-a"
simulate = true

[[stations]]
id = "VAULT"
kind = "vault"

[[stations]]
id = "PRINT-01"
kind = "print"
device = { id = "PR-01", driver = "printer", simulate = true, timeout_ms = 2000 }

[[stations]]
id = "PRINT-02"
kind = "print"
device = { id = "PR-02", driver = "printer", simulate = true, timeout_ms = 2000 }

[[stations]]
id = "LAM-01"
kind = "laminate"
device = { id = "LM-01", driver = "laminator", bus = "rs485-a", unit = 1, timeout_ms = 2000 }

[[stations]]
id = "LAM-02"
kind = "laminate"
device = { id = "LM-02", driver = "laminator", bus = "rs485-a", unit = 2, timeout_ms = 2000 }

[[stations]]
id = "QC-01"
kind = "qc"

[[stations]]
id = "QC-02"
kind = "qc"

[[stations]]
id = "DISPATCH-01"
kind = "dispatch"
"#;

/// A running service; killed (SIGKILL) when dropped. On a failing test its log is printed.
pub struct Hall {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub client: Client,
    pub monitor_token: String,
    pub scale: f64,
}

impl Hall {
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("hall.toml")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("serve.log")
    }

    /// Kills the service at once (SIGKILL: no shutdown, nothing flushed beyond what the
    /// service made durable itself).
    /// Injects a fault into a simulated device through the service's `--sim-faults-stdin`.
    pub fn inject(&mut self, command: &str) {
        let child = self.child.as_mut().expect("the service runs");
        let stdin = child.stdin.as_mut().expect("the service's stdin");
        writeln!(stdin, "{command}").expect("write the fault command");
        stdin.flush().unwrap();
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the service again on the same data directory.
    pub fn restart(&mut self) {
        self.kill9();
        let (child, addr) = start_serve(&self.config(), &self.log(), self.scale);
        self.child = Some(child);
        self.client = Client { addr };
    }

    /// Starts the service again on the same data directory and at the same address, as a real
    /// hall's controller restarts: the pages open in a browser keep talking to it.
    pub fn restart_at_the_same_address(&mut self) {
        let addr = self.client.addr;
        let toml = std::fs::read_to_string(self.config()).expect("the configuration");
        let pinned = toml.replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"{addr}\""),
            1,
        );
        assert_ne!(
            pinned, toml,
            "the configuration listens on a port of its choice"
        );
        std::fs::write(self.config(), pinned).expect("write the configuration");
        self.restart();
        assert_eq!(self.client.addr, addr, "the service listens where it did");
    }

    pub fn sign_in(&self, user: &str, station: Option<&str>) -> String {
        let mut body = json!({"user": user, "pin": pin(user)});
        if let Some(s) = station {
            body["station"] = json!(s);
        }
        let v = self
            .client
            .post("/session", None, &body)
            .expect(200, &format!("{user} signs in at {station:?}"));
        v["token"].as_str().expect("a token").to_string()
    }
}

impl Drop for Hall {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            let tail: String = log
                .chars()
                .rev()
                .take(6000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            eprintln!("---- serve log (tail) ----\n{tail}\n---- end ----");
        }
    }
}

pub fn start_serve(config: &Path, log: &Path, scale: f64) -> (Child, SocketAddr) {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut child = hallctl()
        .args(["serve", "--config"])
        .arg(config)
        .args(["--sim-time-scale", &scale.to_string()])
        .arg("--sim-faults-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("start hallctl serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(a) = line.split("listening on http://").nth(1) {
                let _ = tx.send(a.trim().to_string());
            }
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(a) => a.parse().expect("a socket address"),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the service did not say where it listens:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    };
    (child, addr)
}

/// Writes the hall's configuration, creates every account with the console (before the service
/// runs: it locks the data directory), starts the service and waits until it answers.
pub fn spawn_hall(scale: f64) -> Hall {
    spawn_hall_with(scale, "")
}

/// As [`spawn_hall`], with `extra` appended to the configuration (an `[alerts]` table...).
pub fn spawn_hall_with(scale: f64, extra: &str) -> Hall {
    spawn_hall_as(scale, &format!("{HALL_TOML}\n{extra}\n"), PEOPLE)
}

/// As [`spawn_hall`], with the whole configuration `toml` (`data_dir = "data"` beside it: a
/// hall of another id...) and only `people` (of [`PEOPLE`]) besides the monitoring account.
pub fn spawn_hall_as(scale: f64, toml: &str, people: &[(&str, &str, &str)]) -> Hall {
    spawn_hall_in(tempfile::tempdir().expect("tempdir"), scale, toml, people)
}

/// As [`spawn_hall_as`], in `dir` (whose `data` may already be a mount of its own).
pub fn spawn_hall_in(
    dir: tempfile::TempDir,
    scale: f64,
    toml: &str,
    people: &[(&str, &str, &str)],
) -> Hall {
    let config = dir.path().join("hall.toml");
    std::fs::write(&config, toml).unwrap();
    let data = dir.path().join("data");
    for (id, role, pin) in people {
        let mut child = hallctl()
            .args([
                "users",
                "add",
                id,
                "--name",
                &format!("Test {id}"),
                "--role",
                role,
            ])
            .arg("--pin-stdin")
            .arg("--data-dir")
            .arg(&data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hallctl users add");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{pin}\n").as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "users add {id}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = hallctl()
        .args([
            "users",
            "add",
            "MON1",
            "--name",
            "Monitoring",
            "--role",
            "monitor",
        ])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "users add MON1: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let monitor_token = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .expect("the service token")
        .trim()
        .to_string();
    let log = dir.path().join("serve.log");
    let (child, addr) = start_serve(&config, &log, scale);
    let hall = Hall {
        dir,
        child: Some(child),
        client: Client { addr },
        monitor_token,
        scale,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = hall.client.once("GET", "/health", None, None, "text/plain");
        if r.is_ok_and(|r| r.status == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the service never answered /health"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    hall
}

// ---- jobs ----------------------------------------------------------------------------------------

/// A valid request: due in two days, issued today, valid ten years.
pub fn job_request(tracking: &str, surname: &str, document_number: &str) -> JobRequest {
    let today = Utc::now().date_naive();
    let expiry = today
        .checked_add_months(Months::new(120))
        .unwrap()
        .pred_opt()
        .unwrap();
    JobRequest {
        tracking_number: tracking.into(),
        doc_type: "ordinary".into(),
        class: "normal".into(),
        groups: vec![],
        due: (Utc::now() + chrono::Duration::days(2))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        destination: "LHR-01".into(),
        personalization: PersonalizationRequest {
            surname: surname.into(),
            given_names: "Anna Maria".into(),
            nationality: "D".into(),
            date_of_birth: format!("{}-08-12", today.year() - 40),
            sex: "female".into(),
            place_of_birth: "Zenith".into(),
            issuing_state: "D".into(),
            document_number: document_number.into(),
            date_of_issue: today.format("%Y-%m-%d").to_string(),
            date_of_expiry: expiry.format("%Y-%m-%d").to_string(),
            personal_number: String::new(),
            portrait_ref: "portrait:specimen".into(),
        },
    }
}

/// The MRZ lines of a request, generated from the same data the service got.
pub fn mrz_of(req: &JobRequest) -> [String; 2] {
    let ctx = IntakeContext {
        now: Utc::now(),
        job_id: JobId(1),
        known_destinations: None,
        issuing_states: None,
    };
    let job = validate(req, &ctx).expect("a valid request");
    let m = hallctl_jobs::mrz::generate(job.doc_type, &job.data).expect("an MRZ");
    [m.line1().to_string(), m.line2().to_string()]
}

/// Submits one job; returns its id.
pub fn submit(c: Client, sup: &str, req: &JobRequest) -> u64 {
    let v = c
        .post("/jobs", Some(sup), &json!({"jobs": [req]}))
        .expect(200, "submit");
    assert_eq!(v["jobs"][0]["status"], "created", "{v}");
    v["jobs"][0]["job"].as_u64().expect("a job id")
}

pub fn job(c: Client, tok: &str, id: u64) -> Value {
    c.get(&format!("/jobs/{id}"), Some(tok))
        .expect(200, "get job")
}

pub fn job_state(c: Client, tok: &str, id: u64) -> String {
    job(c, tok, id)["state"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Polls until `f` returns `Some`, or panics after `secs` with `what` and the last value seen.
#[track_caller]
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> (Option<T>, String)) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (v, seen) = f();
        if let Some(v) = v {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last seen: {seen}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn station(c: Client, tok: &str, id: &str) -> Value {
    c.get(&format!("/stations/{id}"), Some(tok))
        .expect(200, "get station")
}

/// Waits until `station`'s work is `job` in `phase`.
#[track_caller]
pub fn wait_work(c: Client, tok: &str, st: &str, job: u64, phase: &str) -> Value {
    wait_for(60, &format!("job {job} {phase} at {st}"), || {
        let v = station(c, tok, st);
        let ok = v["work"]["job"].as_u64() == Some(job) && v["work"]["phase"] == phase;
        (ok.then(|| v.clone()), v.to_string())
    })
}

#[track_caller]
pub fn wait_job_state(c: Client, tok: &str, id: u64, states: &[&str]) -> Value {
    wait_for(60, &format!("job {id} in {states:?}"), || {
        let v = job(c, tok, id);
        let ok = states.contains(&v["state"]["state"].as_str().unwrap_or_default());
        (ok.then(|| v.clone()), v.to_string())
    })
}

/// Every ledger record, as the auditor sees them: page after page (`/ledger/records`, oldest
/// first), following each page's `next` until the search is `complete`.
pub fn records(c: Client, auditor: &str) -> Vec<Value> {
    records_of(c, auditor, "")
}

/// Every record of a `/ledger/records` query (`query`: its filters, `&`-terminated or empty),
/// oldest first, page after page until `complete`.
pub fn records_of(c: Client, auditor: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    for _ in 0..100_000 {
        let page = c
            .get(
                &format!("/ledger/records?{query}limit=10000&after={after}"),
                Some(auditor),
            )
            .expect(200, "ledger records");
        out.extend(page["records"].as_array().expect("records").iter().cloned());
        if page["complete"] == true {
            return out;
        }
        after = page["next"]
            .as_u64()
            .expect("an incomplete page names its next");
    }
    panic!("the pages of {query} never end");
}

/// The ledger's last sequence number (and record count, which must agree).
pub fn ledger_head(c: Client, auditor: &str) -> u64 {
    let r = records(c, auditor);
    let head = r
        .iter()
        .filter_map(|r| r["seq"].as_u64())
        .max()
        .unwrap_or(0);
    assert_eq!(head, r.len() as u64, "the ledger's records have no gaps");
    head
}

/// The ledger's records but the facts of refusals and alerts about them (`refused`,
/// `alert_raised`, `alert_repeated`): what a refused request must leave as it was.
pub fn records_but_refusals(c: Client, auditor: &str) -> Vec<Value> {
    records(c, auditor)
        .into_iter()
        .filter(|r| {
            let kind = r["event"]["action"]["kind"].as_str().unwrap_or_default();
            !matches!(kind, "refused" | "alert_raised" | "alert_repeated")
        })
        .collect()
}

/// The `refused` records after `seq`: (actor, rule, station, serials).
pub fn refusals_after(
    c: Client,
    auditor: &str,
    seq: u64,
) -> Vec<(String, String, String, Vec<String>)> {
    records(c, auditor)
        .into_iter()
        .filter(|r| r["seq"].as_u64() > Some(seq) && r["event"]["action"]["kind"] == "refused")
        .map(|r| {
            let a = &r["event"]["action"];
            (
                r["actor"].as_str().unwrap_or_default().to_string(),
                a["rule"].as_str().unwrap_or_default().to_string(),
                a["station"].as_str().unwrap_or_default().to_string(),
                a["serials"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect(),
            )
        })
        .collect()
}

/// The step of `event` on the trace of `serial` (panics, showing the trace, when it has none).
#[track_caller]
pub fn trace_step(c: Client, auditor: &str, serial: &str, event: &str) -> Value {
    let t = c
        .get(&format!("/ledger/trace/{serial}"), Some(auditor))
        .expect(200, "trace");
    t["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["event"] == event)
        .cloned()
        .unwrap_or_else(|| panic!("no {event} on the trace of {serial}: {t}"))
}

/// The operator (signed in at `st` with `tok`) opens a custody session there, with nothing
/// issued yet. Returns its id.
pub fn open_session(c: Client, tok: &str, st: &str) -> String {
    let v = c
        .post("/custody/sessions", Some(tok), &json!({"station": st}))
        .expect(200, &format!("open a session at {st}"));
    v["session"].as_str().expect("a session id").to_string()
}

// ---- custody -------------------------------------------------------------------------------------

pub const BOOKLETS: &str = "B1000100-B1000199";
pub const PATCHES: &str = "P2000100-P2000199";

pub fn receive_lots(c: Client, sup: &str) {
    c.post(
        "/custody/lots",
        Some(sup),
        &json!({"lot": "BX-1", "kind": "booklet", "supplier": "Specimen Security Print", "range": BOOKLETS}),
    )
    .expect(200, "booklet lot");
    c.post(
        "/custody/lots",
        Some(sup),
        &json!({"lot": "R-1", "kind": "patch", "supplier": "Specimen Films", "range": PATCHES}),
    )
    .expect(200, "patch roll");
}

/// The operator (signed in at `station` with `tok`) opens a session there and gets `range`
/// issued, counted by themself and the supervisor S1. Returns the session id.
/// `user` leaves their station for `station`: returns the `unused` range of `session` (counted
/// with S1), closes it, signs out, signs in at `station` and opens a session there with `issue`
/// issued. Returns the new token.
#[allow(clippy::too_many_arguments)]
pub fn move_operator(
    hall: &Hall,
    c: Client,
    tok: &str,
    user: &str,
    session: &str,
    unused: &str,
    station: &str,
    issue: &str,
) -> String {
    c.post(
        &format!("/custody/sessions/{session}/return"),
        Some(tok),
        &json!({"range": unused, "counters": [
            {"user": user, "pin": pin(user)}, {"user": "S1", "pin": pin("S1")},
        ]}),
    )
    .expect(200, &format!("{user} returns the unused items"));
    c.post(
        &format!("/custody/sessions/{session}/close"),
        Some(tok),
        &json!({}),
    )
    .expect(200, &format!("{user} closes the session"));
    c.delete("/session", Some(tok))
        .expect(204, &format!("{user} signs out"));
    let tok = hall.sign_in(user, Some(station));
    open_and_issue(c, &tok, user, station, issue);
    tok
}

pub fn open_and_issue(c: Client, tok: &str, user: &str, st: &str, range: &str) -> String {
    let v = c
        .post("/custody/sessions", Some(tok), &json!({"station": st}))
        .expect(200, &format!("{user} opens a session at {st}"));
    let session = v["session"].as_str().expect("a session id").to_string();
    c.post(
        &format!("/custody/sessions/{session}/issue"),
        Some(tok),
        &json!({"range": range, "counters": [
            {"user": user, "pin": pin(user)},
            {"user": "S1", "pin": pin("S1")},
        ]}),
    )
    .expect(200, &format!("issue {range} to {user}"));
    session
}

/// The crew of one job's print and lamination: the supervisor watching, the printer's
/// operator at PRINT-01 and the laminator's at LAM-01.
pub struct LineCrew<'a> {
    pub sup: &'a str,
    pub printer: &'a str,
    pub laminator: &'a str,
}

/// Takes submitted job `id` through print (`booklet`, confirmed at PRINT-01) and lamination
/// (`patch` at LAM-01), up to the lamination awaiting its operator's confirmation.
#[allow(dead_code)] // not every test binary uses every helper
pub fn print_and_laminate(c: Client, w: &LineCrew<'_>, id: u64, booklet: &str, patch: &str) {
    wait_work(c, w.sup, "PRINT-01", id, "assigned");
    c.post(
        "/stations/PRINT-01/print",
        Some(w.printer),
        &json!({ "booklet": booklet }),
    )
    .expect(200, "print");
    wait_work(c, w.sup, "PRINT-01", id, "awaiting_confirmation");
    c.post("/stations/PRINT-01/confirm", Some(w.printer), &json!({}))
        .expect(200, "confirm the print");
    wait_work(c, w.sup, "LAM-01", id, "assigned");
    c.post(
        "/stations/LAM-01/laminate",
        Some(w.laminator),
        &json!({ "patch": patch }),
    )
    .expect(200, "laminate");
    wait_work(c, w.sup, "LAM-01", id, "awaiting_confirmation");
}

/// Takes the next complete SSE event (name, JSON data) off the front of `buf`, skipping
/// keep-alive comments; `None` until a whole event has arrived.
pub fn next_sse_event(buf: &mut String) -> Option<(String, Value)> {
    while let Some(end) = buf.find("\n\n") {
        let block: String = buf.drain(..end + 2).collect();
        let mut name = String::from("message");
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if !data.is_empty() {
            return Some((name, serde_json::from_str(&data).expect("JSON data")));
        }
    }
    None
}

/// The `p`th percentile of `sorted` (ascending), by nearest rank; NaN when it is empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// A shift (A 06–14, B 14–22, C 22–06 UTC) whose sign-in window (30 minutes either side) does
/// not hold this moment, and the shift now.
pub fn a_shift_out_of_reach() -> (char, char) {
    use chrono::Timelike;
    let now = chrono::Utc::now();
    let minute = now.hour() * 60 + now.minute();
    let starts = [('A', 6 * 60), ('B', 14 * 60), ('C', 22 * 60)];
    let covers = |start: u32| (minute + 24 * 60 - (start - 30)) % (24 * 60) < 9 * 60;
    let current = starts
        .iter()
        .find(|(_, s)| (minute + 24 * 60 - s) % (24 * 60) < 8 * 60)
        .unwrap()
        .0;
    let away = starts.iter().find(|(_, s)| !covers(*s)).unwrap().0;
    (away, current)
}
