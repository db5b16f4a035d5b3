//! The I/O layer under the spent set's durable files: the journal, its durable mark and the
//! checkpoint. Everything the spent set promises about durability rests on these few
//! operations, so they sit behind a trait: [`FsDisk`] is the real file system, and the
//! fault simulator (`crate::spentset::sim`) is a disk that tears, loses, flips and refuses
//! writes on demand, deterministically from a seed.
//!
//! The memory-mapped bloom filters and tables are *not* written through this layer: they
//! are caches of the journal, sealed with a checksum on a clean close and rebuilt from the
//! journal whenever they are missing, stale, unsealed or damaged.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// One durable file: positional reads, appends, in-place writes, sync, truncation.
pub trait JournalIo: Send {
    /// Current length.
    fn len(&self) -> u64;
    /// Whether nothing was written yet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Appends at the end.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Overwrites `bytes.len()` bytes at `offset` (extending the file if needed).
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything written durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes (recovery only) and makes that durable.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// A directory of durable files, named relative to it.
pub trait Disk: Send {
    /// The file handle type.
    type File: JournalIo;
    /// Opens `name`, creating it empty if absent.
    fn open(&self, name: &str) -> io::Result<Self::File>;
    /// The whole content of a small file, or `None` if it does not exist.
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Replaces `name` with `bytes` atomically and durably (all or nothing after a crash).
    fn replace(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// The path to show in messages.
    fn path(&self, name: &str) -> PathBuf;
}

/// A real file.
pub struct FileIo {
    file: File,
    len: u64,
}

impl FileIo {
    /// Opens or creates the file at `path`.
    pub fn open(path: &Path) -> io::Result<FileIo> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.seek(SeekFrom::End(0))?;
        Ok(FileIo { file, len })
    }
}

impl JournalIo for FileIo {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Err(e) = self.file.write_all_at(bytes, self.len) {
            // A short write (ENOSPC half way) must not leave a partial frame that a later
            // append would follow: cut it back. If even that fails, the journal is poisoned
            // by the caller and recovery treats the tail as torn.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += bytes.len() as u64;
        Ok(())
    }
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, offset)?;
        self.len = self.len.max(offset + bytes.len() as u64);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.file.sync_all()?;
        self.len = len;
        Ok(())
    }
}

/// The real file system: files in one directory.
#[derive(Clone, Debug)]
pub struct FsDisk {
    dir: PathBuf,
}

impl FsDisk {
    /// Files under `dir`.
    pub fn new(dir: &Path) -> FsDisk {
        FsDisk {
            dir: dir.to_owned(),
        }
    }
}

/// Writes `bytes` to `path` atomically: a temp file unique to this process, fsync, rename,
/// fsync of the directory. Readers see the old or the new content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

impl Disk for FsDisk {
    type File = FileIo;
    fn open(&self, name: &str) -> io::Result<FileIo> {
        FileIo::open(&self.dir.join(name))
    }
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.dir.join(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn replace(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        write_atomic(&self.dir.join(name), bytes, 0o644)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}
