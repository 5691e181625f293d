//! A request/reply link over any byte stream, with sequence numbers, timeouts, bounded retries
//! and counters.
//!
//! The link is owned by exactly one task (the port task); it is not shared, so it needs no lock.
//! It is generic over `AsyncRead + AsyncWrite`, so tests drive it over `tokio::io::duplex` with
//! paused time, and the same code runs over a real serial port or a pseudo-terminal.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::codec::Framed;

use crate::codec::{FrameCodec, Received};
use crate::error::{DriverError, InvalidFrame};
use crate::frame::Frame;

/// Bit set in a reply's command code: the reply to command `c` is `c | REPLY_FLAG`.
pub const REPLY_FLAG: u8 = 0x80;

/// Timeouts and retries of one link.
#[derive(Debug, Clone, Copy)]
pub struct LinkConfig {
    /// How long to wait for the reply to one attempt.
    pub timeout: Duration,
    /// How many times a request is sent again after a timeout (0 = sent once).
    pub retries: u32,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            timeout: Duration::from_millis(150),
            retries: 2,
        }
    }
}

/// Live counters of a link, shared by the port task and every handle; they survive reopens.
#[derive(Debug, Default)]
pub struct LinkCounters {
    requests: AtomicU64,
    replies: AtomicU64,
    events: AtomicU64,
    crc_errors: AtomicU64,
    framing_errors: AtomicU64,
    noise_bytes: AtomicU64,
    retries: AtomicU64,
    timeouts: AtomicU64,
    late_replies: AtomicU64,
    reconnects: AtomicU64,
    link_losses: AtomicU64,
    resyncs: AtomicU64,
}

/// A point-in-time copy of [`LinkCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CounterSnapshot {
    /// Requests started (one per call, however many attempts).
    pub requests: u64,
    /// Matching replies received.
    pub replies: u64,
    /// Unsolicited event frames received.
    pub events: u64,
    /// Frames dropped for a bad CRC.
    pub crc_errors: u64,
    /// Frames dropped for a bad length or a missing ETX.
    pub framing_errors: u64,
    /// Bytes dropped as noise between frames.
    pub noise_bytes: u64,
    /// Attempts sent again after a timeout.
    pub retries: u64,
    /// Attempts that timed out.
    pub timeouts: u64,
    /// Replies that matched no outstanding request (late, duplicate, or for another sequence number).
    pub late_replies: u64,
    /// Times the port was reopened after it had been open once.
    pub reconnects: u64,
    /// Times the link was found down (EOF, EIO, or too many missed polls).
    pub link_losses: u64,
    /// Times a Modbus bus was resynchronised (line left to settle, pending input discarded) after
    /// a timeout or a mismatched reply.
    pub resyncs: u64,
}

macro_rules! bump {
    ($($name:ident),*) => {
        $(
            #[doc = concat!("Adds one to `", stringify!($name), "`.")]
            pub fn $name(&self) {
                self.$name.fetch_add(1, Ordering::Relaxed);
            }
        )*
    };
}

impl LinkCounters {
    /// Fresh counters behind an `Arc`.
    #[must_use]
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The current values.
    #[must_use]
    pub fn snapshot(&self) -> CounterSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterSnapshot {
            requests: g(&self.requests),
            replies: g(&self.replies),
            events: g(&self.events),
            crc_errors: g(&self.crc_errors),
            framing_errors: g(&self.framing_errors),
            noise_bytes: g(&self.noise_bytes),
            retries: g(&self.retries),
            timeouts: g(&self.timeouts),
            late_replies: g(&self.late_replies),
            reconnects: g(&self.reconnects),
            link_losses: g(&self.link_losses),
            resyncs: g(&self.resyncs),
        }
    }

    /// Counts one rejection from the decoder.
    pub fn rejected(&self, why: InvalidFrame) {
        match why {
            InvalidFrame::Garbage(n) => {
                self.noise_bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            InvalidFrame::BadCrc { .. } => self.crc_errors(),
            InvalidFrame::LengthOutOfRange(_) | InvalidFrame::MissingEtx(_) => {
                self.framing_errors()
            }
        }
    }

    bump!(
        requests,
        replies,
        events,
        crc_errors,
        framing_errors,
        retries,
        timeouts,
        late_replies,
        reconnects,
        link_losses,
        resyncs
    );
}

/// Which frames are unsolicited events rather than replies: the device's own command space.
fn is_event(cmd: u8) -> bool {
    (0x40..0x80).contains(&cmd)
}

/// Most events kept while nobody reads them; older ones are dropped (status polls recover state).
const EVENT_BACKLOG: usize = 256;

/// A framed request/reply link.
pub struct Link<T> {
    framed: Framed<T, FrameCodec>,
    next_seq: u8,
    config: LinkConfig,
    counters: Arc<LinkCounters>,
    events: VecDeque<Frame>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Link<T> {
    /// A link over `io`. The first request uses sequence number 1 (0 is never used, so a
    /// device that answers with a zeroed header is always a mismatch).
    pub fn new(io: T, config: LinkConfig, counters: Arc<LinkCounters>) -> Self {
        Link {
            framed: Framed::new(io, FrameCodec),
            next_seq: 1,
            config,
            counters,
            events: VecDeque::new(),
        }
    }

    /// The link's counters.
    #[must_use]
    pub fn counters(&self) -> &Arc<LinkCounters> {
        &self.counters
    }

    /// Sends `cmd` with `payload` and waits for the reply with the same sequence number and
    /// command `cmd | REPLY_FLAG`, retrying after each timeout up to the configured bound.
    ///
    /// Retries resend the *same* sequence number: the device answers a repeated sequence number
    /// from its reply cache without executing the command again, so a retried PRINT never prints
    /// twice. Frames that match nothing (late replies to given-up requests) are counted and
    /// dropped; events that arrive meanwhile are kept for [`Link::take_event`].
    ///
    /// # Errors
    /// [`DriverError::Timeout`] after the last attempt; [`DriverError::LinkClosed`] or
    /// [`DriverError::Io`] when the stream ends or fails (the caller must reopen).
    pub async fn request(&mut self, cmd: u8, payload: &[u8]) -> Result<Frame, DriverError> {
        self.exchange(cmd, payload, self.config.retries + 1).await
    }

    /// Like [`Link::request`] but a single attempt: a status poll is not retried, because a
    /// missed poll is itself the signal the port task counts (offline after 3 in a row).
    ///
    /// # Errors
    /// As [`Link::request`].
    pub async fn poll(&mut self, cmd: u8, payload: &[u8]) -> Result<Frame, DriverError> {
        self.exchange(cmd, payload, 1).await
    }

    async fn exchange(
        &mut self,
        cmd: u8,
        payload: &[u8],
        attempts: u32,
    ) -> Result<Frame, DriverError> {
        self.counters.requests();
        let seq = self.next_seq;
        self.next_seq = self.next_seq.checked_add(1).unwrap_or(1);
        for attempt in 0..attempts {
            if attempt > 0 {
                self.counters.retries();
            }
            // The write is inside the request's deadline too: a port that stops accepting bytes
            // (a wedged adapter, flow control stuck) must not hang the port's task. A write that
            // does not finish leaves a partial frame behind, so the link is reported lost and the
            // port task reopens the port.
            let deadline = Instant::now() + self.config.timeout;
            let frame = Frame::new(seq, cmd, payload.to_vec());
            match tokio::time::timeout_at(deadline, self.framed.send(frame)).await {
                Ok(sent) => sent?,
                Err(_elapsed) => {
                    self.counters.timeouts();
                    return Err(DriverError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the port accepted no bytes within the request timeout",
                    )));
                }
            }
            loop {
                match tokio::time::timeout_at(deadline, self.framed.next()).await {
                    Err(_elapsed) => {
                        self.counters.timeouts();
                        break;
                    }
                    Ok(None) => return Err(DriverError::LinkClosed),
                    Ok(Some(Err(e))) => return Err(e),
                    Ok(Some(Ok(Received::Rejected(why)))) => self.counters.rejected(why),
                    Ok(Some(Ok(Received::Frame(f)))) => {
                        if f.seq == seq && f.cmd == cmd | REPLY_FLAG {
                            self.counters.replies();
                            return Ok(f);
                        }
                        self.sort_unmatched(f);
                    }
                }
            }
        }
        Err(DriverError::Timeout {
            attempts,
            timeout: self.config.timeout,
        })
    }

    fn sort_unmatched(&mut self, f: Frame) {
        if is_event(f.cmd) {
            self.counters.events();
            if self.events.len() == EVENT_BACKLOG {
                self.events.pop_front();
            }
            self.events.push_back(f);
        } else {
            tracing::debug!(
                seq = f.seq,
                cmd = f.cmd,
                "dropping a late or mismatched reply"
            );
            self.counters.late_replies();
        }
    }

    /// An event that arrived during a request, if any.
    pub fn take_event(&mut self) -> Option<Frame> {
        self.events.pop_front()
    }

    /// Waits for the next unsolicited event (counting and dropping anything else).
    /// Cancel-safe: it can be raced in `select!` against a timer or a command queue.
    ///
    /// # Errors
    /// [`DriverError::LinkClosed`] or [`DriverError::Io`] when the stream ends or fails.
    pub async fn next_event(&mut self) -> Result<Frame, DriverError> {
        loop {
            if let Some(f) = self.events.pop_front() {
                return Ok(f);
            }
            match self.framed.next().await {
                None => return Err(DriverError::LinkClosed),
                Some(Err(e)) => return Err(e),
                Some(Ok(Received::Rejected(why))) => self.counters.rejected(why),
                Some(Ok(Received::Frame(f))) => self.sort_unmatched(f),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// Reads one frame from the device side of a duplex.
    async fn read_frame(dev: &mut DuplexStream) -> Frame {
        let mut buf = Vec::new();
        loop {
            let mut b = [0u8; 64];
            let n = dev.read(&mut b).await.unwrap();
            assert!(n > 0, "host closed");
            buf.extend_from_slice(&b[..n]);
            if let crate::frame::Decoded::Frame { frame, .. } = crate::frame::decode(&buf) {
                return frame;
            }
        }
    }

    async fn reply(dev: &mut DuplexStream, to: &Frame, payload: &[u8]) {
        let bytes = Frame::new(to.seq, to.cmd | REPLY_FLAG, payload.to_vec())
            .encode()
            .unwrap();
        dev.write_all(&bytes).await.unwrap();
    }

    fn link(io: DuplexStream, retries: u32) -> Link<DuplexStream> {
        Link::new(
            io,
            LinkConfig {
                timeout: Duration::from_millis(100),
                retries,
            },
            LinkCounters::shared(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_port_that_accepts_no_bytes_fails_the_request_within_its_timeout() {
        // A 4-byte pipe the device never reads: the request's frame cannot be written.
        let (host, _dev) = tokio::io::duplex(4);
        let mut link = link(host, 2);
        let started = Instant::now();
        let err = link.request(0x01, &[0u8; 32]).await.unwrap_err();
        assert!(
            matches!(&err, DriverError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut),
            "{err:?}"
        );
        assert!(
            started.elapsed() <= Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(link.counters().snapshot().timeouts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn matches_the_reply_by_sequence_number() {
        let (host, mut dev) = tokio::io::duplex(1024);
        let mut link = link(host, 0);
        let device = tokio::spawn(async move {
            let req = read_frame(&mut dev).await;
            // An event and a stale reply first: neither may be taken for the answer.
            let ev = Frame::new(77, 0x43, vec![50]).encode().unwrap();
            dev.write_all(&ev).await.unwrap();
            let stale = Frame::new(req.seq.wrapping_sub(1), req.cmd | REPLY_FLAG, vec![9])
                .encode()
                .unwrap();
            dev.write_all(&stale).await.unwrap();
            reply(&mut dev, &req, b"ok").await;
            dev
        });
        let got = link.request(0x01, &[]).await.unwrap();
        assert_eq!(got.payload, b"ok");
        assert_eq!(link.take_event().map(|e| e.cmd), Some(0x43));
        let c = link.counters().snapshot();
        assert_eq!((c.late_replies, c.events, c.replies), (1, 1, 1));
        drop(device.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_after_bounded_retries_with_the_same_sequence_number() {
        let (host, mut dev) = tokio::io::duplex(1024);
        let mut link = link(host, 2);
        let device = tokio::spawn(async move {
            let mut seqs = Vec::new();
            for _ in 0..3 {
                seqs.push(read_frame(&mut dev).await.seq);
            }
            (seqs, dev)
        });
        let t0 = Instant::now();
        let err = link.request(0x03, &[]).await.unwrap_err();
        assert!(
            matches!(err, DriverError::Timeout { attempts: 3, .. }),
            "{err}"
        );
        assert_eq!(t0.elapsed(), Duration::from_millis(300));
        let (seqs, _dev) = device.await.unwrap();
        assert_eq!(
            seqs,
            vec![1, 1, 1],
            "a retry must reuse the sequence number"
        );
        let c = link.counters().snapshot();
        assert_eq!((c.timeouts, c.retries, c.replies), (3, 2, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_succeeds_when_the_first_reply_is_lost() {
        let (host, mut dev) = tokio::io::duplex(1024);
        let mut link = link(host, 2);
        let device = tokio::spawn(async move {
            let _lost = read_frame(&mut dev).await;
            let again = read_frame(&mut dev).await;
            reply(&mut dev, &again, b"second").await;
            dev
        });
        assert_eq!(link.request(0x01, &[]).await.unwrap().payload, b"second");
        let c = link.counters().snapshot();
        assert_eq!((c.timeouts, c.retries, c.replies), (1, 1, 1));
        drop(device.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_reply_is_dropped_and_does_not_answer_the_next_request() {
        let (host, mut dev) = tokio::io::duplex(1024);
        let mut link = link(host, 0);
        let device = tokio::spawn(async move {
            let first = read_frame(&mut dev).await;
            tokio::time::sleep(Duration::from_millis(250)).await; // the host gave up at 100 ms
            reply(&mut dev, &first, b"too late").await;
            let second = read_frame(&mut dev).await;
            reply(&mut dev, &second, b"fresh").await;
            dev
        });
        assert!(matches!(
            link.request(0x01, &[]).await,
            Err(DriverError::Timeout { .. })
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(link.request(0x01, &[]).await.unwrap().payload, b"fresh");
        assert_eq!(link.counters().snapshot().late_replies, 1);
        drop(device.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn counts_crc_errors_and_noise_and_still_gets_the_reply() {
        let (host, mut dev) = tokio::io::duplex(1024);
        let mut link = link(host, 1);
        let device = tokio::spawn(async move {
            let req = read_frame(&mut dev).await;
            let mut bad = Frame::new(req.seq, req.cmd | REPLY_FLAG, b"x".to_vec())
                .encode()
                .unwrap();
            bad[5] ^= 0x40;
            dev.write_all(&[0xDE, 0xAD]).await.unwrap();
            dev.write_all(&bad).await.unwrap();
            let again = read_frame(&mut dev).await;
            reply(&mut dev, &again, b"y").await;
            dev
        });
        assert_eq!(link.request(0x01, &[]).await.unwrap().payload, b"y");
        let c = link.counters().snapshot();
        assert_eq!(c.crc_errors, 1);
        assert!(c.noise_bytes >= 2);
        assert_eq!(c.retries, 1);
        drop(device.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn eof_is_reported_as_link_closed_not_as_a_timeout() {
        let (host, dev) = tokio::io::duplex(1024);
        let mut link = link(host, 5);
        drop(dev);
        let err = link.request(0x01, &[]).await.unwrap_err();
        assert!(err.is_link_loss(), "{err}");
    }
}
