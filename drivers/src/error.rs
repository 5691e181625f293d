//! The crate's one error type.

use std::time::Duration;

/// Why a frame (or a run of bytes) was rejected by the printer frame decoder.
///
/// These are values, not failures of the decoder: the link counts them and resynchronises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidFrame {
    /// Bytes before the next STX that cannot start a frame.
    #[error("{0} byte(s) of noise before a frame start")]
    Garbage(usize),
    /// The length field is larger than [`crate::frame::MAX_PAYLOAD`].
    #[error("length field {0} is larger than the protocol allows")]
    LengthOutOfRange(u16),
    /// The byte where ETX belongs is something else: the length field was wrong or damaged.
    #[error("no ETX where the length field says the frame ends (found {0:#04x})")]
    MissingEtx(u8),
    /// The CRC does not match the covered bytes.
    #[error("CRC mismatch: frame says {received:#06x}, bytes give {computed:#06x}")]
    BadCrc {
        /// The CRC carried by the frame.
        received: u16,
        /// The CRC computed over the covered bytes.
        computed: u16,
    },
}

/// Everything that can go wrong while talking to a device.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The operating system reported an I/O error (for a serial port, EIO usually means the
    /// adapter or the pseudo-terminal went away).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The serial port could not be opened or configured.
    #[error("serial port: {0}")]
    Serial(#[from] tokio_serial::Error),
    /// The peer closed the stream (EOF): the link is down.
    #[error("link closed by the device side")]
    LinkClosed,
    /// No matching reply arrived within the timeout, after every allowed attempt.
    #[error("no reply after {attempts} attempt(s) of {timeout:?} each")]
    Timeout {
        /// How many times the request was sent.
        attempts: u32,
        /// The timeout of each attempt.
        timeout: Duration,
    },
    /// The device is not ready (link down, reopening, or not yet answered once); commands are
    /// refused at once rather than queued behind a dead port.
    #[error("device is not ready ({0})")]
    NotReady(&'static str),
    /// The task that owns the port has stopped, so the handle can no longer reach it.
    #[error("the device task has stopped")]
    TaskStopped,
    /// The device understood the request and refused it.
    #[error("device refused the request: {0}")]
    Refused(String),
    /// The device answered with something the protocol does not allow here.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A payload is too long for one frame.
    #[error("payload of {0} bytes does not fit in one frame")]
    PayloadTooLong(usize),
    /// A Modbus request failed below the application layer (framing, header mismatch, I/O).
    #[error("modbus: {0}")]
    Modbus(#[from] tokio_modbus::Error),
    /// A Modbus device answered with an exception code.
    #[error("modbus exception: {0}")]
    ModbusException(tokio_modbus::ExceptionCode),
    /// The vendor bridge process or socket misbehaved.
    #[error("vendor bridge: {0}")]
    Bridge(String),
    /// A frame decoder rejected bytes (only surfaced where a caller asked for one frame).
    #[error("invalid frame: {0}")]
    Frame(#[from] InvalidFrame),
}

impl DriverError {
    /// True when the error means the link itself is gone (EOF, EIO, broken pipe), so the port
    /// task must close the port and reopen it rather than just count a missed reply.
    #[must_use]
    pub fn is_link_loss(&self) -> bool {
        match self {
            DriverError::LinkClosed => true,
            DriverError::Io(e) => is_link_loss_io(e),
            DriverError::Modbus(tokio_modbus::Error::Transport(e)) => is_link_loss_io(e),
            _ => false,
        }
    }
}

/// EOF-like and EIO-like errors: the other end of the wire is gone.
pub(crate) fn is_link_loss_io(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | BrokenPipe | ConnectionReset | ConnectionAborted | NotConnected
    ) || e.raw_os_error() == Some(5) // EIO: a pseudo-terminal whose other side closed, or an unplugged adapter
}

/// Result alias for this crate.
pub type Result<T, E = DriverError> = std::result::Result<T, E>;
