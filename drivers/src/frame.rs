//! The printer's binary frame, as pure functions: encode, decode, CRC.
//!
//! ```text
//! STX | LEN (u16, big-endian) | SEQ | CMD | PAYLOAD (LEN bytes) | CRC-16 (big-endian) | ETX
//! 0x02                                                                                0x03
//! ```
//! The CRC is CRC-16/IBM-3740 (also called CRC-16/CCITT-FALSE: polynomial 0x1021, init 0xFFFF,
//! no reflection, no final XOR; check value 0x29B1 for `123456789`). It covers LEN, SEQ, CMD and
//! PAYLOAD: not STX, not the CRC itself, not ETX. See `PROTOCOL-printer.md`.
//!
//! Decoding is a pure function from a byte slice to [`Decoded`]: it tells a frame that has not
//! fully arrived yet ([`Decoded::Incomplete`]) from bytes that can never become a frame
//! ([`Decoded::Invalid`], with how many bytes to drop to resynchronise). It never panics, for any
//! input; the fuzz target `fuzz/fuzz_targets/printer_frame.rs` holds it to that.

use bytes::{BufMut, BytesMut};

use crate::error::{DriverError, InvalidFrame};

/// Start of frame.
pub const STX: u8 = 0x02;
/// End of frame.
pub const ETX: u8 = 0x03;
/// Largest payload the protocol allows. Kept small so that a damaged length field is rejected
/// at once instead of making the decoder wait for 64 KiB that will never come.
pub const MAX_PAYLOAD: usize = 1024;
/// STX + LEN(2) + SEQ + CMD.
pub const HEADER_LEN: usize = 5;
/// CRC(2) + ETX.
pub const TRAILER_LEN: usize = 3;
/// Bytes a frame carries besides its payload.
pub const OVERHEAD: usize = HEADER_LEN + TRAILER_LEN;

/// The CRC catalogue algorithm the printer protocol uses (CRC-16/IBM-3740, a.k.a. CCITT-FALSE).
pub const CRC_ALGORITHM: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// CRC-16/IBM-3740 of `bytes`.
#[must_use]
pub fn crc16(bytes: &[u8]) -> u16 {
    CRC_ALGORITHM.checksum(bytes)
}

/// One printer protocol frame.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// Sequence number: a reply echoes its request's; events carry the device's own counter.
    pub seq: u8,
    /// Command, reply or event code (see [`crate::printer::code`]).
    pub cmd: u8,
    /// Command-specific bytes.
    pub payload: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    // The payload may hold data-page fields (names, dates of birth): never print it, only its size.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("seq", &self.seq)
            .field("cmd", &format_args!("{:#04x}", self.cmd))
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl Frame {
    /// A frame from its parts.
    #[must_use]
    pub fn new(seq: u8, cmd: u8, payload: impl Into<Vec<u8>>) -> Self {
        Frame {
            seq,
            cmd,
            payload: payload.into(),
        }
    }

    /// Appends the encoded frame to `dst`.
    ///
    /// # Errors
    /// [`DriverError::PayloadTooLong`] when the payload exceeds [`MAX_PAYLOAD`].
    pub fn encode_into(&self, dst: &mut BytesMut) -> Result<(), DriverError> {
        let len = self.payload.len();
        if len > MAX_PAYLOAD {
            return Err(DriverError::PayloadTooLong(len));
        }
        dst.reserve(len + OVERHEAD);
        let start = dst.len();
        dst.put_u8(STX);
        dst.put_u16(len as u16);
        dst.put_u8(self.seq);
        dst.put_u8(self.cmd);
        dst.put_slice(&self.payload);
        let crc = crc16(&dst[start + 1..]);
        dst.put_u16(crc);
        dst.put_u8(ETX);
        Ok(())
    }

    /// The encoded frame.
    ///
    /// # Errors
    /// [`DriverError::PayloadTooLong`] when the payload exceeds [`MAX_PAYLOAD`].
    pub fn encode(&self) -> Result<Vec<u8>, DriverError> {
        let mut b = BytesMut::new();
        self.encode_into(&mut b)?;
        Ok(b.to_vec())
    }
}

/// What the bytes at the front of a buffer are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole, valid frame that used the first `consumed` bytes.
    Frame {
        /// The frame.
        frame: Frame,
        /// How many bytes of the buffer it took.
        consumed: usize,
    },
    /// The buffer holds the beginning of what may still become a valid frame (or nothing):
    /// wait for more bytes, drop nothing.
    Incomplete,
    /// The first `discard` bytes can never be part of a valid frame: drop them and decode again.
    Invalid {
        /// How many bytes to drop (always ≥ 1).
        discard: usize,
        /// Why.
        reason: InvalidFrame,
    },
}

/// Decodes the frame at the front of `buf`. Pure; never panics.
///
/// Resynchronisation: a bad frame costs only its STX (`discard: 1`), so a real frame hidden
/// behind a damaged one or behind a stray 0x02 in noise is found on the next call. And a stray
/// STX that announces a long frame does not hold back a complete valid frame already in the
/// buffer behind it: that frame is found by looking ahead, and the bytes before it are noise.
#[must_use]
pub fn decode(buf: &[u8]) -> Decoded {
    match decode_at_start(buf) {
        Decoded::Incomplete if !buf.is_empty() => {
            // A lone prefix waits; but if a complete valid frame starts later, the prefix was noise.
            for p in 1..buf.len() {
                if buf[p] == STX
                    && let Decoded::Frame { .. } = decode_at_start(&buf[p..])
                {
                    return Decoded::Invalid {
                        discard: p,
                        reason: InvalidFrame::Garbage(p),
                    };
                }
            }
            Decoded::Incomplete
        }
        other => other,
    }
}

fn decode_at_start(buf: &[u8]) -> Decoded {
    let Some(&first) = buf.first() else {
        return Decoded::Incomplete;
    };
    if first != STX {
        let discard = buf.iter().position(|&b| b == STX).unwrap_or(buf.len());
        return Decoded::Invalid {
            discard,
            reason: InvalidFrame::Garbage(discard),
        };
    }
    if buf.len() < 3 {
        return Decoded::Incomplete;
    }
    let len = u16::from_be_bytes([buf[1], buf[2]]);
    if usize::from(len) > MAX_PAYLOAD {
        return Decoded::Invalid {
            discard: 1,
            reason: InvalidFrame::LengthOutOfRange(len),
        };
    }
    let total = usize::from(len) + OVERHEAD;
    if buf.len() < total {
        return Decoded::Incomplete;
    }
    let etx = buf[total - 1];
    if etx != ETX {
        return Decoded::Invalid {
            discard: 1,
            reason: InvalidFrame::MissingEtx(etx),
        };
    }
    let received = u16::from_be_bytes([buf[total - 3], buf[total - 2]]);
    let computed = crc16(&buf[1..total - 3]);
    if received != computed {
        return Decoded::Invalid {
            discard: 1,
            reason: InvalidFrame::BadCrc { received, computed },
        };
    }
    Decoded::Frame {
        frame: Frame {
            seq: buf[3],
            cmd: buf[4],
            payload: buf[HEADER_LEN..total - TRAILER_LEN].to_vec(),
        },
        consumed: total,
    }
}

/// Decodes every frame in `bytes`, as a stream would deliver them, returning the frames and the
/// rejections in order. Used by tests and the fuzz target to check invariants on whole streams.
#[must_use]
pub fn decode_all(mut bytes: &[u8]) -> (Vec<Frame>, Vec<InvalidFrame>) {
    let mut frames = Vec::new();
    let mut rejected = Vec::new();
    loop {
        match decode(bytes) {
            Decoded::Frame { frame, consumed } => {
                frames.push(frame);
                bytes = &bytes[consumed..];
            }
            Decoded::Invalid { discard, reason } => {
                rejected.push(reason);
                bytes = &bytes[discard.max(1).min(bytes.len())..];
            }
            Decoded::Incomplete => return (frames, rejected),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;

    fn enc(seq: u8, cmd: u8, payload: &[u8]) -> Vec<u8> {
        Frame::new(seq, cmd, payload.to_vec()).encode().unwrap()
    }

    #[test]
    fn crc_matches_the_catalogue_check_value() {
        // CRC-16/IBM-3740 (CCITT-FALSE) catalogue check: 0x29B1 for "123456789".
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn encodes_the_documented_layout() {
        // The worked example in PROTOCOL-printer.md: STATUS request, seq 7, empty payload.
        let bytes = enc(7, 0x01, &[]);
        let crc = crc16(&[0x00, 0x00, 0x07, 0x01]);
        assert_eq!(
            bytes,
            vec![
                0x02,
                0x00,
                0x00,
                0x07,
                0x01,
                (crc >> 8) as u8,
                crc as u8,
                0x03
            ]
        );
        assert_eq!(crc, 0x0D76, "doc example CRC");
    }

    #[test]
    fn round_trips_payloads_of_every_interesting_size() {
        for len in [0usize, 1, 2, 3, 254, 255, 256, MAX_PAYLOAD] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let bytes = enc(200, 0x82, &payload);
            assert_eq!(bytes.len(), len + OVERHEAD);
            assert_eq!(
                decode(&bytes),
                Decoded::Frame {
                    frame: Frame::new(200, 0x82, payload),
                    consumed: len + OVERHEAD
                }
            );
        }
    }

    #[test]
    fn refuses_to_encode_an_oversized_payload() {
        let f = Frame::new(0, 1, vec![0; MAX_PAYLOAD + 1]);
        assert!(matches!(f.encode(), Err(DriverError::PayloadTooLong(n)) if n == MAX_PAYLOAD + 1));
    }

    #[test]
    fn every_strict_prefix_is_incomplete_never_invalid() {
        // Split reads: whatever the read boundary, a valid frame's prefix must wait, not be dropped.
        let bytes = enc(3, 0x41, b"JOB-1;BK-9001234");
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), Decoded::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn back_to_back_frames_decode_one_after_the_other() {
        let mut bytes = enc(1, 0x81, b"a");
        bytes.extend(enc(2, 0x82, b""));
        bytes.extend(enc(3, 0x43, b"xyz"));
        let (frames, rejected) = decode_all(&bytes);
        assert_eq!(rejected, vec![]);
        assert_eq!(
            frames.iter().map(|f| f.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    /// Table of damaged inputs: what the decoder must say about the first bytes.
    #[test]
    fn damaged_input_table() {
        let good = enc(9, 0x81, b"\x00\x01");
        let mut bad_crc = good.clone();
        let n = bad_crc.len();
        bad_crc[n - 2] ^= 0xFF;
        let mut bad_len = good.clone();
        bad_len[2] = 1; // one byte shorter than the payload: ETX lands on a CRC byte
        let mut too_long = good.clone();
        too_long[1] = 0xFF;
        let mut no_etx = good.clone();
        no_etx[n - 1] = 0x04;

        let crc_reason = match decode(&bad_crc) {
            Decoded::Invalid { reason, .. } => reason,
            other => panic!("{other:?}"),
        };
        assert!(matches!(crc_reason, InvalidFrame::BadCrc { .. }));

        let table: Vec<(&str, Vec<u8>, Decoded)> = vec![
            ("empty", vec![], Decoded::Incomplete),
            ("lone STX", vec![STX], Decoded::Incomplete),
            (
                "noise only",
                vec![0xFF, 0x00, 0x55],
                Decoded::Invalid {
                    discard: 3,
                    reason: InvalidFrame::Garbage(3),
                },
            ),
            (
                "noise then STX",
                [vec![0x10, 0x20], good.clone()].concat(),
                Decoded::Invalid {
                    discard: 2,
                    reason: InvalidFrame::Garbage(2),
                },
            ),
            (
                "wrong length (shorter)",
                bad_len.clone(),
                Decoded::Invalid {
                    discard: 1,
                    reason: InvalidFrame::MissingEtx(bad_len[bad_len.len() - 2]),
                },
            ),
            (
                "length out of range",
                too_long,
                Decoded::Invalid {
                    discard: 1,
                    reason: InvalidFrame::LengthOutOfRange(0xFF02),
                },
            ),
            (
                "no ETX",
                no_etx,
                Decoded::Invalid {
                    discard: 1,
                    reason: InvalidFrame::MissingEtx(0x04),
                },
            ),
            (
                "bad CRC",
                bad_crc,
                Decoded::Invalid {
                    discard: 1,
                    reason: crc_reason,
                },
            ),
        ];
        for (name, input, want) in table {
            assert_eq!(decode(&input), want, "{name}");
        }
    }

    #[test]
    fn resynchronises_after_garbage_and_damaged_frames() {
        let mut stream = vec![0xAA, STX, 0x00, 0x05, 0x99]; // noise with a stray STX
        stream.extend(enc(1, 0x81, b"ok"));
        let mut damaged = enc(2, 0x82, b"lost");
        damaged[6] ^= 0x01;
        stream.extend(damaged);
        stream.extend([0x03, 0x03, STX]);
        stream.extend(enc(3, 0x83, b"ok again"));
        let (frames, rejected) = decode_all(&stream);
        assert_eq!(
            frames.iter().map(|f| f.seq).collect::<Vec<_>>(),
            vec![1, 3],
            "{rejected:?}"
        );
        assert!(
            rejected
                .iter()
                .any(|r| matches!(r, InvalidFrame::BadCrc { .. }))
        );
    }

    #[test]
    fn a_stray_stx_does_not_hold_back_a_complete_frame_behind_it() {
        // STX + a length of 16 would wait for 24 bytes; the real 10-byte frame behind it must not wait.
        let mut stream = vec![STX, 0x00, 0x10];
        stream.extend(enc(4, 0x81, b"hi"));
        assert_eq!(
            decode(&stream),
            Decoded::Invalid {
                discard: 3,
                reason: InvalidFrame::Garbage(3)
            }
        );
        let (frames, _) = decode_all(&stream);
        assert_eq!(frames, vec![Frame::new(4, 0x81, b"hi".to_vec())]);
    }

    #[test]
    fn debug_output_never_shows_the_payload() {
        let f = Frame::new(1, 0x02, b"ERIKSSON".to_vec());
        assert!(!format!("{f:?}").contains("ERIKSSON"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_always_makes_progress(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            match decode(&bytes) {
                Decoded::Frame { consumed, .. } => proptest::prop_assert!(consumed >= OVERHEAD && consumed <= bytes.len()),
                Decoded::Invalid { discard, .. } => proptest::prop_assert!(discard >= 1 && discard <= bytes.len()),
                Decoded::Incomplete => {}
            }
        }

        #[test]
        fn frames_survive_any_noise_without_stx(
            noise in proptest::collection::vec(3u8..=255, 0..64),
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            seq in proptest::prelude::any::<u8>(),
        ) {
            let mut stream = noise.clone();
            stream.extend(Frame::new(seq, 0x81, payload.clone()).encode().unwrap());
            stream.extend(noise);
            let (frames, _) = decode_all(&stream);
            proptest::prop_assert_eq!(frames, vec![Frame::new(seq, 0x81, payload)]);
        }
    }
}
