//! Sealed index tables: the postings of a sealed segment's records (which records name a job,
//! a session, an operator, a station, a time), sorted, compressed and signed, beside the
//! segment file (issue 18, design §2.3).
//!
//! Every key of a table ends with a record's sequence number (`prefix ‖ seq u64 BE`); a query
//! asks for one prefix (everything of a job, a session …) or for a range within one tag (a
//! time window). A bloom filter over the prefixes says which tables can hold a prefix at all,
//! so that a query reads a block only from the tables that can answer; the footer keeps, per
//! tag (the key's bytes up to its first 0), the smallest and largest key, so that a range query
//! skips the tables outside its range.
//!
//! # Format
//! Integers are little-endian; `crc32` is CRC-32/ISO-HDLC (`crc32fast`).
//!
//! | part    | contents |
//! |---------|----------|
//! | header  | `"HLTAB1"` ‖ first seq u64 ‖ last seq u64 ‖ crc32 of the 22 bytes before |
//! | block × n | zstd frame of entries `varint shared ‖ varint rest ‖ rest ‖ varint value len ‖ value` (the key shares `shared` bytes with the entry before; 0 for a block's first) ‖ crc32 of the frame |
//! | footer  | key count u64 ‖ block count u32 ‖ per block (offset u64 ‖ frame length u32 ‖ raw length u32 ‖ first key len u16 ‖ first key) ‖ tag count u16 ‖ per tag (len u8 ‖ tag ‖ min key len u16 ‖ min ‖ max key len u16 ‖ max ‖ 1 if its prefixes are in the bloom filter, else 0) ‖ bloom hashes u8 ‖ bloom bytes u32 ‖ bloom ‖ SHA-256 of header and blocks ‖ Ed25519 signature over [`seal_message`] |
//! | trailer | footer offset u64 ‖ footer length u32 ‖ crc32 of the footer ‖ `"HLTAB1"` |
//!
//! The signature covers the header and blocks (through their digest) and the footer before it,
//! so any changed byte is found by [`TableReader::verify`]; opening checks the structure and the
//! footer's checksum, and every length read from the file is checked before it is used.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The file's first (and last) six bytes.
pub const MAGIC: &[u8; 6] = b"HLTAB1";
/// The domain tag of the signed message.
pub const SEAL_DOMAIN: &[u8] = b"hallctl-table-v1";
/// The raw size after which a block is closed.
pub const BLOCK_BYTES: usize = 16 << 10;
/// The largest raw block a reader decompresses.
const MAX_BLOCK_RAW: usize = 8 << 20;
const HEADER_LEN: u64 = 26;
const TRAILER_LEN: u64 = 22;
const SIG_LEN: usize = 64;
/// Bloom filter bits per distinct prefix (about 1 % false positives with 7 hashes).
const BLOOM_BITS_PER_PREFIX: usize = 10;
const BLOOM_HASHES: u8 = 7;
/// The tag count that marks a table of whole keys.
const WHOLE_KEYS: u16 = u16::MAX;

/// What can be wrong with a table file. Every message names the file and the part.
#[derive(Debug, Error)]
pub enum TableError {
    /// Reading or writing the file failed.
    #[error("{}: {source}", .file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a table, cut short, or a part of it is damaged.
    #[error("{}: {what}", .file.display())]
    Damaged {
        /// The file.
        file: PathBuf,
        /// What is wrong, naming the part and its offset.
        what: String,
    },
    /// Keys were not given in strictly increasing order, or one does not end with a seq.
    #[error("{}: {what}", .file.display())]
    BadInput {
        /// The file being written.
        file: PathBuf,
        /// What is wrong.
        what: String,
    },
}

/// The signed message: the domain tag, first and last seq (u64 BE), the digest of header and
/// blocks, and the SHA-256 of the footer before the signature.
pub fn seal_message(first: u64, last: u64, digest: &[u8; 32], footer: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SEAL_DOMAIN.len() + 16 + 64);
    m.extend_from_slice(SEAL_DOMAIN);
    m.extend_from_slice(&first.to_be_bytes());
    m.extend_from_slice(&last.to_be_bytes());
    m.extend_from_slice(digest);
    m.extend_from_slice(&Sha256::digest(footer));
    m
}

/// The prefix a key is found by: the key without its trailing seq.
pub fn prefix_of(key: &[u8]) -> &[u8] {
    &key[..key.len().saturating_sub(8)]
}

/// The tag of a key: its bytes up to (not including) the first 0.
pub fn tag_of(key: &[u8]) -> &[u8] {
    key.iter().position(|b| *b == 0).map_or(key, |i| &key[..i])
}

fn io_err(file: &Path) -> impl FnOnce(std::io::Error) -> TableError + '_ {
    move |source| TableError::Io {
        file: file.to_path_buf(),
        source,
    }
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A cursor over bytes read from the file; every read is bounds-checked.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let byte = self.u8()?;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn bytes16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    fn done(&self) -> bool {
        self.at == self.b.len()
    }
}

/// FNV-1a, 64 bits: a stable hash (the file outlives any compiler's `Hasher`).
fn fnv1a(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A prefix to look for in many tables: its tag and its hash, computed once.
#[derive(Debug, Clone)]
pub struct Probe<'a> {
    tag: &'a [u8],
    hash: u64,
}

impl<'a> Probe<'a> {
    /// The probe of `prefix`.
    pub fn new(prefix: &'a [u8]) -> Probe<'a> {
        Probe {
            tag: tag_of(prefix),
            hash: fnv1a(prefix),
        }
    }
}

fn crc(b: &[u8]) -> u32 {
    crc32fast::hash(b)
}

/// Writes one table: keys in strictly increasing order ([`TableWriter::push`]), then
/// [`TableWriter::finish`] signs it, fsyncs it and renames it into place.
pub struct TableWriter {
    path: PathBuf,
    tmp: PathBuf,
    first_seq: u64,
    last_seq: u64,
    /// Bytes not yet written to the temporary file (written in [`SPILL_BYTES`] pieces, so that
    /// a large table, a merged month, is never whole in memory).
    out: Vec<u8>,
    /// The temporary file, once the first piece is written.
    file: Option<File>,
    /// Bytes already in the temporary file.
    written: u64,
    /// SHA-256 of the header and the blocks, as they are appended.
    sha: Sha256,
    finished: bool,
    raw: Vec<u8>,
    block_first: Option<Vec<u8>>,
    last_key: Option<Vec<u8>>,
    blocks: Vec<(u64, u32, u32, Vec<u8>)>,
    tags: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    prefixes: Vec<u64>,
    count: u64,
    /// Tags whose keys are only ever read by ranges: their prefixes stay out of the bloom filter.
    range_only: Vec<Vec<u8>>,
    /// A table of whole keys (states): the bloom filter holds each key, there are no tags.
    whole_keys: bool,
}

/// zstd's contexts, one pair per thread: making one costs more than decoding a small block (a
/// profile of the load showed `ZSTD_createDCtx` above the decoding itself).
struct Zstd {
    c: zstd::bulk::Compressor<'static>,
    d: zstd::bulk::Decompressor<'static>,
}

impl Zstd {
    fn compress(&mut self, raw: &[u8]) -> std::io::Result<Vec<u8>> {
        self.c.compress(raw)
    }
    fn decompress(&mut self, frame: &[u8], raw_len: usize) -> std::io::Result<Vec<u8>> {
        self.d.decompress(frame, raw_len)
    }
}

/// Runs `f` with this thread's zstd contexts (level 3), making them on first use.
fn zstd_block<T>(f: impl FnOnce(&mut Zstd) -> std::io::Result<T>) -> std::io::Result<T> {
    thread_local! {
        static ZSTD: std::cell::RefCell<Option<Zstd>> = const { std::cell::RefCell::new(None) };
    }
    ZSTD.with(|z| {
        let mut z = z.borrow_mut();
        if z.is_none() {
            *z = Some(Zstd {
                c: zstd::bulk::Compressor::new(3)?,
                d: zstd::bulk::Decompressor::new()?,
            });
        }
        f(z.as_mut().expect("made above"))
    })
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("path", &self.path)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

/// A table writer keeps at most this many bytes before it writes them to its temporary file.
const SPILL_BYTES: usize = if cfg!(test) { 16 << 10 } else { 8 << 20 };

impl Drop for TableWriter {
    fn drop(&mut self) {
        if !self.finished && self.file.is_some() {
            // Half-written work: never left where it could be taken for a table.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl TableWriter {
    /// Starts the table of the segment holding records `first_seq..=last_seq`.
    pub fn new(path: &Path, first_seq: u64, last_seq: u64) -> TableWriter {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let mut header = Vec::with_capacity(64);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&first_seq.to_le_bytes());
        header.extend_from_slice(&last_seq.to_le_bytes());
        let c = crc(&header);
        header.extend_from_slice(&c.to_le_bytes());
        let mut sha = Sha256::new();
        sha.update(&header);
        TableWriter {
            path: path.to_path_buf(),
            tmp: PathBuf::from(tmp),
            first_seq,
            last_seq,
            out: header,
            file: None,
            written: 0,
            sha,
            finished: false,
            raw: Vec::new(),
            block_first: None,
            last_key: None,
            blocks: Vec::new(),
            tags: Vec::new(),
            prefixes: Vec::new(),
            count: 0,
            range_only: Vec::new(),
            whole_keys: false,
        }
    }

    /// Appends bytes of the header or the blocks (hashed) or of the footer (not).
    fn emit(&mut self, bytes: &[u8], hashed: bool) -> Result<(), TableError> {
        if hashed {
            self.sha.update(bytes);
        }
        self.out.extend_from_slice(bytes);
        if self.out.len() >= SPILL_BYTES {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes what is buffered to the temporary file (creating it the first time).
    fn spill(&mut self) -> Result<(), TableError> {
        let file = match &mut self.file {
            Some(f) => f,
            None => self
                .file
                .insert(File::create(&self.tmp).map_err(io_err(&self.tmp))?),
        };
        file.write_all(&self.out).map_err(io_err(&self.tmp))?;
        self.written += self.out.len() as u64;
        self.out.clear();
        Ok(())
    }

    /// A table of whole keys (item and session states): any key of 1 to 65535 bytes, found by
    /// [`TableReader::get`]; its bloom filter holds each key.
    pub fn whole_keys(mut self) -> TableWriter {
        self.whole_keys = true;
        self
    }

    /// Keys of these tags are read by ranges only (a time index: one prefix per key): their
    /// prefixes stay out of the bloom filter, and a prefix query of such a tag reads the table.
    pub fn range_only(mut self, tags: &[Vec<u8>]) -> TableWriter {
        self.range_only = tags.to_vec();
        self
    }

    /// Adds a key (which must be greater than the one before and end with a seq) and its value.
    ///
    /// # Errors
    /// [`TableError::BadInput`] for a key out of order, too short or too long.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Result<(), TableError> {
        let bad = |what: String| TableError::BadInput {
            file: self.path.clone(),
            what,
        };
        let min = if self.whole_keys { 1 } else { 9 };
        if key.len() < min || key.len() > usize::from(u16::MAX) {
            return Err(bad(format!(
                "an index key of {} bytes (a key is a prefix and a seq, at most 65535 bytes)",
                key.len()
            )));
        }
        if self.last_key.as_deref().is_some_and(|l| l >= key) {
            return Err(bad("index keys out of order".into()));
        }
        let shared = match (&self.block_first, &self.last_key) {
            (Some(_), Some(l)) => l.iter().zip(key).take_while(|(a, b)| a == b).count(),
            _ => 0,
        };
        if self.block_first.is_none() {
            self.block_first = Some(key.to_vec());
        }
        push_varint(&mut self.raw, shared as u64);
        push_varint(&mut self.raw, (key.len() - shared) as u64);
        self.raw.extend_from_slice(&key[shared..]);
        push_varint(&mut self.raw, value.len() as u64);
        self.raw.extend_from_slice(value);
        let tag = tag_of(key);
        if self.whole_keys {
            self.prefixes.push(fnv1a(key));
        } else if let Some((t, _, max)) = self.tags.last_mut()
            && t.as_slice() == tag
        {
            *max = key.to_vec();
        } else {
            self.tags.push((tag.to_vec(), key.to_vec(), key.to_vec()));
        }
        if !self.whole_keys && !self.range_only.iter().any(|t| t.as_slice() == tag) {
            let p = fnv1a(prefix_of(key));
            if self.prefixes.last() != Some(&p) {
                self.prefixes.push(p);
            }
        }
        self.last_key = Some(key.to_vec());
        self.count += 1;
        if self.raw.len() >= BLOCK_BYTES {
            self.close_block()?;
        }
        Ok(())
    }

    fn close_block(&mut self) -> Result<(), TableError> {
        let Some(first) = self.block_first.take() else {
            return Ok(());
        };
        let frame = zstd_block(|z| z.compress(&self.raw)).map_err(io_err(&self.path))?;
        let offset = self.written + self.out.len() as u64;
        self.emit(&frame, true)?;
        self.emit(&crc(&frame).to_le_bytes(), true)?;
        let frame_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let raw_len = u32::try_from(self.raw.len()).unwrap_or(u32::MAX);
        self.blocks.push((offset, frame_len, raw_len, first));
        self.raw.clear();
        Ok(())
    }

    /// Writes the footer, signs, fsyncs the file and renames it into place (the caller fsyncs
    /// the directory). Returns the file's length.
    ///
    /// # Errors
    /// Writing, fsyncing or renaming failed (the temporary file is removed).
    pub fn finish(mut self, key: &SigningKey) -> Result<u64, TableError> {
        self.close_block()?;
        let digest: [u8; 32] = self.sha.clone().finalize().into();
        let mut f = Vec::new();
        f.extend_from_slice(&self.count.to_le_bytes());
        f.extend_from_slice(&(self.blocks.len() as u32).to_le_bytes());
        for (offset, frame_len, raw_len, first) in &self.blocks {
            f.extend_from_slice(&offset.to_le_bytes());
            f.extend_from_slice(&frame_len.to_le_bytes());
            f.extend_from_slice(&raw_len.to_le_bytes());
            f.extend_from_slice(&(first.len() as u16).to_le_bytes());
            f.extend_from_slice(first);
        }
        // A whole-key table says so with a tag count of 0xFFFF (and lists no tags).
        let ntags = if self.whole_keys {
            WHOLE_KEYS
        } else {
            self.tags.len().min(usize::from(WHOLE_KEYS - 1)) as u16
        };
        f.extend_from_slice(&ntags.to_le_bytes());
        for (tag, min, max) in self.tags.iter().take(usize::from(ntags % WHOLE_KEYS)) {
            f.push(tag.len().min(255) as u8);
            f.extend_from_slice(&tag[..tag.len().min(255)]);
            f.extend_from_slice(&(min.len() as u16).to_le_bytes());
            f.extend_from_slice(min);
            f.extend_from_slice(&(max.len() as u16).to_le_bytes());
            f.extend_from_slice(max);
            f.push(u8::from(!self.range_only.contains(tag)));
        }
        self.prefixes.sort_unstable();
        self.prefixes.dedup();
        let bits = (self.prefixes.len() * BLOOM_BITS_PER_PREFIX).max(64) as u64;
        let mut bloom = vec![0u8; bits.div_ceil(8) as usize];
        let nbits = bloom.len() as u64 * 8;
        for p in &self.prefixes {
            for bit in bloom_bits_of_hash(*p, BLOOM_HASHES, nbits) {
                bloom[(bit / 8) as usize] |= 1 << (bit % 8);
            }
        }
        f.push(BLOOM_HASHES);
        f.extend_from_slice(&(bloom.len() as u32).to_le_bytes());
        f.extend_from_slice(&bloom);
        f.extend_from_slice(&digest);
        let sig = key.sign(&seal_message(self.first_seq, self.last_seq, &digest, &f));
        f.extend_from_slice(&sig.to_bytes());
        let footer_offset = self.written + self.out.len() as u64;
        let footer_crc = crc(&f);
        let footer_len = f.len() as u32;
        let mut tail = f;
        tail.extend_from_slice(&footer_offset.to_le_bytes());
        tail.extend_from_slice(&footer_len.to_le_bytes());
        tail.extend_from_slice(&footer_crc.to_le_bytes());
        tail.extend_from_slice(MAGIC);
        let len = footer_offset + tail.len() as u64;
        let done = (|| {
            self.emit(&tail, false)?;
            self.spill()?;
            let file = self
                .file
                .take()
                .ok_or_else(|| io_err(&self.tmp)(std::io::ErrorKind::NotFound.into()))?;
            file.sync_all().map_err(io_err(&self.tmp))?;
            std::fs::rename(&self.tmp, &self.path).map_err(io_err(&self.path))
        })();
        if let Err(e) = done {
            let _ = std::fs::remove_file(&self.tmp);
            self.finished = true;
            return Err(e);
        }
        self.finished = true;
        Ok(len)
    }
}

/// The bloom bits of a prefix whose FNV-1a hash is `h1` (double hashing: splitmix64 of `h1`
/// is the second hash).
fn bloom_bits_of_hash(h1: u64, hashes: u8, bits: u64) -> impl Iterator<Item = u64> {
    let mut z = h1.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    let h2 = (z ^ (z >> 31)) | 1;
    (0..u64::from(hashes)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % bits.max(1))
}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// One block as the footer lists it.
#[derive(Debug, Clone)]
struct BlockMeta {
    offset: u64,
    frame_len: u32,
    raw_len: u32,
    first: Vec<u8>,
}

/// The keys of one tag in a table.
#[derive(Debug, Clone)]
struct TagRange {
    tag: Vec<u8>,
    min: Vec<u8>,
    max: Vec<u8>,
    /// Whether its prefixes are in the bloom filter.
    bloomed: bool,
}

/// An open table: its footer (block index, tag ranges, bloom filter) in memory, blocks read on
/// demand.
#[derive(Debug)]
pub struct TableReader {
    path: PathBuf,
    file: File,
    first_seq: u64,
    last_seq: u64,
    count: u64,
    blocks: Vec<BlockMeta>,
    tags: Vec<TagRange>,
    whole_keys: bool,
    bloom_hashes: u8,
    bloom: Vec<u8>,
    digest: [u8; 32],
    /// The footer without its signature (what the signature covers), and the signature.
    signed_footer: Vec<u8>,
    signature: [u8; SIG_LEN],
    footer_offset: u64,
}

impl TableReader {
    /// Opens a table, checking its header, trailer and footer.
    ///
    /// # Errors
    /// The file cannot be read, is not a table, is cut short or its structure is damaged.
    pub fn open(path: &Path) -> Result<TableReader, TableError> {
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let damaged = |what: String| TableError::Damaged {
            file: path.to_path_buf(),
            what,
        };
        let read = |len: u64, at: u64| -> Result<Vec<u8>, TableError> {
            let mut b = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
            file.read_exact_at(&mut b, at).map_err(io_err(path))?;
            Ok(b)
        };
        if len < HEADER_LEN + TRAILER_LEN {
            return Err(damaged(format!(
                "cut short ({len} bytes): not a whole index table"
            )));
        }
        let h = read(HEADER_LEN, 0)?;
        if &h[..6] != MAGIC {
            return Err(damaged(
                "not a ledger index table (it does not start with \"HLTAB1\")".into(),
            ));
        }
        if crc(&h[..22]) != u32::from_le_bytes([h[22], h[23], h[24], h[25]]) {
            return Err(damaged(
                "header (offset 0): its checksum does not match".into(),
            ));
        }
        let mut hc = Cursor {
            b: &h[6..22],
            at: 0,
        };
        let (first_seq, last_seq) = (hc.u64().unwrap_or(0), hc.u64().unwrap_or(0));
        let t = read(TRAILER_LEN, len - TRAILER_LEN)?;
        if &t[16..22] != MAGIC {
            return Err(damaged(format!(
                "trailer (offset {}): cut short or damaged",
                len - TRAILER_LEN
            )));
        }
        let mut tc = Cursor { b: &t, at: 0 };
        let footer_offset = tc.u64().unwrap_or(0);
        let footer_len = u64::from(tc.u32().unwrap_or(0));
        let footer_crc = tc.u32().unwrap_or(0);
        if footer_offset < HEADER_LEN
            || footer_offset
                .checked_add(footer_len)
                .is_none_or(|e| e != len - TRAILER_LEN)
        {
            return Err(damaged(format!(
                "trailer (offset {}): the footer's place is not in the file",
                len - TRAILER_LEN
            )));
        }
        let footer = read(footer_len, footer_offset)?;
        if crc(&footer) != footer_crc {
            return Err(damaged(format!(
                "footer (offset {footer_offset}): its checksum does not match"
            )));
        }
        let bad_footer = || damaged(format!("footer (offset {footer_offset}): malformed"));
        let mut c = Cursor { b: &footer, at: 0 };
        let count = c.u64().ok_or_else(bad_footer)?;
        let nblocks = c.u32().ok_or_else(bad_footer)?;
        let mut blocks = Vec::new();
        for _ in 0..nblocks {
            let offset = c.u64().ok_or_else(bad_footer)?;
            let frame_len = c.u32().ok_or_else(bad_footer)?;
            let raw_len = c.u32().ok_or_else(bad_footer)?;
            let first = c.bytes16().ok_or_else(bad_footer)?.to_vec();
            let end = offset
                .checked_add(u64::from(frame_len))
                .and_then(|e| e.checked_add(4));
            if offset < HEADER_LEN
                || end.is_none_or(|e| e > footer_offset)
                || raw_len as usize > MAX_BLOCK_RAW
            {
                return Err(bad_footer());
            }
            blocks.push(BlockMeta {
                offset,
                frame_len,
                raw_len,
                first,
            });
        }
        let ntags = c.u16().ok_or_else(bad_footer)?;
        let whole_keys = ntags == WHOLE_KEYS;
        let mut tags = Vec::new();
        for _ in 0..ntags % WHOLE_KEYS {
            let n = c.u8().ok_or_else(bad_footer)?;
            let tag = c.take(usize::from(n)).ok_or_else(bad_footer)?.to_vec();
            let min = c.bytes16().ok_or_else(bad_footer)?.to_vec();
            let max = c.bytes16().ok_or_else(bad_footer)?.to_vec();
            let bloomed = c.u8().ok_or_else(bad_footer)? == 1;
            tags.push(TagRange {
                tag,
                min,
                max,
                bloomed,
            });
        }
        let bloom_hashes = c.u8().ok_or_else(bad_footer)?;
        let nbloom = c.u32().ok_or_else(bad_footer)?;
        let bloom = c.take(nbloom as usize).ok_or_else(bad_footer)?.to_vec();
        let digest: [u8; 32] = c
            .take(32)
            .ok_or_else(bad_footer)?
            .try_into()
            .map_err(|_| bad_footer())?;
        let signed_len = c.at;
        let signature: [u8; SIG_LEN] = c
            .take(SIG_LEN)
            .ok_or_else(bad_footer)?
            .try_into()
            .map_err(|_| bad_footer())?;
        if !c.done() || bloom.is_empty() {
            return Err(bad_footer());
        }
        Ok(TableReader {
            path: path.to_path_buf(),
            file,
            first_seq,
            last_seq,
            count,
            blocks,
            tags,
            whole_keys,
            bloom_hashes,
            bloom,
            digest,
            signed_footer: footer[..signed_len].to_vec(),
            signature,
            footer_offset,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The records whose postings it holds.
    pub fn seqs(&self) -> (u64, u64) {
        (self.first_seq, self.last_seq)
    }

    /// Keys in the table.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Bytes held in memory for this table (footer, bloom filter).
    pub fn footprint(&self) -> usize {
        self.signed_footer.len() + self.bloom.len() + self.blocks.len() * 48
    }

    /// Whether the table may hold a key with this prefix (false: it certainly does not).
    pub fn may_hold_prefix(&self, prefix: &[u8]) -> bool {
        self.may_hold(&Probe::new(prefix))
    }

    /// As [`TableReader::may_hold_prefix`], with the prefix hashed once for many tables.
    pub fn may_hold(&self, probe: &Probe<'_>) -> bool {
        if !self.whole_keys {
            match self.tags.iter().find(|t| t.tag == probe.tag) {
                None => return false,
                Some(t) if !t.bloomed => return true,
                Some(_) => {}
            }
        }
        self.bloom_has_hash(probe.hash)
    }

    /// The value of `key` in a table of whole keys, if it holds it.
    ///
    /// # Errors
    /// Its block cannot be read or is damaged.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, TableError> {
        if !self.bloom_has(key) {
            return Ok(None);
        }
        // The one block that can hold it: the last whose first key ≤ key. Its entries are
        // scanned in place (no entry is copied but the one found).
        let Some(i) = self
            .blocks
            .partition_point(|b| b.first.as_slice() <= key)
            .checked_sub(1)
        else {
            return Ok(None);
        };
        let raw = self.raw_block(i)?;
        let mut found = None;
        self.entries(i, &raw, |k, v| match k.cmp(key) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Equal => {
                found = Some(v.to_vec());
                false
            }
            std::cmp::Ordering::Greater => false,
        })?;
        Ok(found)
    }

    fn bloom_has(&self, k: &[u8]) -> bool {
        self.bloom_has_hash(fnv1a(k))
    }

    fn bloom_has_hash(&self, h: u64) -> bool {
        let bits = self.bloom.len() as u64 * 8;
        bloom_bits_of_hash(h, self.bloom_hashes, bits)
            .all(|b| self.bloom[(b / 8) as usize] & (1 << (b % 8)) != 0)
    }

    /// Whether keys in `[from, to)` may be here, by the tag ranges (`from` and `to` of one tag).
    fn may_hold_range(&self, from: &[u8], to: &[u8]) -> bool {
        self.whole_keys
            || self
                .tags
                .iter()
                .any(|t| t.max.as_slice() >= from && t.min.as_slice() < to)
    }

    fn damaged(&self, what: String) -> TableError {
        TableError::Damaged {
            file: self.path.clone(),
            what,
        }
    }

    /// Reads and decodes block `i`: its entries in order.
    fn block(&self, i: usize) -> Result<Vec<Entry>, TableError> {
        let raw = self.raw_block(i)?;
        let mut out: Vec<Entry> = Vec::new();
        self.entries(i, &raw, |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            true
        })?;
        Ok(out)
    }

    /// Reads block `i`, checks its checksum and decompresses it.
    fn raw_block(&self, i: usize) -> Result<Vec<u8>, TableError> {
        let b = &self.blocks[i];
        let mut buf = vec![0u8; b.frame_len as usize + 4];
        self.file
            .read_exact_at(&mut buf, b.offset)
            .map_err(io_err(&self.path))?;
        let (frame, c) = buf.split_at(b.frame_len as usize);
        if crc(frame).to_le_bytes() != c {
            return Err(self.damaged(format!(
                "block {i} (offset {}): its checksum does not match",
                b.offset
            )));
        }
        zstd_block(|z| z.decompress(frame, b.raw_len as usize))
            .map_err(|e| self.damaged(format!("block {i} (offset {}): {e}", b.offset)))
    }

    /// Calls `f(key, value)` with the entries of block `i` (decompressed: `raw`) in order,
    /// until it returns false.
    fn entries(
        &self,
        i: usize,
        raw: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), TableError> {
        let bad = || {
            self.damaged(format!(
                "block {i} (offset {}): malformed entries",
                self.blocks[i].offset
            ))
        };
        let mut cur = Cursor { b: raw, at: 0 };
        let mut key: Vec<u8> = Vec::new();
        let mut first = true;
        while !cur.done() {
            let shared = cur.varint().ok_or_else(bad)? as usize;
            let rest = cur.varint().ok_or_else(bad)? as usize;
            if shared > key.len() || (first && shared != 0) {
                return Err(bad());
            }
            first = false;
            key.truncate(shared);
            key.extend_from_slice(cur.take(rest).ok_or_else(bad)?);
            let vlen = cur.varint().ok_or_else(bad)? as usize;
            let value = cur.take(vlen).ok_or_else(bad)?;
            if !f(&key, value) {
                break;
            }
        }
        Ok(())
    }

    /// The smallest and largest key of `tag` in the table, if it holds any.
    pub fn tag_bounds(&self, tag: &[u8]) -> Option<(&[u8], &[u8])> {
        self.tags
            .iter()
            .find(|t| t.tag == tag)
            .map(|t| (t.min.as_slice(), t.max.as_slice()))
    }

    /// A cursor over the keys in `[from, to)`, in key order or, with `reverse`, from the last
    /// down. Blocks are read as the cursor reaches them.
    pub fn cursor(&self, from: &[u8], to: &[u8], reverse: bool) -> TableCursor<'_> {
        let ids = if to <= from || !self.may_hold_range(from, to) {
            0..0
        } else {
            // From the last block whose first key ≤ from, to the last whose first key < to.
            let start = self
                .blocks
                .partition_point(|b| b.first.as_slice() <= from)
                .saturating_sub(1);
            start..self.blocks.partition_point(|b| b.first.as_slice() < to)
        };
        TableCursor {
            table: self,
            from: from.to_vec(),
            to: to.to_vec(),
            bounded: true,
            reverse,
            ids,
            buf: std::collections::VecDeque::new(),
        }
    }

    /// A cursor over every entry, in key order.
    pub fn cursor_all(&self) -> TableCursor<'_> {
        TableCursor {
            table: self,
            from: Vec::new(),
            to: Vec::new(),
            bounded: false,
            reverse: false,
            ids: 0..self.blocks.len(),
            buf: std::collections::VecDeque::new(),
        }
    }

    /// Calls `f` with every key (and value) in `[from, to)`, in key order or, with `reverse`,
    /// from the last down, until it returns false. Returns false when `f` stopped.
    ///
    /// # Errors
    /// A block cannot be read or is damaged.
    pub fn for_each_in(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<bool, TableError> {
        let mut c = self.cursor(from, to, reverse);
        while let Some((k, v)) = c.next_entry()? {
            if !f(&k, &v) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Checks the whole file: every block's checksum and entries, the key order and count, the
    /// digest and the signature with `key`.
    ///
    /// # Errors
    /// [`TableError::Damaged`] naming the part.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), TableError> {
        let mut h = Sha256::new();
        let mut at = 0u64;
        while at < self.footer_offset {
            let n = (self.footer_offset - at).min(1 << 20);
            let mut buf = vec![0u8; n as usize];
            self.file
                .read_exact_at(&mut buf, at)
                .map_err(io_err(&self.path))?;
            h.update(&buf);
            at += n;
        }
        let digest: [u8; 32] = h.finalize().into();
        if digest != self.digest {
            return Err(self.damaged(
                "header or blocks: their digest is not the one the footer records".into(),
            ));
        }
        let msg = seal_message(
            self.first_seq,
            self.last_seq,
            &self.digest,
            &self.signed_footer,
        );
        key.verify(&msg, &Signature::from_bytes(&self.signature))
            .map_err(|_| {
                self.damaged("footer: its signature does not verify with the ledger's key".into())
            })?;
        let mut n = 0u64;
        let mut last: Option<Vec<u8>> = None;
        for i in 0..self.blocks.len() {
            for (k, _) in self.block(i)? {
                if last.as_ref().is_some_and(|l| *l >= k) {
                    return Err(self.damaged(format!("block {i}: keys out of order")));
                }
                n += 1;
                last = Some(k);
            }
        }
        if n != self.count {
            return Err(self.damaged(format!(
                "footer: it counts {} keys, the blocks hold {n}",
                self.count
            )));
        }
        Ok(())
    }
}

/// A cursor over a range of a table ([`TableReader::cursor`]).
#[derive(Debug)]
pub struct TableCursor<'a> {
    table: &'a TableReader,
    from: Vec<u8>,
    to: Vec<u8>,
    /// Whether `from` and `to` apply (not for [`TableReader::cursor_all`]).
    bounded: bool,
    reverse: bool,
    /// The blocks not read yet.
    ids: std::ops::Range<usize>,
    /// Entries of the block being read, in the cursor's order, within the range.
    buf: std::collections::VecDeque<Entry>,
}

impl TableCursor<'_> {
    /// The next key and value, or `None` at the end of the range.
    ///
    /// # Errors
    /// A block cannot be read or is damaged.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TableError> {
        loop {
            if let Some(e) = self.buf.pop_front() {
                return Ok(Some(e));
            }
            let next = if self.reverse {
                self.ids.next_back()
            } else {
                self.ids.next()
            };
            let Some(i) = next else {
                return Ok(None);
            };
            let (from, to) = (self.from.as_slice(), self.to.as_slice());
            let mut entries: Vec<Entry> = self
                .table
                .block(i)?
                .into_iter()
                .filter(|(k, _)| !self.bounded || (k.as_slice() >= from && k.as_slice() < to))
                .collect();
            if self.reverse {
                entries.reverse();
            }
            self.buf = entries.into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(tag: &str, id: &str, seq: u64) -> Vec<u8> {
        let mut v = tag.as_bytes().to_vec();
        v.push(0);
        v.extend_from_slice(id.as_bytes());
        v.push(0);
        v.extend_from_slice(&seq.to_be_bytes());
        v
    }

    fn prefix(tag: &str, id: &str) -> Vec<u8> {
        let mut v = tag.as_bytes().to_vec();
        v.push(0);
        v.extend_from_slice(id.as_bytes());
        v.push(0);
        v
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    /// Keys of many prefixes, sorted, with a value on some.
    fn sample() -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut v = Vec::new();
        for seq in 1..=20_000u64 {
            v.push((k("jb", &format!("{:06}", seq / 3), seq), Vec::new()));
            v.push((k("op", &format!("OP{}", seq % 40), seq), Vec::new()));
            v.push((k("so", &format!("S{}", seq / 50), seq), vec![seq as u8; 3]));
            v.push((k("tm", &format!("{:012}", seq * 1000), seq), Vec::new()));
        }
        v.sort();
        v
    }

    fn write(dir: &Path, entries: &[(Vec<u8>, Vec<u8>)]) -> PathBuf {
        let path = dir.join("1.idx");
        let mut w = TableWriter::new(&path, 1, 20_000).range_only(&[b"tm".to_vec()]);
        for (k, v) in entries {
            w.push(k, v).expect("push");
        }
        w.finish(&key()).expect("finish");
        path
    }

    fn collect(r: &TableReader, from: &[u8], to: &[u8], reverse: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        r.for_each_in(from, to, reverse, |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            true
        })
        .expect("read");
        out
    }

    fn after(p: &[u8]) -> Vec<u8> {
        let mut e = p.to_vec();
        e.push(0xff);
        e
    }

    /// A table larger than the writer's buffer is written in pieces (never whole in memory),
    /// reads back the same and verifies; a writer dropped unfinished leaves no file behind.
    #[test]
    fn a_large_table_is_written_in_pieces_and_an_unfinished_one_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entries = sample();
        let path = write(dir.path(), &entries);
        let len = std::fs::metadata(&path).expect("table").len();
        assert!(len > 4 * SPILL_BYTES as u64, "{len} bytes: several pieces");
        let r = TableReader::open(&path).expect("open");
        r.verify(&key().verifying_key()).expect("sound");
        assert_eq!(collect(&r, &[], &[0xff], false), entries);
        let other = dir.path().join("2.idx");
        let mut w = TableWriter::new(&other, 1, 20_000);
        for (k, v) in &entries {
            w.push(k, v).expect("push");
        }
        let tmp = dir.path().join("2.idx.tmp");
        assert!(tmp.exists(), "pieces were written");
        drop(w);
        assert!(!tmp.exists() && !other.exists(), "nothing left behind");
    }

    #[test]
    fn every_prefix_and_range_reads_back_exactly_what_was_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entries = sample();
        let r = TableReader::open(&write(dir.path(), &entries)).expect("open");
        assert_eq!(r.count(), entries.len() as u64);
        r.verify(&key().verifying_key()).expect("sound");
        for p in [
            prefix("jb", "000007"),
            prefix("op", "OP3"),
            prefix("so", "S399"),
        ] {
            assert!(r.may_hold_prefix(&p));
            let want: Vec<_> = entries
                .iter()
                .filter(|(k, _)| k.starts_with(&p))
                .cloned()
                .collect();
            assert!(!want.is_empty());
            assert_eq!(collect(&r, &p, &after(&p), false), want);
            let mut rev = want.clone();
            rev.reverse();
            assert_eq!(collect(&r, &p, &after(&p), true), rev);
        }
        // A time range crossing many blocks.
        let (from, to) = (prefix("tm", "000000500000"), prefix("tm", "000009000000"));
        let want: Vec<_> = entries
            .iter()
            .filter(|(k, _)| k.as_slice() >= from.as_slice() && k.as_slice() < to.as_slice())
            .cloned()
            .collect();
        assert_eq!(want.len(), 8_500);
        assert_eq!(collect(&r, &from, &to, false), want);
        // Absent prefixes: mostly refused by the bloom filter, never found.
        let absent = (0..1000)
            .filter(|i| r.may_hold_prefix(&prefix("jb", &format!("X{i}"))))
            .count();
        assert!(absent < 50, "bloom false positives: {absent} of 1000");
        assert!(collect(&r, &prefix("jb", "X1"), &after(&prefix("jb", "X1")), false).is_empty());
        assert!(collect(&r, &prefix("zz", ""), &after(&prefix("zz", "")), false).is_empty());
        // A tag it does not hold: certainly not; a range-only tag: maybe (read by range).
        assert!(!r.may_hold_prefix(&prefix("zz", "1")));
        assert!(r.may_hold_prefix(&prefix("tm", "anything")));
    }

    #[test]
    fn a_table_of_whole_keys_answers_each_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("1.sta");
        let mut keys: Vec<Vec<u8>> = (0..5_000u32)
            .map(|i| format!("i/{:09}", i * 3).into_bytes())
            .chain((0..300u32).map(|i| format!("s/SP-{i}").into_bytes()))
            .collect();
        keys.sort();
        let mut w = TableWriter::new(&path, 1, 9).whole_keys();
        for k in &keys {
            w.push(k, &[k.as_slice(), b"=v"].concat()).expect("push");
        }
        w.finish(&key()).expect("finish");
        let r = TableReader::open(&path).expect("open");
        r.verify(&key().verifying_key()).expect("sound");
        for k in &keys {
            assert_eq!(r.get(k).expect("get"), Some([k.as_slice(), b"=v"].concat()));
        }
        let absent = (0..2_000u32)
            .filter(|i| {
                r.get(format!("i/{:09}", i * 3 + 1).as_bytes())
                    .expect("get")
                    .is_some()
            })
            .count();
        assert_eq!(absent, 0);
        assert_eq!(
            r.get(b"s/SP-").expect("get"),
            None,
            "a prefix of a key is not the key"
        );
    }

    #[test]
    fn keys_out_of_order_or_without_a_seq_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = TableWriter::new(&dir.path().join("t.idx"), 1, 2);
        w.push(&k("jb", "2", 5), b"").expect("first");
        let e = w.push(&k("jb", "1", 5), b"").expect_err("out of order");
        assert!(e.to_string().contains("out of order"), "{e}");
        let e = w.push(b"short", b"").expect_err("no seq");
        assert!(e.to_string().contains("5 bytes"), "{e}");
    }

    #[test]
    fn every_changed_byte_is_found_and_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entries: Vec<_> = sample().into_iter().take(3_000).collect();
        let path = write(dir.path(), &entries);
        let good = std::fs::read(&path).expect("read");
        let vk = key().verifying_key();
        // Every 97th byte, and the last 200 (footer and trailer).
        let positions: Vec<usize> = (0..good.len())
            .step_by(97)
            .chain(good.len().saturating_sub(200)..good.len())
            .collect();
        for at in positions {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).expect("write");
            let found = TableReader::open(&path).and_then(|r| r.verify(&vk));
            let e = found.expect_err(&format!("a changed byte at {at} is found"));
            assert!(e.to_string().contains("1.idx"), "names the file: {e}");
        }
        // Cut short anywhere.
        for len in [0, 10, good.len() / 2, good.len() - 1] {
            std::fs::write(&path, &good[..len]).expect("write");
            let e = TableReader::open(&path).expect_err("cut short");
            assert!(e.to_string().contains("1.idx"), "{e}");
        }
        // Signed by another key.
        std::fs::write(&path, &good).expect("write");
        let other = SigningKey::from_bytes(&[1; 32]).verifying_key();
        let e = TableReader::open(&path)
            .expect("open")
            .verify(&other)
            .expect_err("key");
        assert!(e.to_string().contains("signature"), "{e}");
    }
}
