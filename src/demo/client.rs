//! The demo's HTTP client: how the simulated issuance system and the simulated staff reach the
//! controller, over the same HTTP API as every other client (one keep-alive connection per
//! caller, JSON bodies, bearer tokens).

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// How long one request may take before the caller gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// An answer from the API.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body, parsed as JSON (`Value::Null` when empty or not JSON).
    pub body: Value,
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The API's error message (`error.message`), or the status.
    pub fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .map_or_else(|| format!("HTTP {}", self.status), str::to_string)
    }
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection failed or broke.
    #[error("cannot reach the controller: {0}")]
    Connection(String),
    /// No answer in time (seconds waited).
    #[error("the controller did not answer within {0} s")]
    Timeout(u64),
}

/// One caller's connection to the API at `addr` (reopened when it breaks).
#[derive(Debug)]
pub struct ApiClient {
    addr: SocketAddr,
    conn: Option<SendRequest<Full<Bytes>>>,
    timeout: Duration,
}

impl ApiClient {
    /// A client of the API at `addr` (connects on first use).
    pub fn new(addr: SocketAddr) -> Self {
        ApiClient {
            addr,
            conn: None,
            timeout: REQUEST_TIMEOUT,
        }
    }

    /// The same, waiting up to `timeout` for each answer (60 s by default).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| ClientError::Connection(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Connection(e.to_string()))?;
        tokio::spawn(async move {
            // Ends when the server or this client closes the connection.
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends one request to `/api/v1{path}` and reads the whole answer.
    ///
    /// # Errors
    /// The controller cannot be reached or does not answer in time.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        let bytes = match body {
            Some(v) => Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
            None => Bytes::new(),
        };
        // A kept-alive connection the server closed meanwhile fails at once: then one more try
        // on a new connection. A fresh connection's failure is reported (the request may have
        // reached the server; the caller looks at the line again rather than repeating it).
        loop {
            let (mut sender, reused) = match self.conn.take() {
                Some(s) if !s.is_closed() => (s, true),
                _ => (self.connect().await?, false),
            };
            if let Err(e) = sender.ready().await {
                if reused {
                    continue;
                }
                return Err(ClientError::Connection(e.to_string()));
            }
            let mut req = Request::builder()
                .method(method.clone())
                .uri(format!("/api/v1{path}"))
                .header(hyper::header::HOST, self.addr.to_string())
                .header(hyper::header::ACCEPT, "application/json");
            if let Some(t) = token {
                req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
            }
            if body.is_some() {
                req = req.header(hyper::header::CONTENT_TYPE, "application/json");
            }
            let req = req
                .body(Full::new(bytes.clone()))
                .map_err(|e| ClientError::Connection(format!("cannot build the request: {e}")))?;
            let sent = tokio::time::timeout(self.timeout, async {
                let resp = sender.send_request(req).await?;
                let status = resp.status().as_u16();
                let body = resp.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>((status, body))
            })
            .await;
            match sent {
                Err(_) => return Err(ClientError::Timeout(self.timeout.as_secs())),
                Ok(Err(e)) if reused && (e.is_canceled() || e.is_incomplete_message()) => continue,
                Ok(Err(e)) => return Err(ClientError::Connection(e.to_string())),
                Ok(Ok((status, body))) => {
                    self.conn = Some(sender);
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    return Ok(Answer { status, body });
                }
            }
        }
    }

    /// `GET` of a page outside the API (`/`): its status and content type.
    ///
    /// # Errors
    /// As [`ApiClient::call`].
    pub async fn page(&mut self, path: &str) -> Result<(u16, String), ClientError> {
        let mut sender = self.connect().await?;
        sender
            .ready()
            .await
            .map_err(|e| ClientError::Connection(e.to_string()))?;
        let req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(hyper::header::HOST, self.addr.to_string())
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Connection(e.to_string()))?;
        let resp = tokio::time::timeout(self.timeout, sender.send_request(req))
            .await
            .map_err(|_| ClientError::Timeout(self.timeout.as_secs()))?
            .map_err(|e| ClientError::Connection(e.to_string()))?;
        let kind = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok((resp.status().as_u16(), kind))
    }

    /// `GET`.
    ///
    /// # Errors
    /// As [`ApiClient::call`].
    pub async fn get(&mut self, path: &str, token: &str) -> Result<Answer, ClientError> {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// `POST` with a JSON body.
    ///
    /// # Errors
    /// As [`ApiClient::call`].
    pub async fn post(
        &mut self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<Answer, ClientError> {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// `DELETE`.
    ///
    /// # Errors
    /// As [`ApiClient::call`].
    pub async fn delete(&mut self, path: &str, token: &str) -> Result<Answer, ClientError> {
        self.call(Method::DELETE, path, Some(token), None).await
    }
}
