//! A [`tokio_util::codec`] over the pure frame functions of [`crate::frame`].

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::{DriverError, InvalidFrame};
use crate::frame::{self, Decoded, Frame};

/// What the codec yields: a frame, or a report of bytes it dropped.
///
/// Rejections are items, not errors, because a `Framed` stream ends at its first error, and a
/// damaged frame on a serial line is routine: the link counts it and goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A valid frame.
    Frame(Frame),
    /// Bytes that were dropped to resynchronise, and why.
    Rejected(InvalidFrame),
}

/// The printer frame codec.
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameCodec;

impl Decoder for FrameCodec {
    type Item = Received;
    type Error = DriverError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Received>, DriverError> {
        match frame::decode(src) {
            Decoded::Frame { frame, consumed } => {
                src.advance(consumed);
                Ok(Some(Received::Frame(frame)))
            }
            Decoded::Invalid { discard, reason } => {
                src.advance(discard.clamp(1, src.len()));
                Ok(Some(Received::Rejected(reason)))
            }
            Decoded::Incomplete => {
                // Reserve for the frame being assembled so reads are not one byte at a time.
                src.reserve(frame::MAX_PAYLOAD + frame::OVERHEAD);
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Received>, DriverError> {
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        if src.is_empty() {
            return Ok(None);
        }
        // A frame cut by EOF will never complete: report it as noise, not as an error.
        let n = src.len();
        src.clear();
        Ok(Some(Received::Rejected(InvalidFrame::Garbage(n))))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = DriverError;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), DriverError> {
        item.encode_into(dst)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    use tokio_util::codec::FramedRead;

    #[tokio::test]
    async fn split_reads_noise_and_eof_through_framed_read() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut bytes = vec![0x55, 0x66];
        bytes.extend(Frame::new(1, 0x81, b"first".to_vec()).encode().unwrap());
        bytes.extend(Frame::new(2, 0x82, b"second".to_vec()).encode().unwrap());
        bytes.extend([frame::STX, 0x00]); // cut by EOF
        let writer = tokio::spawn(async move {
            for chunk in bytes.chunks(3) {
                tx.write_all(chunk).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let got: Vec<Received> = FramedRead::new(rx, FrameCodec)
            .map(|r| r.unwrap())
            .collect()
            .await;
        writer.await.unwrap();
        assert_eq!(
            got,
            vec![
                Received::Rejected(InvalidFrame::Garbage(2)),
                Received::Frame(Frame::new(1, 0x81, b"first".to_vec())),
                Received::Frame(Frame::new(2, 0x82, b"second".to_vec())),
                Received::Rejected(InvalidFrame::Garbage(2)),
            ]
        );
    }
}
