//! Sealed segment files: an immutable, compressed, signed run of consecutive journal records
//! (issue 18, design §2.2).
//!
//! A segment holds the records `first..=last` as their canonical bodies only: links are not
//! stored per record but recomputed from the bodies and the link before the file
//! ([`chain::link`]), and each block's trailer keeps the link of its last record so that one
//! record can be read with its link from one block. The file is written once, to a temporary
//! name, fsynced and renamed into place; it is never changed afterwards.
//!
//! # Format
//! Integers are little-endian; `crc32` is CRC-32/ISO-HDLC (`crc32fast`).
//!
//! | part    | bytes | contents |
//! |---------|-------|----------|
//! | header  | 58    | `"HLSEG1"` ‖ first seq u64 ‖ last seq u64 ‖ prev link (link of first − 1) ‖ crc32 of the 54 bytes before |
//! | block × n | frame + 36 | zstd frame of `[varint len ‖ body]*` (about [`BLOCK_BYTES`] raw) ‖ link of the block's last record ‖ crc32 of frame ‖ link |
//! | footer  | 76 + 24 n | block count u32 ‖ record count u64 ‖ last link ‖ SHA-256 of header and blocks ‖ n × (first seq u64 ‖ offset u64 ‖ frame length u32 ‖ raw length u32) |
//! | seal    | 64    | Ed25519 signature (the checkpoint key) over [`seal_message`] |
//! | trailer | 22    | footer offset u64 ‖ footer length u32 ‖ crc32 of the footer ‖ `"HLSEG1"` |
//!
//! Opening reads the header, the trailer and the footer only; [`SegmentReader::get`] then reads
//! and decompresses one block. [`SegmentReader::verify`] reads the file front to back once.
//!
//! # Damage
//! Every part is covered by a checksum (header and block crc32, the footer's crc32 in the
//! trailer) or by the seal, so any changed byte is reported as an error that names the file and
//! the part ([`SegmentError`]). Every length read from the file is checked against the file's
//! size (and a decompressed block against [`MAX_BLOCK_RAW`]) before anything is allocated for
//! it: a damaged file gives an error, never a panic or an allocation of a bogus size.
//!
//! This module does plain file I/O only; the store decides where segments live and when they
//! are written.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::ledger::chain::{self, Link};

/// The file's first (and last) six bytes.
pub const MAGIC: &[u8; 6] = b"HLSEG1";
/// The domain tag of the seal's signed message.
pub const SEAL_DOMAIN: &[u8] = b"hallctl-segment-v1";
/// The raw (uncompressed) size after which a block is closed.
pub const BLOCK_BYTES: usize = 32 << 10;
/// The largest record body a segment takes.
pub const MAX_BODY: usize = 4 << 20;
/// The largest raw block a reader decompresses (a block is closed once it reaches its target
/// size, so it holds at most the target, one more body and its length).
pub const MAX_BLOCK_RAW: usize = MAX_BODY + (1 << 20) + 16;

const HEADER_LEN: u64 = 58;
const BLOCK_TRAILER_LEN: u64 = 36;
const FOOTER_FIXED: u64 = 76;
const ENTRY_LEN: u64 = 24;
const SEAL_LEN: u64 = 64;
const TRAILER_LEN: u64 = 22;
/// Read size of sequential passes ([`SegmentReader::verify`], [`SegmentReader::records`]).
const READ_AHEAD: usize = 1 << 20;

/// A part of a segment file, as named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The header (first 58 bytes).
    Header,
    /// A record block and its trailer.
    Block {
        /// Its position in the file, from 0.
        index: u32,
        /// The sequence number of its first record.
        first_seq: u64,
    },
    /// The footer (block index, counts, digest), or its checksum in the trailer.
    Footer,
    /// The trailer (last 22 bytes).
    Trailer,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Part::Header => f.write_str("header"),
            Part::Block { index, first_seq } => {
                write!(f, "block {index} (from record {first_seq})")
            }
            Part::Footer => f.write_str("footer"),
            Part::Trailer => f.write_str("trailer"),
        }
    }
}

/// What can be wrong with a segment file, or with writing one. Every message names the file;
/// none carries record contents.
#[derive(Debug, Error)]
pub enum SegmentError {
    /// Reading or writing the file failed.
    #[error("{}: {source}", .file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file does not start with the segment magic: not a segment file.
    #[error("{}: not a ledger segment file (it does not start with \"HLSEG1\")", .file.display())]
    WrongMagic {
        /// The file.
        file: PathBuf,
    },
    /// The file is shorter than its own structure says: cut short.
    #[error("{}: the file is cut short ({len} bytes, its trailer is missing or incomplete)", .file.display())]
    Truncated {
        /// The file.
        file: PathBuf,
        /// Its length in bytes.
        len: u64,
    },
    /// A part's checksum or structure is wrong.
    #[error("{}: the {part} at byte {offset} is damaged: {what}", .file.display())]
    DamagedPart {
        /// The file.
        file: PathBuf,
        /// Which part.
        part: Part,
        /// Where the part starts, in bytes from the file's start.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// The seal's signature does not verify with the trusted key: signed by another key, or the
    /// seal or what it covers was altered.
    #[error("{}: the seal does not verify with the trusted key (signed by another key, or altered)", .file.display())]
    BadSeal {
        /// The file.
        file: PathBuf,
    },
    /// A recomputed link differs from the stored one: the chain breaks at `seq`.
    #[error("{}: the chain breaks at record {seq}: {what}", .file.display())]
    ChainBreak {
        /// The file.
        file: PathBuf,
        /// The first record whose link does not match.
        seq: u64,
        /// Which links disagree.
        what: String,
    },
    /// The writer was given something it cannot store (out of order, too large, nothing).
    #[error("{}: cannot write the segment: {what}", .file.display())]
    Refused {
        /// The file being written.
        file: PathBuf,
        /// Why.
        what: String,
    },
}

/// The signed message of a segment's seal: the domain tag, then first and last sequence
/// numbers (u64 big-endian), the link before the first record, the last record's link, and the
/// SHA-256 of the header and blocks.
pub fn seal_message(
    first: u64,
    last: u64,
    prev_link: &Link,
    last_link: &Link,
    digest: &[u8; 32],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(SEAL_DOMAIN.len() + 16 + 96);
    m.extend_from_slice(SEAL_DOMAIN);
    m.extend_from_slice(&first.to_be_bytes());
    m.extend_from_slice(&last.to_be_bytes());
    m.extend_from_slice(prev_link);
    m.extend_from_slice(last_link);
    m.extend_from_slice(digest);
    m
}

/// What a finished segment holds: what the catalog records about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSummary {
    /// First sequence number.
    pub first_seq: u64,
    /// Last sequence number.
    pub last_seq: u64,
    /// The link before the first record.
    pub prev_link: Link,
    /// The last record's link.
    pub last_link: Link,
    /// SHA-256 of the header and blocks (the sealed digest).
    pub digest: [u8; 32],
    /// File length in bytes.
    pub len: u64,
    /// Record blocks.
    pub blocks: u32,
}

/// One entry of the footer's block index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlockEntry {
    first_seq: u64,
    offset: u64,
    frame_len: u32,
    raw_len: u32,
}

impl BlockEntry {
    /// Bytes of the block on disk, trailer included.
    fn disk_len(&self) -> u64 {
        u64::from(self.frame_len) + BLOCK_TRAILER_LEN
    }
}

fn io_err(file: &Path) -> impl FnOnce(std::io::Error) -> SegmentError + '_ {
    move |source| SegmentError::Io {
        file: file.to_path_buf(),
        source,
    }
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn link_at(b: &[u8], at: usize) -> Link {
    let mut l = [0u8; 32];
    l.copy_from_slice(&b[at..at + 32]);
    l
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint at the start of `b`: (value, bytes used), or `None` if malformed.
fn read_varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn header_bytes(first: u64, last: u64, prev_link: &Link) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..6].copy_from_slice(MAGIC);
    h[6..14].copy_from_slice(&first.to_le_bytes());
    h[14..22].copy_from_slice(&last.to_le_bytes());
    h[22..54].copy_from_slice(prev_link);
    let crc = crc32fast::hash(&h[..54]);
    h[54..].copy_from_slice(&crc.to_le_bytes());
    h
}

fn block_crc(frame: &[u8], link: &Link) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(frame);
    c.update(link);
    c.finalize()
}

/// fsyncs a directory, so that a rename into it survives a crash.
fn sync_dir(dir: &Path) -> Result<(), SegmentError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Writes one segment: records in sequence order, then [`SegmentWriter::finish`] signs it and
/// moves it into place. Until then the data is in `<path>.tmp`, which a dropped writer removes.
pub struct SegmentWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: std::io::BufWriter<File>,
    first_seq: u64,
    prev_link: Link,
    /// The sequence number the next record must have.
    next_seq: u64,
    link: Link,
    block_bytes: usize,
    block_first: u64,
    raw: Vec<u8>,
    offset: u64,
    index: Vec<BlockEntry>,
    compressor: zstd::bulk::Compressor<'static>,
    finished: bool,
}

impl std::fmt::Debug for SegmentWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("path", &self.path)
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

impl SegmentWriter {
    /// Starts a segment at `path` whose first record is `first_seq`, after a record whose link
    /// is `prev_link` ([`chain::GENESIS`] before record 1).
    ///
    /// # Errors
    /// The temporary file cannot be created, or the zstd context not made.
    pub fn create(
        path: &Path,
        first_seq: u64,
        prev_link: Link,
    ) -> Result<SegmentWriter, SegmentError> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        // Read too: the digest is computed by reading the header and blocks back.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        let mut out = std::io::BufWriter::with_capacity(READ_AHEAD, file);
        // The header's last seq is known only at the end: a placeholder now, rewritten then.
        out.write_all(&[0u8; HEADER_LEN as usize])
            .map_err(io_err(&tmp))?;
        let compressor = zstd::bulk::Compressor::new(3).map_err(io_err(&tmp))?;
        Ok(SegmentWriter {
            path: path.to_path_buf(),
            tmp,
            out,
            first_seq,
            prev_link,
            next_seq: first_seq,
            link: prev_link,
            block_bytes: BLOCK_BYTES,
            block_first: first_seq,
            raw: Vec::with_capacity(BLOCK_BYTES * 2),
            offset: HEADER_LEN,
            index: Vec::new(),
            compressor,
            finished: false,
        })
    }

    /// Sets the raw size after which a block is closed (default [`BLOCK_BYTES`], at most
    /// 1 MiB): small blocks make small test files with many blocks.
    pub fn with_block_bytes(mut self, bytes: usize) -> SegmentWriter {
        self.block_bytes = bytes.clamp(1, 1 << 20);
        self
    }

    fn refused(&self, what: String) -> SegmentError {
        SegmentError::Refused {
            file: self.path.clone(),
            what,
        }
    }

    /// Adds record `seq` with its canonical body.
    ///
    /// # Errors
    /// `seq` is not the next sequence number, the body is larger than [`MAX_BODY`], or writing
    /// failed.
    pub fn push(&mut self, seq: u64, body: &[u8]) -> Result<(), SegmentError> {
        if seq == 0 || seq == u64::MAX {
            return Err(self.refused(format!("record {seq} is out of range")));
        }
        if seq != self.next_seq {
            return Err(self.refused(format!(
                "record {seq} given where record {} was expected",
                self.next_seq
            )));
        }
        if body.len() > MAX_BODY {
            return Err(self.refused(format!(
                "record {seq} is {} bytes, more than the {MAX_BODY} a segment takes",
                body.len()
            )));
        }
        push_varint(&mut self.raw, body.len() as u64);
        self.raw.extend_from_slice(body);
        self.link = chain::link(&self.link, seq, body);
        self.next_seq = seq
            .checked_add(1)
            .ok_or_else(|| self.refused("sequence numbers overflow".into()))?;
        if self.raw.len() >= self.block_bytes {
            self.close_block()?;
        }
        Ok(())
    }

    /// The link of the last record pushed (`prev_link` before any).
    pub fn link(&self) -> Link {
        self.link
    }

    fn close_block(&mut self) -> Result<(), SegmentError> {
        if self.raw.is_empty() {
            return Ok(());
        }
        let frame = self
            .compressor
            .compress(&self.raw)
            .map_err(io_err(&self.tmp))?;
        let crc = block_crc(&frame, &self.link);
        let too_big = || self.refused("a compressed block exceeds 4 GiB".into());
        let entry = BlockEntry {
            first_seq: self.block_first,
            offset: self.offset,
            frame_len: u32::try_from(frame.len()).map_err(|_| too_big())?,
            raw_len: u32::try_from(self.raw.len()).map_err(|_| too_big())?,
        };
        let w = &mut self.out;
        w.write_all(&frame)
            .and_then(|()| w.write_all(&self.link))
            .and_then(|()| w.write_all(&crc.to_le_bytes()))
            .map_err(io_err(&self.tmp))?;
        self.offset += entry.disk_len();
        self.index.push(entry);
        self.block_first = self.next_seq;
        self.raw.clear();
        Ok(())
    }

    /// Closes the last block, writes the footer, signs the seal with `key`, fsyncs the file,
    /// renames it to its path and fsyncs the directory.
    ///
    /// # Errors
    /// No record was pushed, or writing, syncing or renaming failed (the temporary file is then
    /// removed).
    pub fn finish(mut self, key: &SigningKey) -> Result<SegmentSummary, SegmentError> {
        if self.next_seq == self.first_seq {
            return Err(self.refused("no records to seal".into()));
        }
        self.close_block()?;
        let last_seq = self.next_seq - 1;
        let tmp = self.tmp.clone();
        self.out.flush().map_err(io_err(&tmp))?;
        let file = self.out.get_ref();
        file.write_all_at(&header_bytes(self.first_seq, last_seq, &self.prev_link), 0)
            .map_err(io_err(&tmp))?;
        // The digest covers the header and the blocks as written: read them back (they are in
        // the page cache) rather than hash a header not yet known.
        let mut sha = Sha256::new();
        let mut reader = BufReader::with_capacity(READ_AHEAD, PosReader { file, pos: 0 });
        let mut left = self.offset;
        let mut buf = vec![0u8; READ_AHEAD];
        while left > 0 {
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            reader.read_exact(&mut buf[..n]).map_err(io_err(&tmp))?;
            sha.update(&buf[..n]);
            left -= n as u64;
        }
        let digest: [u8; 32] = sha.finalize().into();
        let blocks = u32::try_from(self.index.len())
            .map_err(|_| self.refused("more than 2^32 blocks".into()))?;
        let mut footer =
            Vec::with_capacity((FOOTER_FIXED + ENTRY_LEN * u64::from(blocks)) as usize);
        footer.extend_from_slice(&blocks.to_le_bytes());
        footer.extend_from_slice(&(last_seq - self.first_seq + 1).to_le_bytes());
        footer.extend_from_slice(&self.link);
        footer.extend_from_slice(&digest);
        for e in &self.index {
            footer.extend_from_slice(&e.first_seq.to_le_bytes());
            footer.extend_from_slice(&e.offset.to_le_bytes());
            footer.extend_from_slice(&e.frame_len.to_le_bytes());
            footer.extend_from_slice(&e.raw_len.to_le_bytes());
        }
        let seal = key.sign(&seal_message(
            self.first_seq,
            last_seq,
            &self.prev_link,
            &self.link,
            &digest,
        ));
        let footer_len = u32::try_from(footer.len())
            .map_err(|_| self.refused("the footer exceeds 4 GiB".into()))?;
        let mut tail = footer;
        tail.extend_from_slice(&seal.to_bytes());
        tail.extend_from_slice(&self.offset.to_le_bytes());
        tail.extend_from_slice(&footer_len.to_le_bytes());
        tail.extend_from_slice(&crc32fast::hash(&tail[..footer_len as usize]).to_le_bytes());
        tail.extend_from_slice(MAGIC);
        let file = self.out.get_ref();
        file.write_all_at(&tail, self.offset)
            .and_then(|()| file.sync_all())
            .map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io_err(&self.path))?;
        self.finished = true;
        if let Some(dir) = self.path.parent() {
            sync_dir(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })?;
        }
        Ok(SegmentSummary {
            first_seq: self.first_seq,
            last_seq,
            prev_link: self.prev_link,
            last_link: self.link,
            digest,
            len: self.offset + tail.len() as u64,
            blocks,
        })
    }
}

impl Drop for SegmentWriter {
    fn drop(&mut self) {
        if !self.finished {
            // Half-written work: never leave it where it could be taken for a segment.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// `Read` over a file by positional reads (`pread`), so that sequential passes share no file
/// cursor with each other or with [`SegmentReader::get`].
struct PosReader<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for PosReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// An open segment file: its header and footer in memory, records read on demand.
#[derive(Debug)]
pub struct SegmentReader {
    path: PathBuf,
    file: File,
    len: u64,
    first_seq: u64,
    last_seq: u64,
    prev_link: Link,
    last_link: Link,
    digest: [u8; 32],
    seal: [u8; 64],
    footer_offset: u64,
    index: Vec<BlockEntry>,
}

impl SegmentReader {
    /// Opens a segment, reading and checking its header, trailer and footer.
    ///
    /// # Errors
    /// The file cannot be read, is not a segment ([`SegmentError::WrongMagic`]), is cut short
    /// ([`SegmentError::Truncated`]), or its header, footer or trailer is damaged
    /// ([`SegmentError::DamagedPart`]).
    pub fn open(path: &Path) -> Result<SegmentReader, SegmentError> {
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let mut r = SegmentReader {
            path: path.to_path_buf(),
            file,
            len,
            first_seq: 0,
            last_seq: 0,
            prev_link: chain::GENESIS,
            last_link: chain::GENESIS,
            digest: [0; 32],
            seal: [0; 64],
            footer_offset: 0,
            index: Vec::new(),
        };
        r.read_structure()?;
        Ok(r)
    }

    fn damaged(&self, part: Part, offset: u64, what: impl Into<String>) -> SegmentError {
        SegmentError::DamagedPart {
            file: self.path.clone(),
            part,
            offset,
            what: what.into(),
        }
    }

    fn read_at(&self, len: u64, offset: u64) -> Result<Vec<u8>, SegmentError> {
        // Callers bound `len` by the file's size first.
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(io_err(&self.path))?;
        Ok(buf)
    }

    fn read_structure(&mut self) -> Result<(), SegmentError> {
        let (path, len) = (self.path.clone(), self.len);
        let truncated = || SegmentError::Truncated {
            file: path.clone(),
            len,
        };
        if len >= MAGIC.len() as u64 && self.read_at(MAGIC.len() as u64, 0)? != MAGIC {
            return Err(SegmentError::WrongMagic { file: path.clone() });
        }
        let min = HEADER_LEN + FOOTER_FIXED + SEAL_LEN + TRAILER_LEN;
        if len < min {
            return Err(truncated());
        }
        let h = self.read_at(HEADER_LEN, 0)?;
        if le_u32(&h, 54) != crc32fast::hash(&h[..54]) {
            return Err(self.damaged(Part::Header, 0, "its checksum does not match"));
        }
        self.first_seq = le_u64(&h, 6);
        self.last_seq = le_u64(&h, 14);
        self.prev_link = link_at(&h, 22);
        if self.last_seq < self.first_seq {
            return Err(self.damaged(Part::Header, 0, "its last record comes before its first"));
        }
        // Sequence numbers are counted up from 1; the largest one can never be reached, and
        // refusing it keeps every `seq + 1` of the reader in range.
        if self.last_seq == u64::MAX || self.first_seq == 0 {
            return Err(self.damaged(Part::Header, 0, "its sequence numbers are out of range"));
        }

        let t = self.read_at(TRAILER_LEN, len - TRAILER_LEN)?;
        let footer_offset = le_u64(&t, 0);
        let footer_len = u64::from(le_u32(&t, 8));
        let footer_crc = le_u32(&t, 12);
        let end_magic = &t[16..22] == MAGIC;
        let fits = footer_len >= FOOTER_FIXED
            && footer_offset >= HEADER_LEN
            && footer_offset.checked_add(footer_len + SEAL_LEN + TRAILER_LEN) == Some(len);
        let trailer_at = len - TRAILER_LEN;
        if !fits {
            // Without its end mark the last bytes are not a trailer at all: the file was cut.
            return Err(if end_magic {
                self.damaged(
                    Part::Trailer,
                    trailer_at,
                    "the footer's position is impossible",
                )
            } else {
                truncated()
            });
        }
        let footer = self.read_at(footer_len, footer_offset)?;
        let crc_ok = crc32fast::hash(&footer) == footer_crc;
        match (crc_ok, end_magic) {
            (true, true) => {}
            (true, false) => {
                return Err(self.damaged(Part::Trailer, trailer_at, "its end mark is wrong"));
            }
            (false, true) => {
                return Err(self.damaged(
                    Part::Footer,
                    footer_offset,
                    "its checksum (in the trailer) does not match",
                ));
            }
            (false, false) => return Err(truncated()),
        }
        let seal = self.read_at(SEAL_LEN, footer_offset + footer_len)?;
        self.seal.copy_from_slice(&seal);
        self.footer_offset = footer_offset;
        self.parse_footer(&footer)
    }

    fn parse_footer(&mut self, f: &[u8]) -> Result<(), SegmentError> {
        let at = self.footer_offset;
        let file = self.path.clone();
        let bad = |what: &str| SegmentError::DamagedPart {
            file: file.clone(),
            part: Part::Footer,
            offset: at,
            what: what.into(),
        };
        let blocks = u64::from(le_u32(f, 0));
        let records = le_u64(f, 4);
        if FOOTER_FIXED + blocks * ENTRY_LEN != f.len() as u64 {
            return Err(bad("its block count does not match its length"));
        }
        if Some(records) != (self.last_seq - self.first_seq).checked_add(1) || blocks == 0 {
            return Err(bad("its record count does not match the header"));
        }
        self.last_link = link_at(f, 12);
        self.digest = link_at(f, 44);
        let mut index = Vec::with_capacity(blocks as usize);
        let (mut next_offset, mut min_seq) = (HEADER_LEN, self.first_seq);
        for i in 0..blocks as usize {
            let b = &f[FOOTER_FIXED as usize + i * ENTRY_LEN as usize..];
            let e = BlockEntry {
                first_seq: le_u64(b, 0),
                offset: le_u64(b, 8),
                frame_len: le_u32(b, 16),
                raw_len: le_u32(b, 20),
            };
            let first_ok = if i == 0 {
                e.first_seq == self.first_seq
            } else {
                e.first_seq > min_seq
            };
            if !first_ok || e.first_seq > self.last_seq {
                return Err(bad(&format!("block {i}'s first record is out of order")));
            }
            if e.offset != next_offset || e.frame_len == 0 || e.raw_len as usize > MAX_BLOCK_RAW {
                return Err(bad(&format!("block {i}'s position or size is impossible")));
            }
            next_offset = match e.offset.checked_add(e.disk_len()) {
                Some(end) if end <= self.footer_offset => end,
                _ => return Err(bad(&format!("block {i}'s position or size is impossible"))),
            };
            min_seq = e.first_seq;
            index.push(e);
        }
        if next_offset != self.footer_offset {
            return Err(bad("its blocks do not end where the footer starts"));
        }
        self.index = index;
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The first record's sequence number.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }
    /// The last record's sequence number.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
    /// The link before the first record, as the header states it.
    pub fn prev_link(&self) -> Link {
        self.prev_link
    }
    /// The last record's link, as the footer states it.
    pub fn last_link(&self) -> Link {
        self.last_link
    }
    /// The digest of the header and blocks, as the footer states it.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Always false: a segment holds at least one record.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// Record blocks in the file.
    pub fn blocks(&self) -> usize {
        self.index.len()
    }

    /// The records of block `i`: its part, and how many records it holds.
    fn block_part(&self, i: usize) -> (Part, u64) {
        let e = &self.index[i];
        let end = self
            .index
            .get(i + 1)
            .map_or(self.last_seq, |n| n.first_seq - 1);
        (
            Part::Block {
                index: i as u32,
                first_seq: e.first_seq,
            },
            end - e.first_seq + 1,
        )
    }

    /// Checks block `i`'s bytes (`frame ‖ link ‖ crc32`, as read from the file) against their
    /// checksum; returns the block's trailer link.
    fn checked_link(&self, i: usize, bytes: &[u8]) -> Result<Link, SegmentError> {
        let e = self.index[i];
        let n = e.frame_len as usize;
        let link = link_at(bytes, n);
        if le_u32(bytes, n + 32) != block_crc(&bytes[..n], &link) {
            let (part, _) = self.block_part(i);
            return Err(self.damaged(part, e.offset, "its checksum does not match"));
        }
        Ok(link)
    }

    /// Checks block `i`'s bytes and decompresses it into `raw`; returns its trailer link.
    fn decode_block(
        &self,
        i: usize,
        bytes: &[u8],
        dec: &mut zstd::bulk::Decompressor<'_>,
        raw: &mut Vec<u8>,
    ) -> Result<Link, SegmentError> {
        let link = self.checked_link(i, bytes)?;
        let e = self.index[i];
        let (part, _) = self.block_part(i);
        raw.clear();
        raw.reserve(e.raw_len as usize);
        match dec.decompress_to_buffer(&bytes[..e.frame_len as usize], raw) {
            Ok(got) if got == e.raw_len as usize => Ok(link),
            Ok(got) => Err(self.damaged(
                part,
                e.offset,
                format!("it holds {got} bytes, its index says {}", e.raw_len),
            )),
            Err(_) => Err(self.damaged(part, e.offset, "it does not decompress")),
        }
    }

    /// Recomputes the links of block `i`'s records from `prev` (the link before the block),
    /// calling `each(k, link)` for its k-th record, and checks the last one against the block's
    /// trailer link `stored`. Returns the last link.
    fn chain_block(
        &self,
        i: usize,
        prev: Link,
        raw: &[u8],
        stored: &Link,
        mut each: impl FnMut(usize, &Link),
    ) -> Result<Link, SegmentError> {
        let (mut link, mut seq) = (prev, self.index[i].first_seq);
        for (k, r) in self.bodies(i, raw)?.into_iter().enumerate() {
            link = chain::link(&link, seq, &raw[r]);
            each(k, &link);
            seq += 1;
        }
        if &link != stored {
            return Err(SegmentError::ChainBreak {
                file: self.path.clone(),
                seq: seq - 1,
                what: format!(
                    "the links recomputed from block {i}'s records do not match its trailer"
                ),
            });
        }
        Ok(link)
    }

    /// Splits block `i`'s raw bytes into its bodies (byte ranges into `raw`).
    fn bodies(&self, i: usize, raw: &[u8]) -> Result<Vec<std::ops::Range<usize>>, SegmentError> {
        let (part, count) = self.block_part(i);
        let offset = self.index[i].offset;
        let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(raw.len()));
        let mut at = 0usize;
        while at < raw.len() {
            let body = read_varint(&raw[at..])
                .and_then(|(len, used)| {
                    let start = at + used;
                    let end = start.checked_add(usize::try_from(len).ok()?)?;
                    (end <= raw.len()).then_some(start..end)
                })
                .ok_or_else(|| self.damaged(part, offset, "a record's length is impossible"))?;
            at = body.end;
            out.push(body);
        }
        if out.len() as u64 != count {
            return Err(self.damaged(
                part,
                offset,
                format!("it holds {} records, its index says {count}", out.len()),
            ));
        }
        Ok(out)
    }

    fn block_of(&self, seq: u64) -> Option<usize> {
        if seq < self.first_seq || seq > self.last_seq {
            return None;
        }
        Some(self.index.partition_point(|e| e.first_seq <= seq) - 1)
    }

    fn decompressor(&self) -> Result<zstd::bulk::Decompressor<'static>, SegmentError> {
        zstd::bulk::Decompressor::new().map_err(io_err(&self.path))
    }

    /// Runs `f` with this thread's decompressor (a point read would otherwise make one, which
    /// costs more than decoding its block).
    fn with_decompressor<T>(
        &self,
        f: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> Result<T, SegmentError>,
    ) -> Result<T, SegmentError> {
        thread_local! {
            static DEC: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
                const { std::cell::RefCell::new(None) };
        }
        DEC.with(|d| {
            let mut d = d.borrow_mut();
            if d.is_none() {
                *d = Some(self.decompressor()?);
            }
            f(d.as_mut().expect("made above"))
        })
    }

    /// The body of record `seq`: one block read and decompressed. `None` when the file does
    /// not hold `seq`.
    ///
    /// # Errors
    /// The block cannot be read or is damaged.
    pub fn get(&self, seq: u64) -> Result<Option<Vec<u8>>, SegmentError> {
        let Some(i) = self.block_of(seq) else {
            return Ok(None);
        };
        let e = self.index[i];
        let bytes = self.read_at(e.disk_len(), e.offset)?;
        let mut raw = Vec::new();
        self.with_decompressor(|d| self.decode_block(i, &bytes, d, &mut raw))?;
        let bodies = self.bodies(i, &raw)?;
        let k = usize::try_from(seq - e.first_seq).unwrap_or(usize::MAX);
        Ok(bodies.get(k).map(|r| raw[r.clone()].to_vec()))
    }

    /// Record `seq` with its link, as a stored journal value holds them: one read of its block
    /// and the block before it (adjacent in the file), both checksums checked, the block's
    /// links recomputed from the previous block's trailer link and checked against its own.
    /// `None` when the file does not hold `seq`.
    ///
    /// # Errors
    /// A block cannot be read or is damaged, or the block's links do not match its trailer.
    pub fn get_linked(&self, seq: u64) -> Result<Option<(Link, Vec<u8>)>, SegmentError> {
        let Some(i) = self.block_of(seq) else {
            return Ok(None);
        };
        let e = self.index[i];
        let from = i.checked_sub(1).map_or(e.offset, |p| self.index[p].offset);
        let bytes = self.read_at(e.offset + e.disk_len() - from, from)?;
        let here = usize::try_from(e.offset - from).unwrap_or(usize::MAX);
        let prev = match i.checked_sub(1) {
            Some(p) => self.checked_link(p, &bytes[..here])?,
            None => self.prev_link,
        };
        let mut raw = Vec::new();
        let stored =
            self.with_decompressor(|d| self.decode_block(i, &bytes[here..], d, &mut raw))?;
        let k = usize::try_from(seq - e.first_seq).unwrap_or(usize::MAX);
        let mut link = None;
        self.chain_block(i, prev, &raw, &stored, |n, l| {
            if n == k {
                link = Some(*l);
            }
        })?;
        let body = self
            .bodies(i, &raw)?
            .get(k)
            .map(|r| raw[r.clone()].to_vec());
        Ok(link.zip(body))
    }

    /// Every record `(seq, body)` in order, read front to back. After an error the iterator
    /// ends.
    pub fn records(&self) -> Records<'_> {
        Records {
            blocks: BlockStream::new(self, None),
            current: Vec::new(),
            raw: Vec::new(),
            dec: None,
            failed: false,
        }
    }

    /// The records from the block that holds `seq` on (from the file's start when `seq` is
    /// before it, none when after it), and the link before the first record yielded: the
    /// previous block's trailer link, its checksum checked (one extra block read), or the
    /// header's link for the first block. A caller that wants the records from `seq` skips
    /// the few before it in its block, chaining their links.
    ///
    /// # Errors
    /// The previous block cannot be read or is damaged.
    pub fn records_from(&self, seq: u64) -> Result<(Link, Records<'_>), SegmentError> {
        let i = if seq <= self.first_seq {
            0
        } else {
            self.block_of(seq).unwrap_or(self.index.len())
        };
        let prev = match i.checked_sub(1) {
            None => self.prev_link,
            Some(_) if i == self.index.len() => self.last_link,
            Some(p) => {
                let e = self.index[p];
                let bytes = self.read_at(e.disk_len(), e.offset)?;
                self.checked_link(p, &bytes)?
            }
        };
        let mut blocks = BlockStream::new(self, None);
        if i > 0 {
            blocks.started = true;
            blocks.next = i;
            blocks.input = BufReader::with_capacity(
                READ_AHEAD,
                PosReader {
                    file: &self.file,
                    pos: self.index.get(i).map_or(self.footer_offset, |e| e.offset),
                },
            );
        }
        Ok((
            prev,
            Records {
                blocks,
                current: Vec::new(),
                raw: Vec::new(),
                dec: None,
                failed: false,
            },
        ))
    }

    /// Checks the whole file: every block's checksum, every link recomputed from the bodies
    /// starting at `expected_prev` (the previous file's last link) against the block trailers
    /// and the footer, the digest of the header and blocks, and the seal against `key`.
    /// Returns the last record's link.
    ///
    /// # Errors
    /// The first problem found, naming the file and the part or record.
    pub fn verify(&self, key: &VerifyingKey, expected_prev: &Link) -> Result<Link, SegmentError> {
        let chain_break = |seq: u64, what: String| SegmentError::ChainBreak {
            file: self.path.clone(),
            seq,
            what,
        };
        if &self.prev_link != expected_prev {
            return Err(chain_break(
                self.first_seq,
                format!(
                    "the file starts after link {}, the chain before it ends with {}",
                    short(&self.prev_link),
                    short(expected_prev)
                ),
            ));
        }
        let mut sha = Sha256::new();
        let mut blocks = BlockStream::new(self, Some(&mut sha));
        let mut dec = self.decompressor()?;
        let (mut raw, mut link) = (Vec::new(), self.prev_link);
        while let Some((i, bytes)) = blocks.next_block()? {
            let stored = self.decode_block(i, &bytes, &mut dec, &mut raw)?;
            link = self.chain_block(i, link, &raw, &stored, |_, _| {})?;
        }
        drop(blocks);
        let digest: [u8; 32] = sha.finalize().into();
        if digest != self.digest {
            return Err(self.damaged(
                Part::Footer,
                self.footer_offset,
                "its digest does not match the header and blocks",
            ));
        }
        if link != self.last_link {
            return Err(chain_break(
                self.last_seq,
                "the last link recomputed differs from the footer's".into(),
            ));
        }
        let message = seal_message(
            self.first_seq,
            self.last_seq,
            &self.prev_link,
            &self.last_link,
            &self.digest,
        );
        key.verify(&message, &Signature::from_bytes(&self.seal))
            .map_err(|_| SegmentError::BadSeal {
                file: self.path.clone(),
            })?;
        Ok(link)
    }
}

fn short(link: &Link) -> String {
    hex::encode(&link[..8])
}

/// Reads the header and then each block's bytes in file order, in large sequential reads,
/// feeding them to a digest when given one.
struct BlockStream<'a> {
    reader: &'a SegmentReader,
    input: BufReader<PosReader<'a>>,
    sha: Option<&'a mut Sha256>,
    next: usize,
    started: bool,
}

impl<'a> BlockStream<'a> {
    fn new(reader: &'a SegmentReader, sha: Option<&'a mut Sha256>) -> BlockStream<'a> {
        BlockStream {
            reader,
            input: BufReader::with_capacity(
                READ_AHEAD,
                PosReader {
                    file: &reader.file,
                    pos: 0,
                },
            ),
            sha,
            next: 0,
            started: false,
        }
    }

    fn read(&mut self, len: u64) -> Result<Vec<u8>, SegmentError> {
        // Lengths come from the checked index: within the file.
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        self.input
            .read_exact(&mut buf)
            .map_err(io_err(&self.reader.path))?;
        if let Some(sha) = self.sha.as_deref_mut() {
            sha.update(&buf);
        }
        Ok(buf)
    }

    /// The next block: its index and its bytes (`frame ‖ link ‖ crc32`).
    fn next_block(&mut self) -> Result<Option<(usize, Vec<u8>)>, SegmentError> {
        if !self.started {
            self.started = true;
            self.read(HEADER_LEN)?;
        }
        let Some(e) = self.reader.index.get(self.next).copied() else {
            return Ok(None);
        };
        let bytes = self.read(e.disk_len())?;
        self.next += 1;
        Ok(Some((self.next - 1, bytes)))
    }
}

/// The records of a segment in order: see [`SegmentReader::records`].
pub struct Records<'a> {
    blocks: BlockStream<'a>,
    /// The current block's records not yet returned, last first.
    current: Vec<(u64, Vec<u8>)>,
    raw: Vec<u8>,
    dec: Option<zstd::bulk::Decompressor<'static>>,
    failed: bool,
}

impl Records<'_> {
    fn refill(&mut self) -> Result<bool, SegmentError> {
        let r = self.blocks.reader;
        let Some((i, bytes)) = self.blocks.next_block()? else {
            return Ok(false);
        };
        if self.dec.is_none() {
            self.dec = Some(r.decompressor()?);
        }
        let Some(dec) = self.dec.as_mut() else {
            return Ok(false);
        };
        r.decode_block(i, &bytes, dec, &mut self.raw)?;
        let first = r.index[i].first_seq;
        let bodies = r.bodies(i, &self.raw)?;
        self.current = bodies
            .into_iter()
            .enumerate()
            .rev()
            .map(|(k, range)| (first + k as u64, self.raw[range].to_vec()))
            .collect();
        Ok(true)
    }
}

impl Iterator for Records<'_> {
    type Item = Result<(u64, Vec<u8>), SegmentError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(rec) = self.current.pop() {
                return Some(Ok(rec));
            }
            match self.refill() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report
    use super::*;
    use proptest::prelude::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    /// Writes `bodies` as records `first..` after `prev`, signed with key 1.
    fn write(
        path: &Path,
        first: u64,
        prev: Link,
        bodies: &[Vec<u8>],
        block_bytes: usize,
        signer: &SigningKey,
    ) -> SegmentSummary {
        let mut w = SegmentWriter::create(path, first, prev)
            .unwrap()
            .with_block_bytes(block_bytes);
        for (k, b) in bodies.iter().enumerate() {
            w.push(first + k as u64, b).unwrap();
        }
        w.finish(signer).unwrap()
    }

    fn chain_of(first: u64, prev: Link, bodies: &[Vec<u8>]) -> Link {
        bodies
            .iter()
            .enumerate()
            .fold(prev, |l, (k, b)| chain::link(&l, first + k as u64, b))
    }

    /// Small, ledger-like bodies: 14 records over several blocks.
    fn small_bodies() -> Vec<Vec<u8>> {
        (1..=14u64)
            .map(|s| {
                format!(
                    "{{\"seq\":{s},\"event\":{{\"kind\":\"qc_checked\",\"n\":{}}}}}",
                    s * 7
                )
                .into_bytes()
            })
            .collect()
    }

    fn open_and_verify(path: &Path, prev: &Link) -> Result<Link, SegmentError> {
        SegmentReader::open(path)?.verify(&key(1).verifying_key(), prev)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn records_round_trip(
            bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..700), 1..160),
            first in 1u64..10_000,
            prev in any::<[u8; 32]>(),
            block_bytes in 16usize..6_000,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.seg");
            let sum = write(&path, first, prev, &bodies, block_bytes, &key(1));
            let last = first + bodies.len() as u64 - 1;
            let want_link = chain_of(first, prev, &bodies);
            prop_assert_eq!((sum.first_seq, sum.last_seq, sum.last_link), (first, last, want_link));
            prop_assert_eq!(sum.len, std::fs::metadata(&path).unwrap().len());
            let r = SegmentReader::open(&path).unwrap();
            prop_assert_eq!((r.first_seq(), r.last_seq(), r.prev_link()), (first, last, prev));
            prop_assert_eq!(r.blocks() as u32, sum.blocks);
            let mut link = prev;
            for (k, b) in bodies.iter().enumerate() {
                let seq = first + k as u64;
                link = chain::link(&link, seq, b);
                prop_assert_eq!(r.get(seq).unwrap(), Some(b.clone()));
                prop_assert_eq!(r.get_linked(seq).unwrap(), Some((link, b.clone())));
            }
            for outside in [first - 1, last + 1] {
                prop_assert_eq!(r.get(outside).unwrap(), None);
                prop_assert_eq!(r.get_linked(outside).unwrap(), None);
            }
            let all: Vec<(u64, Vec<u8>)> = r.records().collect::<Result<_, _>>().unwrap();
            let want: Vec<(u64, Vec<u8>)> =
                bodies.iter().enumerate().map(|(k, b)| (first + k as u64, b.clone())).collect();
            prop_assert_eq!(all, want);
            prop_assert_eq!(r.verify(&key(1).verifying_key(), &prev).unwrap(), want_link);
            prop_assert!(!dir.path().join("s.seg.tmp").exists());
        }

        #[test]
        fn a_flipped_bit_anywhere_is_named(pos_frac in 0.0f64..1.0, mask in 1u8..=255) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.seg");
            write(&path, 1, chain::GENESIS, &small_bodies(), 100, &key(1));
            let r = SegmentReader::open(&path).unwrap();
            let mut bytes = std::fs::read(&path).unwrap();
            let pos = ((bytes.len() as f64 * pos_frac) as usize).min(bytes.len() - 1);
            bytes[pos] ^= mask;
            let bad = dir.path().join("bad.seg");
            std::fs::write(&bad, &bytes).unwrap();
            check_named(&r, &bad, pos, open_and_verify(&bad, &chain::GENESIS));
        }
    }

    /// The part of the intact segment `r` that holds byte `pos`, as an error should name it.
    fn check_named(r: &SegmentReader, bad: &Path, pos: usize, got: Result<Link, SegmentError>) {
        let pos = pos as u64;
        let err = got.expect_err(&format!("a changed byte at {pos} went unnoticed"));
        assert!(
            err.to_string().contains(&bad.display().to_string()),
            "{err} does not name the file"
        );
        let footer_end = r.footer_offset + FOOTER_FIXED + ENTRY_LEN * r.index.len() as u64;
        let trailer = r.len - TRAILER_LEN;
        let block = r
            .index
            .iter()
            .position(|e| (e.offset..e.offset + e.disk_len()).contains(&pos));
        let ok = match (&err, block) {
            (SegmentError::WrongMagic { .. }, _) => pos < 6,
            (
                SegmentError::DamagedPart {
                    part: Part::Header, ..
                },
                _,
            ) => pos < HEADER_LEN,
            (
                SegmentError::DamagedPart {
                    part: Part::Block { index, .. },
                    offset,
                    ..
                },
                Some(i),
            ) => *index as usize == i && *offset == r.index[i].offset,
            (
                SegmentError::DamagedPart {
                    part: Part::Footer, ..
                },
                _,
            ) => {
                (r.footer_offset..footer_end).contains(&pos)
                    || (trailer + 12..trailer + 16).contains(&pos)
            }
            (SegmentError::BadSeal { .. }, _) => (footer_end..trailer).contains(&pos),
            (
                SegmentError::DamagedPart {
                    part: Part::Trailer,
                    ..
                },
                _,
            ) => pos >= trailer && !(trailer + 12..trailer + 16).contains(&pos),
            _ => false,
        };
        assert!(ok, "byte {pos} changed, reported as: {err} ({err:?})");
    }

    #[test]
    fn every_changed_byte_is_detected_and_names_its_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.seg");
        write(&path, 1, chain::GENESIS, &small_bodies(), 100, &key(1));
        let r = SegmentReader::open(&path).unwrap();
        assert!(r.blocks() >= 4, "the test wants several blocks");
        let intact = std::fs::read(&path).unwrap();
        let bad = dir.path().join("bad.seg");
        for pos in 0..intact.len() {
            let mut bytes = intact.clone();
            bytes[pos] ^= 0x01;
            std::fs::write(&bad, &bytes).unwrap();
            check_named(&r, &bad, pos, open_and_verify(&bad, &chain::GENESIS));
        }
    }

    #[test]
    fn a_file_cut_short_anywhere_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.seg");
        write(&path, 1, chain::GENESIS, &small_bodies(), 100, &key(1));
        let intact = std::fs::read(&path).unwrap();
        let bad = dir.path().join("cut.seg");
        for len in 0..intact.len() {
            std::fs::write(&bad, &intact[..len]).unwrap();
            match open_and_verify(&bad, &chain::GENESIS) {
                Err(e @ SegmentError::Truncated { .. }) => {
                    assert!(matches!(e, SegmentError::Truncated { len: l, .. } if l == len as u64));
                    assert!(e.to_string().contains(&bad.display().to_string()), "{e}");
                    assert!(e.to_string().contains("cut short"), "{e}");
                }
                other => panic!("cut at {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_file_sealed_by_another_key_is_a_bad_seal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.seg");
        write(&path, 1, chain::GENESIS, &small_bodies(), 100, &key(2));
        let err = open_and_verify(&path, &chain::GENESIS).unwrap_err();
        assert!(matches!(err, SegmentError::BadSeal { .. }), "{err:?}");
        assert!(err.to_string().contains("s.seg"), "{err}");
        // The same file checks out against the key that sealed it.
        let r = SegmentReader::open(&path).unwrap();
        assert!(r.verify(&key(2).verifying_key(), &chain::GENESIS).is_ok());
    }

    #[test]
    fn a_segment_that_does_not_continue_the_chain_is_a_chain_break() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.seg");
        let prev = chain::link(&chain::GENESIS, 100, b"{}");
        let bodies = small_bodies();
        write(&path, 101, prev, &bodies, 100, &key(1));
        assert_eq!(
            open_and_verify(&path, &prev).unwrap(),
            chain_of(101, prev, &bodies)
        );
        let err = open_and_verify(&path, &chain::GENESIS).unwrap_err();
        assert!(
            matches!(err, SegmentError::ChainBreak { seq: 101, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("record 101"), "{err}");
    }

    #[test]
    fn a_block_trailer_link_rewritten_with_a_valid_checksum_breaks_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.seg");
        write(&path, 1, chain::GENESIS, &small_bodies(), 100, &key(1));
        let r = SegmentReader::open(&path).unwrap();
        let e = r.index[1];
        let mut bytes = std::fs::read(&path).unwrap();
        let at = (e.offset + u64::from(e.frame_len)) as usize;
        bytes[at] ^= 0xff;
        let link = link_at(&bytes, at);
        let crc = block_crc(&bytes[e.offset as usize..at], &link);
        bytes[at + 32..at + 36].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = open_and_verify(&path, &chain::GENESIS).unwrap_err();
        let last_of_block = r.index[2].first_seq - 1;
        assert!(
            matches!(err, SegmentError::ChainBreak { seq, .. } if seq == last_of_block),
            "{err:?}"
        );
    }

    #[test]
    fn the_writer_refuses_gaps_and_empty_segments_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.seg");
        let mut w = SegmentWriter::create(&path, 5, chain::GENESIS).unwrap();
        w.push(5, b"a").unwrap();
        let err = w.push(7, b"b").unwrap_err();
        assert!(
            err.to_string().contains("record 7 given where record 6"),
            "{err}"
        );
        drop(w);
        assert!(!dir.path().join("s.seg.tmp").exists());
        let w = SegmentWriter::create(&path, 5, chain::GENESIS).unwrap();
        let err = w.finish(&key(1)).unwrap_err();
        assert!(matches!(err, SegmentError::Refused { .. }), "{err:?}");
        assert!(!path.exists() && !dir.path().join("s.seg.tmp").exists());
    }

    /// Sequence numbers 0 and `u64::MAX` are refused by the writer, and a header that claims
    /// them (its checksum recomputed, as a forger would) is named, never read into an overflow.
    #[test]
    fn sequence_numbers_out_of_range_are_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.seg");
        let mut w = SegmentWriter::create(&path, 0, chain::GENESIS).unwrap();
        assert!(
            w.push(0, b"a")
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
        drop(w);
        write(&path, 1, chain::GENESIS, &small_bodies(), 100, &key(1));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[14..22].copy_from_slice(&u64::MAX.to_le_bytes());
        let crc = crc32fast::hash(&bytes[..54]);
        bytes[54..58].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = SegmentReader::open(&path).unwrap_err();
        assert!(
            matches!(
                err,
                SegmentError::DamagedPart {
                    part: Part::Header,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn a_damaged_block_is_named_and_the_other_blocks_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.seg");
        let bodies = small_bodies();
        write(&path, 1, chain::GENESIS, &bodies, 100, &key(1));
        let r = SegmentReader::open(&path).unwrap();
        let damaged = r.index[2];
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[damaged.offset as usize + 3] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let r = SegmentReader::open(&path).unwrap();
        let in_it = damaged.first_seq;
        for err in [r.get(in_it).unwrap_err(), r.get_linked(in_it).unwrap_err()] {
            assert!(
                matches!(err, SegmentError::DamagedPart { part: Part::Block { index: 2, first_seq }, offset, .. }
                    if first_seq == in_it && offset == damaged.offset),
                "{err:?}"
            );
            assert!(
                err.to_string()
                    .contains(&format!("block 2 (from record {in_it})")),
                "{err}"
            );
        }
        assert_eq!(r.get(1).unwrap(), Some(bodies[0].clone()));
        let last = bodies.len() as u64;
        assert_eq!(r.get(last).unwrap(), Some(bodies[bodies.len() - 1].clone()));
        // In order: the records before the damaged block, then its error, then nothing.
        let read: Vec<_> = r.records().collect();
        let ok = read.iter().take_while(|x| x.is_ok()).count();
        assert_eq!(ok as u64, in_it - 1);
        assert_eq!(read.len(), ok + 1, "the iterator stops after the error");
    }

    #[test]
    fn a_file_that_is_not_a_segment_has_the_wrong_magic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, b"hello, this is not a segment file at all").unwrap();
        let err = SegmentReader::open(&path).unwrap_err();
        assert!(matches!(err, SegmentError::WrongMagic { .. }), "{err:?}");
        assert!(err.to_string().contains("notes.txt"), "{err}");
    }

    /// Rewrites the header's and the footer's checksums to match whatever the bytes now say,
    /// as a forger (not an accident) would, so that the reader's checks past them run.
    fn forge_checksums(bytes: &mut [u8]) {
        if bytes.len() >= HEADER_LEN as usize {
            let crc = crc32fast::hash(&bytes[..54]);
            bytes[54..58].copy_from_slice(&crc.to_le_bytes());
        }
        let len = bytes.len();
        if len >= TRAILER_LEN as usize {
            let t = len - TRAILER_LEN as usize;
            let off = usize::try_from(le_u64(bytes, t)).unwrap_or(usize::MAX);
            let flen = le_u32(bytes, t + 8) as usize;
            if let Some(footer) = off.checked_add(flen).and_then(|end| bytes.get(off..end)) {
                let crc = crc32fast::hash(footer);
                bytes[t + 12..t + 16].copy_from_slice(&crc.to_le_bytes());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Forged edits anywhere (checksums recomputed), the file cut or not: every reading
        /// path returns an error or an answer, never a panic or a huge allocation.
        #[test]
        fn forged_files_never_panic(
            edits in prop::collection::vec((0.0f64..1.0, any::<u8>()), 1..12),
            cut in prop::option::of(0.0f64..1.0),
            forge in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.seg");
            write(&path, 1, chain::GENESIS, &small_bodies(), 100, &key(1));
            let mut bytes = std::fs::read(&path).unwrap();
            for (at, value) in edits {
                let pos = ((bytes.len() as f64 * at) as usize).min(bytes.len() - 1);
                bytes[pos] = value;
            }
            if let Some(c) = cut {
                bytes.truncate((bytes.len() as f64 * c) as usize);
            }
            if forge {
                forge_checksums(&mut bytes);
            }
            std::fs::write(&path, &bytes).unwrap();
            if let Ok(r) = SegmentReader::open(&path) {
                let span = r.last_seq().saturating_sub(r.first_seq()).min(40);
                for seq in r.first_seq()..=r.first_seq() + span {
                    let _ = r.get(seq);
                    let _ = r.get_linked(seq);
                }
                let _ = r.records().take(100).count();
                let _ = r.verify(&key(1).verifying_key(), &chain::GENESIS);
            }
        }
    }
}
