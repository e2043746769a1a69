//! The embedded store's journal: where an acknowledged change is made
//! durable, so that the redb commit beside it need not be.
//!
//! Why: a durable redb commit writes every B-tree page the transaction
//! changed (about 13 pages of 4 KiB for one enqueue) and then flushes, and
//! a flush's tail latency grows with what it has to write. An enqueue's
//! 202 waits for that flush. Here the group's changes are written as one
//! record at the journal's write position and flushed with one
//! `fdatasync`: the cost of a bare small write, which is what the issue's
//! target measures against. redb commits the same changes without a flush
//! (`Durability::None`); a durable redb commit (a checkpoint) from time to
//! time makes them redundant, and the journal starts over at its
//! beginning.
//!
//! The file is written full of zeros when it is made, and then only ever
//! overwritten in place: a flush then carries the record's data alone,
//! never a change of the file's size or extents.
//!
//! A record is a 16-byte header (payload length and CRC-32, both
//! little-endian `u32`, then the batch's sequence number as a `u64`) and
//! the payload. The CRC covers the length, the sequence number and the
//! payload, so a record torn by a crash, or the zeros past the last one,
//! end the scan at open. Records left from before the journal last
//! started over are still whole on disk; the store knows them by their
//! sequence number, which is below the one its last durable commit
//! recorded (see `embedded::restore`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The header's size: length, CRC, sequence number.
const HEADER: usize = 16;

/// The journal file, open for writing at `at`.
#[derive(Debug)]
pub(super) struct Journal {
    file: File,
    path: PathBuf,
    /// Where the next record goes.
    at: u64,
    /// Where the last record written starts, while it may still need to be
    /// voided (see [`Journal::void_last`]).
    last: Option<u64>,
    capacity: u64,
}

/// One record found by [`read`]: its sequence number and payload.
pub(super) type Record = (u64, Vec<u8>);

/// The journal beside the queue file at `queue`.
pub(super) fn path_for(queue: &Path) -> PathBuf {
    let mut name = queue.file_name().unwrap_or_default().to_os_string();
    name.push("-journal");
    queue.with_file_name(name)
}

/// Every whole record in the file at `path`, in the order written, up to
/// the first that is torn, zero or past the end; none if there is no file.
/// An error only when the file is there and cannot be read: what it holds
/// may be acknowledged deliveries, so the store must not open without it.
pub(super) fn read(path: &Path) -> std::io::Result<Vec<Record>> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut file) => file.read_to_end(&mut bytes)?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + HEADER) {
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if len == 0 || checksum(len as u32, seq, payload) != crc {
            break;
        }
        records.push((seq, payload.to_vec()));
        at += HEADER + len;
    }
    Ok(records)
}

fn checksum(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

impl Journal {
    /// Opens the journal at `path` for writing from its beginning, first
    /// making it `capacity` bytes of zeros if it is shorter (and flushing
    /// that, and the directory's entry for a new file). Call only once
    /// what the file holds has been [`read`] and made durable elsewhere.
    pub(super) fn create(path: &Path, capacity: u64) -> std::io::Result<Journal> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let had = file.metadata()?.len();
        if had < capacity {
            // Written, not `set_len`: a sparse file would allocate its
            // blocks at the first flush of each, the cost this avoids.
            let zeros = vec![0u8; 1 << 20];
            let mut at = had;
            while at < capacity {
                let n = (capacity - at).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
            file.sync_all()?;
            if had == 0 {
                if let Some(dir) = path.parent() {
                    let dir = if dir.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        dir
                    };
                    File::open(dir)?.sync_all()?;
                }
            }
        }
        Ok(Journal {
            file,
            path: path.to_owned(),
            at: 0,
            last: None,
            capacity,
        })
    }

    /// Whether a record of `payload` bytes fits before the end.
    pub(super) fn fits(&self, payload: usize) -> bool {
        self.at + (HEADER + payload) as u64 <= self.capacity
    }

    /// Whether anything was written since the journal last started over.
    pub(super) fn is_empty(&self) -> bool {
        self.at == 0
    }

    /// Writes one record and, if `flush`, flushes it with every record
    /// before it: once this returns `Ok`, those records survive a crash.
    /// An unflushed record is flushed by the next flush (one `fdatasync`
    /// covers the whole file), or lost in a crash before it, torn or whole;
    /// the scan at open stops at a torn one, and nothing after it was
    /// flushed. The caller checked [`Journal::fits`].
    pub(super) fn append(&mut self, seq: u64, payload: &[u8], flush: bool) -> std::io::Result<()> {
        let len = u32::try_from(payload.len()).map_err(std::io::Error::other)?;
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.write_all(&len.to_le_bytes())?;
        record.write_all(&checksum(len, seq, payload).to_le_bytes())?;
        record.write_all(&seq.to_le_bytes())?;
        record.write_all(payload)?;
        self.last = Some(self.at);
        self.file.write_all_at(&record, self.at)?;
        if flush {
            self.file.sync_data()?;
        }
        self.at += record.len() as u64;
        Ok(())
    }

    /// Unwrites the last record (its header becomes zeros, flushed): its
    /// changes were not committed after all, and a crash must not bring
    /// them back. The next record goes where it was.
    pub(super) fn void_last(&mut self) -> std::io::Result<()> {
        if let Some(at) = self.last.take() {
            self.file.write_all_at(&[0u8; HEADER], at)?;
            self.file.sync_data()?;
            self.at = at;
        }
        Ok(())
    }

    /// Starts over at the beginning: everything written so far is in a
    /// durable commit of the store. Writes nothing: the records left are
    /// known stale by their sequence numbers.
    pub(super) fn restart(&mut self) {
        self.at = 0;
        self.last = None;
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("hookguard-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn records_read_back_in_order_up_to_a_torn_one() {
        let dir = dir("torn");
        let path = dir.join("q-journal");
        let mut journal = Journal::create(&path, 4096).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
        journal.append(7, b"first", true).unwrap();
        journal.append(8, b"second", true).unwrap();
        journal.append(9, b"third", true).unwrap();
        assert_eq!(
            read(&path).unwrap(),
            vec![
                (7, b"first".to_vec()),
                (8, b"second".to_vec()),
                (9, b"third".to_vec())
            ]
        );
        // A torn write of the second record's payload ends the scan there.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"X", (HEADER + 5 + HEADER + 2) as u64)
            .unwrap();
        assert_eq!(read(&path).unwrap(), vec![(7, b"first".to_vec())]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_voided_record_is_gone_and_the_next_takes_its_place() {
        let dir = dir("void");
        let path = dir.join("q-journal");
        let mut journal = Journal::create(&path, 4096).unwrap();
        journal.append(1, b"kept", true).unwrap();
        journal.append(2, b"not committed", true).unwrap();
        journal.void_last().unwrap();
        assert_eq!(read(&path).unwrap(), vec![(1, b"kept".to_vec())]);
        journal.append(3, b"next", true).unwrap();
        assert_eq!(
            read(&path).unwrap(),
            vec![(1, b"kept".to_vec()), (3, b"next".to_vec())]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn after_a_restart_new_records_overwrite_old_ones_and_the_rest_read_as_stale() {
        let dir = dir("restart");
        let path = dir.join("q-journal");
        let mut journal = Journal::create(&path, 4096).unwrap();
        journal.append(1, b"aaaa", true).unwrap();
        journal.append(2, b"bbbb", true).unwrap();
        assert!(!journal.is_empty());
        journal.restart();
        assert!(journal.is_empty());
        journal.append(3, b"cccc", true).unwrap();
        // The old second record is still whole after the new first one:
        // the store skips it by its sequence number.
        assert_eq!(
            read(&path).unwrap(),
            vec![(3, b"cccc".to_vec()), (2, b"bbbb".to_vec())]
        );
        assert!(journal.fits(4096 - 2 * (HEADER + 4) - HEADER));
        assert!(!journal.fits(4096));
        // A journal made again over the same file keeps its size.
        drop(journal);
        let again = Journal::create(&path, 4096).unwrap();
        assert!(again.is_empty());
        assert_eq!(read(&path).unwrap().len(), 2);
        assert_eq!(read(&dir.join("none")).unwrap(), vec![]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
