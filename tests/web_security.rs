//! The web side's defences, black-box against the real binary (issue 9): HTTPS with the
//! configured certificate (and nothing for plain HTTP on its port), the security headers on
//! every kind of answer, the hall UI's cookie sessions and their CSRF tokens, and the
//! per-address limit on sign-in attempts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// An answer with its headers.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Header lines, names lower-cased.
    headers: Vec<(String, String)>,
    body: Value,
    text: String,
}

impl Answer {
    fn parse(raw: &[u8]) -> Answer {
        let r = parse_response(raw).expect("an HTTP answer");
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..end]).to_string();
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Answer {
            status: r.status,
            headers,
            body: r.body,
            text: r.text,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[track_caller]
    fn expect(&self, status: u16, what: &str) -> &Value {
        assert_eq!(self.status, status, "{what}: {}", self.text);
        &self.body
    }

    #[track_caller]
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_else(|| {
            panic!("not the one error body: {}", self.text);
        })
    }
}

/// One request over `stream` (HTTP/1.1, `Connection: close`), the whole answer read.
fn exchange(
    mut stream: impl Read + Write,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> std::io::Result<Vec<u8>> {
    let body = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: */*\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body)?;
    stream.flush()?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // A TLS peer that closes without close_notify: what was read is the answer.
        Err(e) if !raw.is_empty() => eprintln!("read ended: {e}"),
        Err(e) => return Err(e),
    }
    Ok(raw)
}

/// A plain-HTTP request from 127.0.0.1.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Answer {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let raw = exchange(s, &addr.to_string(), method, path, headers, body).unwrap();
    Answer::parse(&raw)
}

/// The same from another loopback address (`127.0.0.N`): another client for the sign-in limit.
fn send_from(
    from: [u8; 4],
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::from((from, 0))).unwrap();
        sock.connect(addr).await.unwrap().into_std().unwrap()
    });
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let raw = exchange(s, &addr.to_string(), method, path, &[], body).unwrap();
    Answer::parse(&raw)
}

// ---- security headers ---------------------------------------------------------------------------

#[track_caller]
fn assert_common_headers(a: &Answer, what: &str) {
    assert_eq!(
        a.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(a.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(a.header("referrer-policy"), Some("no-referrer"), "{what}");
    assert!(
        a.header("content-security-policy").is_some(),
        "{what}: no CSP: {:?}",
        a.headers
    );
    assert_eq!(
        a.header("strict-transport-security"),
        None,
        "{what}: HSTS over plain HTTP"
    );
    // How long the controller took, for the browser's timings (the scan benchmark's server
    // share): `app;dur=<ms>`.
    let took = a
        .header("server-timing")
        .and_then(|v| v.strip_prefix("app;dur="))
        .and_then(|ms| ms.parse::<f64>().ok());
    assert!(
        took.is_some_and(|ms| ms >= 0.0),
        "{what}: no Server-Timing app;dur=<ms>: {:?}",
        a.headers
    );
}

#[test]
fn every_answer_carries_the_security_headers_errors_included() {
    let hall = spawn_hall(0.02);
    let addr = hall.client.addr;
    for (method, path, status) in [
        ("GET", "/api/v1/health", 200),
        ("GET", "/api/v1/openapi.json", 200),
        ("GET", "/api/v1/jobs", 401),
        ("GET", "/api/v1/no-such-route", 404),
        ("PUT", "/api/v1/health", 405),
        ("GET", "/metrics", 401),
        ("GET", "/ui/no-such-asset.js", 404),
        ("GET", "/nowhere", 404),
    ] {
        let what = format!("{method} {path}");
        let a = send(addr, method, path, &[], None);
        assert_eq!(a.status, status, "{what}: {}", a.text);
        assert_common_headers(&a, &what);
        assert_eq!(a.header("cache-control"), Some("no-store"), "{what}");
        assert_eq!(
            a.header("content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'"),
            "{what}"
        );
    }
    // A page keeps its own CSP and caching; so does an asset.
    let page = send(addr, "GET", "/", &[], None);
    assert_eq!(page.status, 200);
    assert_common_headers(&page, "the hall view");
    assert_eq!(
        page.header("content-security-policy"),
        Some(hallctl_ui::CONTENT_SECURITY_POLICY)
    );
    assert_eq!(
        page.header("cache-control"),
        Some(hallctl_ui::CACHE_CONTROL)
    );
    let js = send(addr, "GET", "/ui/js/common.js", &[], None);
    assert_eq!(js.status, 200, "{}", js.text);
    assert_common_headers(&js, "an asset");
    assert_eq!(js.header("cache-control"), Some(hallctl_ui::CACHE_CONTROL));
    // The API document describes the cookie sessions.
    let doc = send(addr, "GET", "/api/v1/openapi.json", &[], None).body;
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["cookie"]["in"], "cookie", "{schemes}");
    assert_eq!(schemes["csrf"]["name"], "X-CSRF-Token", "{schemes}");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["SignIn"]["properties"]["cookie"]["type"], "boolean");
    assert!(schemas["SessionToken"]["properties"]["csrf"].is_object());
    // A signed-in API answer is not to be stored either.
    let tok = hall.sign_in("S1", None);
    let auth = format!("Bearer {tok}");
    let me = send(
        addr,
        "GET",
        "/api/v1/session",
        &[("Authorization", &auth)],
        None,
    );
    me.expect(200, "whoami");
    assert_common_headers(&me, "GET /session");
    assert_eq!(me.header("cache-control"), Some("no-store"));
}

// ---- cookie sessions and CSRF -------------------------------------------------------------------

/// A cookie sign-in: (the `Cookie` header's pair, the CSRF token).
fn cookie_sign_in(addr: SocketAddr, user: &str) -> (String, String) {
    let a = send(
        addr,
        "POST",
        "/api/v1/session",
        &[],
        Some(&json!({"user": user, "pin": pin(user), "cookie": true})),
    );
    let v = a.expect(200, &format!("{user} signs in by cookie"));
    assert!(v.get("token").is_none(), "no token in the body: {v}");
    let csrf = v["csrf"].as_str().expect("a CSRF token").to_string();
    let set = a.header("set-cookie").expect("a session cookie");
    let parts: Vec<&str> = set.split(';').map(str::trim).collect();
    assert!(parts[0].starts_with("hallctl_session_"), "{set}");
    for want in ["HttpOnly", "SameSite=Strict", "Path=/api/v1"] {
        assert!(parts.contains(&want), "{want} missing: {set}");
    }
    assert!(!parts.contains(&"Secure"), "Secure over plain HTTP: {set}");
    assert!(
        parts.iter().any(|p| p.starts_with("Max-Age=")),
        "no Max-Age: {set}"
    );
    (parts[0].to_string(), csrf)
}

fn user_ids(hall: &Hall) -> Vec<String> {
    let tok = hall.sign_in("AD1", None);
    hall.client
        .get("/users", Some(&tok))
        .expect(200, "the accounts")
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_cookie_session_changes_nothing_without_its_csrf_token_or_from_another_origin() {
    let hall = spawn_hall(0.02);
    let addr = hall.client.addr;
    let host = addr.to_string();
    let (cookie, csrf) = cookie_sign_in(addr, "S1");
    // Reading: the cookie alone will do (one session in this "browser"), and with the token.
    let me = send(addr, "GET", "/api/v1/session", &[("Cookie", &cookie)], None);
    assert_eq!(me.expect(200, "whoami by cookie")["user"], "S1");
    let me = send(
        addr,
        "GET",
        "/api/v1/session",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        None,
    );
    assert_eq!(me.expect(200, "whoami by cookie and token")["user"], "S1");
    // Changing: an operator account, refused four ways, then added.
    let new = json!({"id": "N1", "name": "New Operator", "role": "operator", "pin": "680413"});
    let wrong = "0".repeat(64);
    let other_origin = "http://evil.example";
    let same_origin = format!("http://{host}");
    for (what, headers) in [
        ("no CSRF token", vec![("Cookie", cookie.as_str())]),
        (
            "a wrong CSRF token",
            vec![
                ("Cookie", cookie.as_str()),
                ("X-CSRF-Token", wrong.as_str()),
            ],
        ),
        (
            "a CSRF token that is not hex",
            vec![("Cookie", cookie.as_str()), ("X-CSRF-Token", "<script>")],
        ),
        (
            "another origin",
            vec![
                ("Cookie", cookie.as_str()),
                ("X-CSRF-Token", csrf.as_str()),
                ("Origin", other_origin),
            ],
        ),
    ] {
        let a = send(addr, "POST", "/api/v1/users", &headers, Some(&new));
        assert_eq!(a.status, 403, "{what}: {}", a.text);
        assert_eq!(a.code(), "csrf", "{what}");
        assert!(
            a.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nothing was changed"),
            "{what}: {}",
            a.text
        );
    }
    assert!(
        !user_ids(&hall).contains(&"N1".to_string()),
        "a refused request added the account"
    );
    // A cookie sign-in from another origin is refused too.
    let a = send(
        addr,
        "POST",
        "/api/v1/session",
        &[("Origin", other_origin)],
        Some(&json!({"user": "S1", "pin": pin("S1"), "cookie": true})),
    );
    assert_eq!(a.status, 403, "{}", a.text);
    assert!(a.header("set-cookie").is_none());
    // With its token, from its own page: done.
    let a = send(
        addr,
        "POST",
        "/api/v1/users",
        &[
            ("Cookie", &cookie),
            ("X-CSRF-Token", &csrf),
            ("Origin", &same_origin),
        ],
        Some(&new),
    );
    assert_eq!(a.expect(200, "add with the CSRF token")["user"]["id"], "N1");
    assert!(user_ids(&hall).contains(&"N1".to_string()));
    // A bearer client is unaffected (no CSRF token, an Origin of its own does not matter).
    let tok = hall.sign_in("S1", None);
    let auth = format!("Bearer {tok}");
    let a = send(
        addr,
        "POST",
        "/api/v1/users",
        &[("Authorization", &auth)],
        Some(&json!({"id": "N2", "name": "Other Operator", "role": "operator", "pin": "739150"})),
    );
    a.expect(200, "a bearer client adds an account");
    // Signing out needs the token too, and clears the cookie.
    let a = send(
        addr,
        "DELETE",
        "/api/v1/session",
        &[("Cookie", &cookie)],
        None,
    );
    assert_eq!(a.status, 403, "{}", a.text);
    let a = send(
        addr,
        "DELETE",
        "/api/v1/session",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        None,
    );
    assert_eq!(a.status, 204, "{}", a.text);
    let cleared = a.header("set-cookie").expect("the cookie cleared");
    let name = cookie.split('=').next().unwrap();
    assert!(
        cleared.starts_with(&format!("{name}=;")) && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let a = send(
        addr,
        "GET",
        "/api/v1/session",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        None,
    );
    assert_eq!(a.status, 401, "signed out: {}", a.text);
}

#[test]
fn one_browser_keeps_several_cookie_sessions_apart() {
    let hall = spawn_hall(0.02);
    let addr = hall.client.addr;
    let (s1, s1_csrf) = cookie_sign_in(addr, "S1");
    let (au1, au1_csrf) = cookie_sign_in(addr, "AU1");
    assert_ne!(
        s1.split('=').next(),
        au1.split('=').next(),
        "each session has its own cookie"
    );
    let jar = format!("{s1}; {au1}");
    for (csrf, user) in [(&s1_csrf, "S1"), (&au1_csrf, "AU1")] {
        let a = send(
            addr,
            "GET",
            "/api/v1/session",
            &[("Cookie", &jar), ("X-CSRF-Token", csrf)],
            None,
        );
        assert_eq!(a.expect(200, "whoami")["user"], user);
    }
    // Which one, without a token, the controller cannot tell: it does not guess.
    let a = send(addr, "GET", "/api/v1/session", &[("Cookie", &jar)], None);
    assert_eq!(a.status, 401, "{}", a.text);
    // The auditor's token does not let the supervisor's cookie act.
    let a = send(
        addr,
        "POST",
        "/api/v1/users",
        &[("Cookie", &s1), ("X-CSRF-Token", &au1_csrf)],
        Some(&json!({"id": "N3", "name": "Nobody", "role": "operator", "pin": "680413"})),
    );
    assert_eq!(a.status, 403, "{}", a.text);
}

// ---- the sign-in limit --------------------------------------------------------------------------

#[test]
fn rapid_sign_in_attempts_from_one_address_get_429_unchecked_and_uncounted() {
    // Three attempts per address, one more an hour later: the fourth is refused.
    let toml = HALL_TOML.replace(
        "shutdown_grace_secs = 2\n",
        "shutdown_grace_secs = 2\nsignin_burst = 3\nsignin_refill_secs = 3600\n",
    );
    let hall = spawn_hall_as(0.02, &toml, PEOPLE);
    let addr = hall.client.addr;
    let from = [127, 0, 0, 21];
    let wrong = json!({"user": "A1", "pin": "000000"});
    for i in 0..3 {
        let a = send_from(from, addr, "POST", "/api/v1/session", Some(&wrong));
        assert_eq!(a.status, 401, "wrong PIN {i}: {}", a.text);
    }
    // The right PIN now: refused without being looked at.
    let right = json!({"user": "A1", "pin": pin("A1")});
    for i in 0..6 {
        let body = if i == 0 { &right } else { &wrong };
        let a = send_from(from, addr, "POST", "/api/v1/session", Some(body));
        assert_eq!(
            a.status,
            429,
            "attempt {} over the limit: {}",
            i + 4,
            a.text
        );
        assert_eq!(a.code(), "rate_limited");
        let retry: u64 = a
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("seconds");
        assert!((1..=3600).contains(&retry), "Retry-After {retry}");
        assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    }
    // Nine attempts on A1 (lockout after 5 wrong PINs), but only three were checked: from
    // another address A1 signs in, not locked.
    let a = send_from(
        [127, 0, 0, 22],
        addr,
        "POST",
        "/api/v1/session",
        Some(&right),
    );
    a.expect(200, "A1 from another address");
    // The right PIN gives its attempt back: an address is not limited by successful sign-ins,
    // nor by a terminal refused for another reason (its station taken).
    let s1 = json!({"user": "S1", "pin": pin("S1")});
    for i in 0..6 {
        let a = send_from([127, 0, 0, 23], addr, "POST", "/api/v1/session", Some(&s1));
        assert_eq!(a.status, 200, "S1's sign-in {i}: {}", a.text);
    }
    let a1 = json!({"user": "A1", "pin": pin("A1"), "station": "PRINT-01"});
    send_from([127, 0, 0, 24], addr, "POST", "/api/v1/session", Some(&a1))
        .expect(200, "A1 at PRINT-01");
    let b1 = json!({"user": "B1", "pin": pin("B1"), "station": "PRINT-01"});
    for i in 0..6 {
        let a = send_from([127, 0, 0, 24], addr, "POST", "/api/v1/session", Some(&b1));
        assert_eq!(a.status, 409, "B1 at A1's station, {i}: {}", a.text);
    }
}

// ---- HTTPS --------------------------------------------------------------------------------------

/// A CA, and a server certificate for localhost and 127.0.0.1 it signed: (CA DER, cert PEM,
/// key PEM).
fn test_pki() -> (rustls::pki_types::CertificateDer<'static>, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "hallctl test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.der().clone(), leaf.pem(), key.serialize_pem())
}

/// Starts `hallctl serve` with `toml`; waits for where it listens, or for it to exit.
fn serve(dir: &Path, toml: &str) -> Result<(Child, String), String> {
    let config = dir.join("hall.toml");
    std::fs::write(&config, toml).unwrap();
    let log = dir.join("serve.log");
    let mut child = hallctl()
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--sim-time-scale", "0.02"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(a) = line.split("listening on ").nth(1) {
                let _ = tx.send(a.trim().to_string());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(url) => Ok((child, url)),
        Err(_) => {
            let status = child.wait().unwrap();
            Err(format!(
                "{status}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ))
        }
    }
}

fn tls_toml(cert: &str, key: &str) -> String {
    HALL_TOML.replace(
        "shutdown_grace_secs = 2\n",
        &format!("shutdown_grace_secs = 2\ntls_cert = {cert:?}\ntls_key = {key:?}\n"),
    )
}

#[test]
fn https_serves_with_the_configured_certificate_and_plain_http_on_its_port_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_pki();
    std::fs::write(dir.path().join("hall.crt"), cert).unwrap();
    std::fs::write(dir.path().join("hall.key"), key).unwrap();
    let (mut child, url) = serve(dir.path(), &tls_toml("hall.crt", "hall.key")).unwrap();
    let addr: SocketAddr = url
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("not an https address: {url}"))
        .parse()
        .unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let tls_get = |path: &str, headers: &[(&str, &str)], body: Option<&Value>| {
        let method = if body.is_some() { "POST" } else { "GET" };
        let conn =
            rustls::ClientConnection::new(config.clone(), "localhost".try_into().unwrap()).unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let tls = rustls::StreamOwned::new(conn, tcp);
        Answer::parse(&exchange(tls, "localhost", method, path, headers, body).unwrap())
    };
    let health = tls_get("/api/v1/health", &[], None);
    assert_eq!(health.expect(200, "health over HTTPS"), &Value::Null);
    assert_eq!(health.text, "ok");
    assert_eq!(
        health.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    assert_eq!(health.header("x-content-type-options"), Some("nosniff"));
    let page = tls_get("/", &[], None);
    assert_eq!(page.status, 200);
    assert!(page.header("strict-transport-security").is_some());
    // A cookie sign-in over HTTPS would get a Secure cookie; an unknown user gets none.
    let a = tls_get(
        "/api/v1/session",
        &[],
        Some(&json!({"user": "NOBODY", "pin": "123456", "cookie": true})),
    );
    assert_eq!(a.status, 401, "{}", a.text);
    assert!(a.header("set-cookie").is_none());

    // Plain HTTP to the TLS port: no HTTP answer.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let raw = exchange(
        &mut plain,
        &addr.to_string(),
        "GET",
        "/api/v1/health",
        &[],
        None,
    )
    .unwrap_or_default();
    assert!(
        !raw.starts_with(b"HTTP/"),
        "plain HTTP got an answer: {}",
        String::from_utf8_lossy(&raw)
    );
    // ... and the server still serves HTTPS afterwards.
    tls_get("/api/v1/health", &[], None).expect(200, "health after a plain request");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_unusable_certificate_or_key_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = test_pki();
    let (_, other_cert, _) = test_pki();
    std::fs::write(dir.path().join("hall.crt"), &cert).unwrap();
    std::fs::write(dir.path().join("hall.key"), &key).unwrap();
    std::fs::write(dir.path().join("other.crt"), &other_cert).unwrap();
    std::fs::write(dir.path().join("garbage.pem"), "not a certificate\n").unwrap();
    std::fs::write(dir.path().join("empty.key"), "").unwrap();
    for (cert, key, want) in [
        ("missing.crt", "hall.key", "missing.crt: cannot be read"),
        (
            "hall.crt",
            "missing.key",
            "missing.key: no usable private key",
        ),
        (
            "garbage.pem",
            "hall.key",
            "garbage.pem: no certificate in it",
        ),
        ("hall.crt", "empty.key", "empty.key: no usable private key"),
        ("other.crt", "hall.key", "do not make a usable pair"),
    ] {
        let err = match serve(dir.path(), &tls_toml(cert, key)) {
            Ok((mut child, url)) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cert} + {key}: started at {url}");
            }
            Err(e) => e,
        };
        assert!(err.contains(want), "{cert} + {key}: {err}");
        assert!(
            !dir.path().join("data").join("ledger").exists(),
            "{cert} + {key}: the ledger was created before the check"
        );
    }
}

#[test]
fn wrong_pins_typed_for_a_supervisor_at_one_terminal_do_not_lock_them_out_of_theirs() {
    let hall = spawn_hall(0.02);
    let addr = hall.client.addr;
    let wrong = json!({"user": "S1", "pin": "000000"});
    // An operator's terminal types five wrong PINs for S1 (the hall's limit).
    let statuses: Vec<u16> = (0..5)
        .map(|_| {
            send_from(
                [127, 0, 0, 31],
                addr,
                "POST",
                "/api/v1/session",
                Some(&wrong),
            )
            .status
        })
        .collect();
    assert_eq!(
        statuses,
        [401, 401, 401, 401, 423],
        "locked there at the fifth"
    );
    let right = json!({"user": "S1", "pin": pin("S1")});
    let a = send_from(
        [127, 0, 0, 31],
        addr,
        "POST",
        "/api/v1/session",
        Some(&right),
    );
    assert_eq!(a.status, 423, "still locked at that terminal: {}", a.text);
    // S1 at their own desk is not locked out.
    send_from(
        [127, 0, 0, 32],
        addr,
        "POST",
        "/api/v1/session",
        Some(&right),
    )
    .expect(200, "S1 signs in at another terminal");
    // The lock is on the record, naming where the guesses came from.
    let aud = hall.sign_in("AU1", None);
    let locked: Vec<Value> = records(hall.client, &aud)
        .into_iter()
        .filter(|r| r["event"]["action"]["change"]["change"] == "locked_out")
        .collect();
    assert_eq!(locked.len(), 1, "{locked:?}");
    assert_eq!(
        locked[0]["event"]["action"]["change"]["origin"], "127.0.0.31",
        "{locked:?}"
    );
    // The supervisor is told: someone is guessing at S1's PIN (the lock and the try during it).
    let sup = hall.sign_in("S1", None);
    let list = hall.client.get("/alerts", Some(&sup)).expect(200, "alerts");
    let alert = list["open"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "signin_lockout" && a["subject"] == "S1")
        .unwrap_or_else(|| panic!("no signin_lockout alert about S1: {list}"))
        .clone();
    assert_eq!(alert["severity"], "critical", "{alert}");
    assert_eq!(alert["occurrences"], 2, "{alert}");
    assert!(
        alert["detail"].as_str().unwrap().contains("127.0.0.31"),
        "{alert}"
    );
}

/// A sign-in refused by the roster (the PIN right, the shift not theirs) keeps its attempt
/// counted: it cannot be repeated without limit, each one a refusal record and an alert.
#[test]
fn sign_ins_refused_by_the_roster_count_against_the_limit() {
    let toml = HALL_TOML.replace(
        "shutdown_grace_secs = 2\n",
        "shutdown_grace_secs = 2\nsignin_burst = 3\nsignin_refill_secs = 3600\n",
    );
    let hall = spawn_hall_as(0.02, &toml, PEOPLE);
    let addr = hall.client.addr;
    let sup = hall.sign_in("S1", None);
    let (away, _) = a_shift_out_of_reach();
    hall.client
        .post(
            "/users/A1/shifts",
            Some(&sup),
            &json!({"shifts": [away.to_string()]}),
        )
        .expect(200, "roster A1 away");
    let right = json!({"user": "A1", "pin": pin("A1")});
    let from = [127, 0, 0, 31];
    for i in 0..3 {
        let a = send_from(from, addr, "POST", "/api/v1/session", Some(&right));
        assert_eq!(a.status, 403, "off-roster sign-in {i}: {}", a.text);
        assert_eq!(a.code(), "not_rostered");
    }
    let a = send_from(from, addr, "POST", "/api/v1/session", Some(&right));
    assert_eq!(a.status, 429, "the fourth is over the limit: {}", a.text);
    assert_eq!(a.code(), "rate_limited");
}
