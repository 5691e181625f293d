//! The store's own write-ahead log: the durability point of a commit is one `pwrite` and one
//! `fdatasync` of a WAL file, not a flush of sled (see the module doc of [`crate::store`],
//! *Durability*, for the invariant that ties it to sled).
//!
//! # Files
//! Two files, `wal-0` and `wal-1`, in the store's directory. Each grows by zero-filled steps of
//! [`GROW`] bytes up to its capacity (16 MiB by default) and never shrinks: once grown, a sync
//! overwrites blocks that are already allocated, so its `fdatasync` writes data only, no file
//! metadata. Frames are appended to the active file; when the next frame does not fit, writing
//! moves to offset 0 of the other file, whose frames sled must hold durably by then (a sled
//! flush is waited for if it does not yet).
//!
//! # Frames
//! `magic (u32) ‖ payload length (u32) ‖ crc32 (u32) ‖ number (u64) ‖ epoch (u64) ‖ payload`,
//! big-endian; the crc covers the length, number, epoch and payload. The payload is the commit's
//! sled operations with absolute values: `1 ‖ key length (u32) ‖ key ‖ value length (u32) ‖
//! value` for a put, `0 ‖ key length ‖ key` for a removal. Frame numbers increase by one per
//! commit. The epoch is raised at every open (and stored in sled before any frame of it is
//! written): a frame left over from an earlier open, behind the write position or in the other
//! file, has a smaller epoch, so it never continues a newer run.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The two files.
pub const NAMES: [&str; 2] = ["wal-0", "wal-1"];
/// Default capacity of each file.
pub const FILE_BYTES: u64 = 16 << 20;
/// A file grows by this many zero bytes at a time.
pub const GROW: u64 = 1 << 20;
const MAGIC: u32 = 0x4857_414C; // "HWAL"
/// magic, length, crc, number, epoch.
pub const HEADER: usize = 4 + 4 + 4 + 8 + 8;

/// One sled operation of a frame: a full key and its new value (`None`: removed).
pub type Op<'a> = (Vec<u8>, Option<&'a [u8]>);

/// A frame read back from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its number.
    pub number: u64,
    /// The open that wrote it.
    pub epoch: u64,
    /// Its operations (key, value; `None`: removed).
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

fn crc(len: u32, number: u64, epoch: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_be_bytes());
    h.update(&number.to_be_bytes());
    h.update(&epoch.to_be_bytes());
    h.update(payload);
    h.finalize()
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

/// Encodes one frame.
pub fn encode(number: u64, epoch: u64, ops: &[Op<'_>]) -> Vec<u8> {
    let size: usize = ops
        .iter()
        .map(|(k, v)| 9 + k.len() + v.map_or(0, <[u8]>::len))
        .sum();
    let mut out = Vec::with_capacity(HEADER + size);
    out.resize(HEADER, 0);
    for (k, v) in ops {
        out.push(u8::from(v.is_some()));
        put_len(&mut out, k.len());
        out.extend_from_slice(k);
        if let Some(v) = v {
            put_len(&mut out, v.len());
            out.extend_from_slice(v);
        }
    }
    let len = u32::try_from(out.len() - HEADER).unwrap_or(u32::MAX);
    let sum = crc(len, number, epoch, &out[HEADER..]);
    out[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    out[4..8].copy_from_slice(&len.to_be_bytes());
    out[8..12].copy_from_slice(&sum.to_be_bytes());
    out[12..20].copy_from_slice(&number.to_be_bytes());
    out[20..28].copy_from_slice(&epoch.to_be_bytes());
    out
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The frame at `at` in `buf` and where the next one starts; `None` when there is no whole,
/// intact frame there (zeros, a torn or damaged frame, the end).
pub fn decode_at(buf: &[u8], at: usize) -> Option<(Frame, usize)> {
    if u32_at(buf, at)? != MAGIC {
        return None;
    }
    let len = u32_at(buf, at + 4)?;
    let sum = u32_at(buf, at + 8)?;
    let number = u64_at(buf, at + 12)?;
    let epoch = u64_at(buf, at + 20)?;
    let end = (at + HEADER).checked_add(len as usize)?;
    let payload = buf.get(at + HEADER..end)?;
    if crc(len, number, epoch, payload) != sum {
        return None;
    }
    let mut ops = Vec::new();
    let mut p = 0;
    while p < payload.len() {
        let put = *payload.get(p)?;
        let klen = u32_at(payload, p + 1)? as usize;
        let key = payload.get(p + 5..(p + 5).checked_add(klen)?)?.to_vec();
        p += 5 + klen;
        let value = match put {
            0 => None,
            1 => {
                let vlen = u32_at(payload, p)? as usize;
                let v = payload.get(p + 4..(p + 4).checked_add(vlen)?)?.to_vec();
                p += 4 + vlen;
                Some(v)
            }
            _ => return None,
        };
        ops.push((key, value));
    }
    Some((Frame { number, epoch, ops }, end))
}

/// Every intact frame of `buf` read from its start, up to the first that is not.
pub fn scan(buf: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((f, next)) = decode_at(buf, at) {
        out.push(f);
        at = next;
    }
    out
}

/// The frames to replay after frame `after` (written in epoch `after_epoch`), in order: each the
/// next number, in an epoch no older than the one before (of several, the newest). Ends at the
/// first number with no such frame.
pub fn chain(mut frames: Vec<Frame>, after: u64, after_epoch: u64) -> Vec<Frame> {
    frames.sort_by_key(|f| (f.number, std::cmp::Reverse(f.epoch)));
    let mut out: Vec<Frame> = Vec::new();
    let (mut want, mut epoch) = (after.saturating_add(1), after_epoch);
    let mut i = frames.partition_point(|f| f.number < want);
    while let Some(f) = frames.get(i).filter(|f| f.number == want) {
        // Sorted newest epoch first within a number.
        if f.epoch < epoch {
            break;
        }
        epoch = f.epoch;
        want += 1;
        let next = i + frames[i..].partition_point(|g| g.number < want);
        out.push(std::mem::replace(
            &mut frames[i],
            Frame {
                number: 0,
                epoch: 0,
                ops: Vec::new(),
            },
        ));
        i = next;
    }
    out
}

/// The open files and where the next frame goes.
pub struct Files {
    paths: [PathBuf; 2],
    files: [File; 2],
    /// Bytes each file holds (zeros past the frames).
    lens: [u64; 2],
    capacity: u64,
    /// The file written now, and the offset of its next frame.
    active: usize,
    offset: u64,
    /// The highest frame number in each file's current run (0: none that sled may still need).
    highest: [u64; 2],
}

impl Files {
    /// Opens (creating them empty when missing) the two files of `dir`, and returns them with
    /// the intact frames each holds from its start.
    pub fn open(dir: &Path, capacity: u64) -> std::io::Result<(Files, Vec<Frame>)> {
        let mut created = false;
        let mut frames = Vec::new();
        let mut open = |name: &str| -> std::io::Result<(PathBuf, File, u64)> {
            let path = dir.join(name);
            created |= !path.exists();
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut &f, &mut buf)?;
            frames.extend(scan(&buf));
            Ok((path, f, buf.len() as u64))
        };
        let (p0, f0, l0) = open(NAMES[0])?;
        let (p1, f1, l1) = open(NAMES[1])?;
        if created {
            File::open(dir)?.sync_all()?;
        }
        Ok((
            Files {
                paths: [p0, p1],
                files: [f0, f1],
                lens: [l0, l1],
                capacity: capacity.max(GROW),
                active: 0,
                offset: 0,
                highest: [0, 0],
            },
            frames,
        ))
    }

    /// The largest frame a file can take.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Writes `frames` (encoded, in number order; `numbers` their numbers) after the frames
    /// already written and fdatasyncs what was written. `flushed` is the highest frame number
    /// sled holds durably; `flush` waits for a sled flush and returns the new one (called only
    /// when the other file is still needed and the active one is full).
    ///
    /// # Errors
    /// A write, an fdatasync or the flush failed (with the path of the file).
    pub fn write(
        &mut self,
        frames: &[(u64, Vec<u8>)],
        mut flushed: u64,
        flush: &mut dyn FnMut() -> Result<u64, (PathBuf, std::io::Error)>,
    ) -> Result<(), (PathBuf, std::io::Error)> {
        let mut touched = [false, false];
        let mut i = 0;
        while i < frames.len() {
            // As many whole frames as fit in the active file, in one write.
            let mut end = self.offset;
            let mut j = i;
            while j < frames.len() && end + frames[j].1.len() as u64 <= self.capacity {
                end += frames[j].1.len() as u64;
                j += 1;
            }
            if j == i {
                if self.offset == 0 {
                    // Larger than a file (the store never asks for that).
                    return Err((
                        self.paths[self.active].clone(),
                        std::io::Error::other("a frame larger than a log file"),
                    ));
                }
                // Full: go on at the start of the other file once sled no longer needs it.
                let other = 1 - self.active;
                if self.highest[other] > flushed {
                    flushed = flush()?;
                }
                if self.highest[other] > flushed {
                    return Err((
                        self.paths[other].clone(),
                        std::io::Error::other("sled did not flush the frames this file holds"),
                    ));
                }
                self.active = other;
                self.offset = 0;
                self.highest[other] = 0;
                continue;
            }
            let a = self.active;
            let path = &self.paths[a];
            let err = |e| (path.clone(), e);
            if end > self.lens[a] {
                let grown = end.div_ceil(GROW).saturating_mul(GROW).min(self.capacity);
                let zeros = vec![0u8; (grown - self.lens[a]) as usize];
                self.files[a]
                    .write_all_at(&zeros, self.lens[a])
                    .map_err(err)?;
                self.lens[a] = grown;
            }
            let bytes: Vec<u8> = if j == i + 1 {
                frames[i].1.clone()
            } else {
                frames[i..j]
                    .iter()
                    .flat_map(|(_, b)| b.iter().copied())
                    .collect()
            };
            self.files[a]
                .write_all_at(&bytes, self.offset)
                .map_err(err)?;
            self.offset = end;
            self.highest[a] = self.highest[a].max(frames[j - 1].0);
            touched[a] = true;
            i = j;
        }
        for (k, t) in touched.iter().enumerate() {
            if *t {
                self.files[k]
                    .sync_data()
                    .map_err(|e| (self.paths[k].clone(), e))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(n: u64) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        // Ends with a value byte that is not zero, so that a frame cut short and followed by
        // zeros is never the frame again.
        vec![
            (Vec::new(), Some(Vec::new())),
            (b"s-gone".to_vec(), None),
            (
                format!("j{n}").into_bytes(),
                Some(vec![n as u8 | 1; 1 + n as usize % 7]),
            ),
        ]
    }

    fn frame(n: u64, epoch: u64) -> Vec<u8> {
        let o = ops(n);
        let borrowed: Vec<Op<'_>> = o.iter().map(|(k, v)| (k.clone(), v.as_deref())).collect();
        encode(n, epoch, &borrowed)
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        for n in 1..=20 {
            buf.extend(frame(n, 3));
        }
        buf.extend([0u8; 100]);
        let back = scan(&buf);
        assert_eq!(back.len(), 20);
        for (i, f) in back.iter().enumerate() {
            let n = i as u64 + 1;
            assert_eq!((f.number, f.epoch), (n, 3));
            assert_eq!(f.ops, ops(n));
        }
    }

    /// A frame cut anywhere, or with any one byte changed, is not read; the frames before it are.
    #[test]
    fn a_torn_or_damaged_last_frame_ends_the_scan() {
        let mut buf = Vec::new();
        for n in 1..=3 {
            buf.extend(frame(n, 1));
        }
        let whole = buf.len();
        buf.extend(frame(4, 1));
        for cut in whole..buf.len() {
            let mut torn = buf[..cut].to_vec();
            // What a torn write leaves: the old zeros (or other bytes) after the cut.
            torn.resize(buf.len() + 8, 0);
            assert_eq!(scan(&torn).len(), 3, "cut at {cut}");
        }
        for at in whole..buf.len() {
            let mut bad = buf.clone();
            bad[at] ^= 0x40;
            assert_eq!(scan(&bad).len(), 3, "byte {at} changed");
        }
        assert_eq!(scan(&buf).len(), 4);
    }

    fn f(number: u64, epoch: u64) -> Frame {
        Frame {
            number,
            epoch,
            ops: Vec::new(),
        }
    }

    fn numbers(c: &[Frame]) -> Vec<(u64, u64)> {
        c.iter().map(|f| (f.number, f.epoch)).collect()
    }

    #[test]
    fn the_chain_follows_numbers_and_never_goes_back_to_an_older_epoch() {
        // Old frames 1..=9 of epoch 1; epoch 2 rewrote from 6 on; a leftover 8 of epoch 1 after.
        let mut frames: Vec<Frame> = (1..=9).map(|n| f(n, 1)).collect();
        frames.extend((6..=7).map(|n| f(n, 2)));
        assert_eq!(
            numbers(&chain(frames.clone(), 5, 1)),
            [(6, 2), (7, 2)],
            "epoch 2's run, not epoch 1's leftovers 8 and 9"
        );
        // Sled already holds 7 of epoch 2: nothing to replay (8 of epoch 1 is older).
        assert!(chain(frames.clone(), 7, 2).is_empty());
        // A gap ends the chain.
        let gap = vec![f(1, 1), f(2, 1), f(4, 1)];
        assert_eq!(numbers(&chain(gap, 0, 0)), [(1, 1), (2, 1)]);
        // Nothing after what sled holds.
        assert!(chain(frames, 9, 2).is_empty());
    }

    #[test]
    fn writing_moves_to_the_other_file_only_once_sled_holds_its_frames() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut files, found) = Files::open(dir.path(), GROW).expect("open");
        assert!(found.is_empty());
        let big = |n: u64| {
            let v = vec![n as u8; 300_000];
            encode(n, 1, &[(b"k".to_vec(), Some(&v[..]))])
        };
        let mut flushes = 0;
        let flush = |upto: u64| move || -> Result<u64, (PathBuf, std::io::Error)> { Ok(upto) };
        // Three fit in the first file, the fourth goes to the second.
        for n in 1..=4 {
            files
                .write(&[(n, big(n))], 0, &mut flush(0))
                .expect("write");
        }
        assert_eq!(files.active, 1);
        // The second file fills too; the first still holds frames sled lacks: a flush is asked.
        for n in 5..=6 {
            files
                .write(&[(n, big(n))], 0, &mut flush(0))
                .expect("write");
        }
        let err = files
            .write(&[(7, big(7))], 0, &mut flush(2))
            .expect_err("sled lacks frame 3 of the first file");
        assert!(err.1.to_string().contains("did not flush"), "{}", err.1);
        files
            .write(&[(7, big(7))], 0, &mut || {
                flushes += 1;
                Ok(6)
            })
            .expect("write after a flush");
        assert_eq!((files.active, flushes), (0, 1));
        drop(files);
        let (_, found) = Files::open(dir.path(), GROW).expect("reopen");
        let mut got: Vec<u64> = found.iter().map(|f| f.number).collect();
        got.sort_unstable();
        // File 0: 7, then the leftovers 2 and 3 (behind a frame boundary that moved); file 1.
        assert!(
            got.contains(&7) && got.contains(&4) && got.contains(&6),
            "{got:?}"
        );
        assert_eq!(
            numbers(&chain(found, 6, 1)),
            [(7, 1)],
            "the old frames are never replayed after 7"
        );
        for name in NAMES {
            assert_eq!(
                std::fs::metadata(dir.path().join(name))
                    .expect("meta")
                    .len(),
                GROW,
                "{name} stays at its capacity"
            );
        }
    }
}
