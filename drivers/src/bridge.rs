//! The vendor bridge: a JSON-lines protocol (see `docs/drivers.md`, "Vendor bridge") spoken with a
//! child process over stdin/stdout or with a TCP socket, so a closed vendor SDK can be wrapped in
//! a small program of the vendor's choosing without changing the controller.
//!
//! One line, one JSON object:
//! - request (host → bridge): `{"id": 7, "method": "print", "params": {...}}`
//! - reply (bridge → host): `{"id": 7, "result": {...}}` or
//!   `{"id": 7, "error": {"code": "jam", "message": "..."}}`
//! - event (bridge → host, unsolicited): `{"event": "done", "data": {...}}`
//!
//! The client matches replies by `id`, times out every request, and drops replies nobody waits
//! for. One task owns the stream; [`BridgeHandle`] is the cheap cloneable handle.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::codec::{Decoder, FramedRead};

use crate::error::DriverError;
use crate::link::{CounterSnapshot, LinkCounters};

/// Longest line accepted from a bridge; a longer one is a broken bridge, not a message.
pub const MAX_LINE: usize = 64 * 1024;

/// A request to the bridge. Its `Debug` shows the id and method only: params can carry
/// passport-holder data.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeRequest {
    /// Correlation id, unique per request.
    pub id: u64,
    /// Method name (`hello`, `status`, `print`, ... as the bridge documents).
    pub method: String,
    /// Parameters.
    #[serde(default)]
    pub params: Value,
}

/// An error reported by the bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeErrorBody {
    /// Machine-readable code (`jam`, `busy`, `unknown_method` ...).
    pub code: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
}

/// Anything the bridge sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BridgeMessage {
    /// A successful reply.
    Reply {
        /// The request's id.
        id: u64,
        /// The result.
        result: Value,
    },
    /// A failed reply.
    Failure {
        /// The request's id.
        id: u64,
        /// What went wrong.
        error: BridgeErrorBody,
    },
    /// An unsolicited event.
    Event {
        /// Event name.
        event: String,
        /// Event data.
        #[serde(default)]
        data: Value,
    },
}

/// Parses one line from a bridge. Pure; never panics (fuzzed).
///
/// # Errors
/// [`DriverError::Bridge`] for a line that is too long, not JSON, or not one of the three shapes.
pub fn decode_line(line: &str) -> Result<BridgeMessage, DriverError> {
    if line.len() > MAX_LINE {
        return Err(DriverError::Bridge(format!("line of {} bytes", line.len())));
    }
    serde_json::from_str(line.trim_end())
        .map_err(|e| DriverError::Bridge(format!("unreadable line: {e}")))
}

impl std::fmt::Debug for BridgeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeRequest")
            .field("id", &self.id)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// An event from the bridge. Its `Debug` shows the event name only: data can carry
/// passport-holder data.
#[derive(Clone, PartialEq, Serialize)]
pub struct BridgeEvent {
    /// Event name.
    pub event: String,
    /// Event data.
    pub data: Value,
}

impl std::fmt::Debug for BridgeEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeEvent")
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

/// One line read from a bridge, or a line that was skipped.
#[derive(Debug, PartialEq, Eq)]
enum InLine {
    /// A complete UTF-8 line (without its `\n`).
    Line(String),
    /// A line that is not UTF-8 or is longer than [`MAX_LINE`]: a framing error, skipped.
    Bad(&'static str),
}

/// Splits a byte stream into `\n`-terminated lines without ever failing the stream: a line that
/// is not UTF-8 or is longer than [`MAX_LINE`] is an [`InLine::Bad`] item, and the buffer never
/// holds more than `MAX_LINE` bytes of one line (an oversize line is discarded up to its `\n`).
#[derive(Debug, Default)]
struct BridgeLineCodec {
    /// Discarding the rest of an oversize line (already reported).
    discarding: bool,
    /// Bytes of the buffer already searched for `\n`.
    searched: usize,
}

impl Decoder for BridgeLineCodec {
    type Item = InLine;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<InLine>, std::io::Error> {
        loop {
            let newline = buf[self.searched..].iter().position(|b| *b == b'\n');
            match newline {
                Some(i) => {
                    let end = self.searched + i;
                    let line = buf.split_to(end + 1);
                    self.searched = 0;
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    let body = &line[..end];
                    if body.len() > MAX_LINE {
                        return Ok(Some(InLine::Bad("line too long")));
                    }
                    return Ok(Some(match std::str::from_utf8(body) {
                        Ok(l) => InLine::Line(l.to_owned()),
                        Err(_) => InLine::Bad("line is not UTF-8"),
                    }));
                }
                None if buf.len() > MAX_LINE => {
                    buf.clear();
                    self.searched = 0;
                    if self.discarding {
                        return Ok(None);
                    }
                    self.discarding = true;
                    return Ok(Some(InLine::Bad("line too long")));
                }
                None => {
                    self.searched = buf.len();
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<InLine>, std::io::Error> {
        let item = self.decode(buf)?;
        if item.is_none() {
            // An unterminated last line is dropped with the stream.
            buf.clear();
            self.searched = 0;
        }
        Ok(item)
    }
}

struct Call {
    method: String,
    params: Value,
    reply: oneshot::Sender<Result<Value, DriverError>>,
}

/// A cheap, cloneable handle to a bridge.
#[derive(Clone)]
pub struct BridgeHandle {
    tx: mpsc::Sender<Call>,
    events: broadcast::Sender<BridgeEvent>,
    counters: Arc<LinkCounters>,
}

impl std::fmt::Debug for BridgeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeHandle").finish_non_exhaustive()
    }
}

impl BridgeHandle {
    /// Calls `method` with `params` and waits for the reply.
    ///
    /// # Errors
    /// [`DriverError::Refused`] with the bridge's code and message; [`DriverError::Timeout`];
    /// [`DriverError::TaskStopped`] when the bridge has exited.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, DriverError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Call {
                method: method.into(),
                params,
                reply,
            })
            .await
            .map_err(|_| DriverError::TaskStopped)?;
        rx.await.map_err(|_| DriverError::TaskStopped)?
    }

    /// Subscribes to the bridge's events.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<BridgeEvent> {
        self.events.subscribe()
    }

    /// Counters (requests, replies, timeouts, late replies, malformed lines as framing errors).
    #[must_use]
    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }
}

/// Starts the task speaking the bridge protocol over `reader`/`writer`.
pub fn spawn_bridge<R, W>(reader: R, writer: W, timeout: Duration) -> (BridgeHandle, JoinHandle<()>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    let (events, _) = broadcast::channel(64);
    let counters = LinkCounters::shared();
    let join = tokio::spawn(run(
        reader,
        writer,
        timeout,
        rx,
        events.clone(),
        counters.clone(),
    ));
    (
        BridgeHandle {
            tx,
            events,
            counters,
        },
        join,
    )
}

/// Starts `program` with `args` as a child process and speaks the bridge protocol over its
/// stdin/stdout (its stderr goes to ours, for the vendor's logs). The child is killed when the
/// task ends.
///
/// # Errors
/// When the program cannot be started.
pub fn spawn_bridge_process(
    program: &std::path::Path,
    args: &[&str],
    timeout: Duration,
) -> Result<(BridgeHandle, JoinHandle<()>), DriverError> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| DriverError::Bridge("child has no stdin".into()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| DriverError::Bridge("child has no stdout".into()))?;
    let (handle, inner) = spawn_bridge(stdout, stdin, timeout);
    let join = tokio::spawn(async move {
        let _ = inner.await;
        let _ = child.kill().await;
    });
    Ok((handle, join))
}

/// Connects to a bridge listening on TCP `addr`.
///
/// # Errors
/// When the connection fails, or [`DriverError::Timeout`] when it is not made within `timeout`.
pub async fn connect_bridge_tcp(
    addr: &str,
    timeout: Duration,
) -> Result<(BridgeHandle, JoinHandle<()>), DriverError> {
    let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| DriverError::Timeout {
            attempts: 1,
            timeout,
        })??;
    let (r, w) = stream.into_split();
    Ok(spawn_bridge(r, w, timeout))
}

/// Writes queued lines to the bridge. Runs as its own task so that a bridge that stops reading
/// (a full pipe) blocks only this task, never the reads, the timeout sweep or the handle's end.
async fn write_lines<W: AsyncWrite + Unpin>(mut writer: W, mut lines: mpsc::Receiver<String>) {
    while let Some(line) = lines.recv().await {
        if writer.write_all(line.as_bytes()).await.is_err() || writer.flush().await.is_err() {
            return;
        }
    }
}

/// Aborts the writer task when the bridge task ends, however it ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run<R, W>(
    reader: R,
    writer: W,
    timeout: Duration,
    mut rx: mpsc::Receiver<Call>,
    events: broadcast::Sender<BridgeEvent>,
    counters: Arc<LinkCounters>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut lines = FramedRead::new(reader, BridgeLineCodec::default());
    let (out, out_rx) = mpsc::channel::<String>(16);
    let _writer = AbortOnDrop(tokio::spawn(write_lines(writer, out_rx)));
    let mut pending: HashMap<
        u64,
        (
            tokio::time::Instant,
            oneshot::Sender<Result<Value, DriverError>>,
        ),
    > = HashMap::new();
    let mut next_id: u64 = 1;
    // Expired calls are swept at this period (never zero: `interval` panics on a zero period).
    let mut sweep = tokio::time::interval(
        Duration::from_millis(20)
            .min(timeout)
            .max(Duration::from_millis(1)),
    );
    loop {
        tokio::select! {
            call = rx.recv() => {
                let Some(call) = call else { return };
                let id = next_id;
                next_id += 1;
                counters.requests();
                let req = BridgeRequest { id, method: call.method, params: call.params };
                let mut line = match serde_json::to_string(&req) {
                    Ok(l) => l,
                    Err(e) => { let _ = call.reply.send(Err(DriverError::Bridge(e.to_string()))); continue }
                };
                line.push('\n');
                match out.try_send(line) {
                    Ok(()) => {
                        pending.insert(id, (tokio::time::Instant::now() + timeout, call.reply));
                    }
                    // The bridge is not reading its input: the request is never sent.
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        counters.timeouts();
                        let _ = call.reply.send(Err(DriverError::Timeout { attempts: 1, timeout }));
                    }
                    // The writer failed (broken pipe): the link is gone.
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        let _ = call.reply.send(Err(DriverError::LinkClosed));
                        for (_, (_, reply)) in pending.drain() {
                            let _ = reply.send(Err(DriverError::LinkClosed));
                        }
                        return;
                    }
                }
            }
            line = lines.next() => {
                let line = match line {
                    Some(Ok(InLine::Line(l))) => l,
                    Some(Ok(InLine::Bad(why))) => {
                        counters.framing_errors();
                        tracing::warn!("bridge: {why}, skipped");
                        continue;
                    }
                    // The bridge exited or closed the socket: every pending call fails now.
                    None | Some(Err(_)) => {
                        for (_, (_, reply)) in pending.drain() {
                            let _ = reply.send(Err(DriverError::LinkClosed));
                        }
                        return;
                    }
                };
                match decode_line(&line) {
                    Ok(BridgeMessage::Reply { id, result }) => match pending.remove(&id) {
                        Some((_, reply)) => { counters.replies(); let _ = reply.send(Ok(result)); }
                        None => counters.late_replies(),
                    },
                    Ok(BridgeMessage::Failure { id, error }) => match pending.remove(&id) {
                        Some((_, reply)) => {
                            counters.replies();
                            let _ = reply.send(Err(DriverError::Refused(format!("{}: {}", error.code, error.message))));
                        }
                        None => counters.late_replies(),
                    },
                    Ok(BridgeMessage::Event { event, data }) => {
                        counters.events();
                        let _ = events.send(BridgeEvent { event, data });
                    }
                    Err(e) => {
                        counters.framing_errors();
                        tracing::warn!("bridge: {e}");
                    }
                }
            }
            _ = sweep.tick() => {
                let now = tokio::time::Instant::now();
                let expired: Vec<u64> = pending.iter().filter(|(_, (at, _))| *at <= now).map(|(id, _)| *id).collect();
                for id in expired {
                    if let Some((_, reply)) = pending.remove(&id) {
                        counters.timeouts();
                        let _ = reply.send(Err(DriverError::Timeout { attempts: 1, timeout }));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn decodes_the_three_shapes_and_rejects_the_rest() {
        assert_eq!(
            decode_line(r#"{"id":3,"result":{"ok":true}}"#).unwrap(),
            BridgeMessage::Reply {
                id: 3,
                result: serde_json::json!({"ok": true})
            }
        );
        assert!(matches!(
            decode_line(r#"{"id":4,"error":{"code":"jam","message":"roller 2"}}"#).unwrap(),
            BridgeMessage::Failure { id: 4, .. }
        ));
        assert!(matches!(
            decode_line(r#"{"event":"done","data":{"job_ref":1}}"#).unwrap(),
            BridgeMessage::Event { .. }
        ));
        for bad in ["", "not json", "{}", r#"{"id":"x","result":1}"#, "[1,2]"] {
            assert!(decode_line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn line_codec_skips_bad_lines_and_stays_bounded() {
        let mut c = BridgeLineCodec::default();
        let mut buf = BytesMut::from(&b"{\"a\"\xff\n{\"id\""[..]);
        assert_eq!(
            c.decode(&mut buf).unwrap(),
            Some(InLine::Bad("line is not UTF-8"))
        );
        assert_eq!(c.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b":1}\n");
        assert_eq!(
            c.decode(&mut buf).unwrap(),
            Some(InLine::Line("{\"id\":1}".into()))
        );
        // A line with no newline: reported once, and the buffer never grows past MAX_LINE.
        let mut bad = 0;
        for _ in 0..10 {
            buf.extend_from_slice(&[b'a'; 40_000]);
            while let Some(item) = c.decode(&mut buf).unwrap() {
                assert_eq!(item, InLine::Bad("line too long"));
                bad += 1;
            }
            assert!(buf.len() <= MAX_LINE, "{}", buf.len());
        }
        buf.extend_from_slice(b"aaa\nok\n");
        assert_eq!(c.decode(&mut buf).unwrap(), Some(InLine::Line("ok".into())));
        assert_eq!(bad, 1);
    }
}
