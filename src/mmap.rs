//! The one place in the `microcash` crate with `unsafe`: memory-mapping files (memmap2) —
//! the spent set's bloom filters and tables (read-write) and batch files (read-only).
#![allow(
    unsafe_code,
    reason = "mapping a file is unsafe in memmap2; see each SAFETY line"
)]

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use memmap2::{Mmap, MmapMut, UncheckedAdvice};

/// A file mapped read-write into memory.
///
/// # Safety argument
/// Mapping a file is unsafe because another process could change or truncate it under us.
/// Every mapped file lives in a store directory whose owner holds an exclusive
/// lock on (`LOCK`, `File::try_lock`) for as long as any map exists, and the store never
/// resizes a file while it is mapped (growth writes a new file and swaps it in).
/// `crate::spentset::SpentSet` holds that lock.
pub struct MappedFile {
    _file: File,
    map: MmapMut,
}

impl MappedFile {
    /// Creates (or truncates) `path` to `len` zero bytes, **allocated** on disk, and maps
    /// it. A sparse file would let the first write into an unbacked page fault with SIGBUS
    /// on a full disk; allocating up front turns that into this call's ENOSPC error.
    pub fn create(path: &Path, len: usize) -> io::Result<MappedFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        allocate(&file, len as u64)?;
        Self::map(file)
    }

    /// Maps an existing file.
    pub fn open(path: &Path) -> io::Result<MappedFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Self::map(file)
    }

    fn map(file: File) -> io::Result<MappedFile> {
        // SAFETY: see the type's safety argument — the store lock excludes other writers and
        // we never truncate a mapped file.
        let map = unsafe { MmapMut::map_mut(&file)? };
        Ok(MappedFile { _file: file, map })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The mapped bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }

    /// Writes dirty pages back to the file (msync) and waits.
    pub fn flush(&self) -> io::Result<()> {
        self.map.flush()
    }

    /// Writes back the dirty pages of `[offset, offset + len)` and waits.
    pub fn flush_range(&self, offset: usize, len: usize) -> io::Result<()> {
        self.map.flush_range(offset, len)
    }
}

/// Gives `file` `len` bytes of allocated, zeroed blocks.
fn allocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::OPNOTSUPP => {
            // File systems without fallocate: write the zeros ourselves (same guarantee).
            file.set_len(0)?;
            let zeros = vec![0u8; 1 << 20];
            let mut at = 0;
            while at < len {
                let n = (len - at).min(zeros.len() as u64) as usize;
                // n ≤ zeros.len(): `get` never falls back.
                file.write_all_at(zeros.get(..n).unwrap_or(&zeros), at)?;
                at += n as u64;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// A batch file mapped read-only.
///
/// # Safety argument
/// Batch files are inputs handed to the engine by the back office; the engine never writes
/// them. If another process truncated one while it is mapped, reads past the new end would
/// fault (SIGBUS); the clearing job documents that batch files must not be modified while
/// being cleared (they are written once, then submitted).
pub struct ReadOnlyMap {
    map: Mmap,
}

impl ReadOnlyMap {
    /// Maps `path` read-only. An empty file maps to an empty slice.
    pub fn open(path: &Path) -> io::Result<ReadOnlyMap> {
        let file = File::open(path)?;
        // SAFETY: see the type's safety argument — batch files are immutable while cleared.
        let map = unsafe { Mmap::map(&file)? };
        Ok(ReadOnlyMap { map })
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Tells the kernel the pages of `[offset, offset + len)` are no longer needed, so
    /// clearing a large file keeps resident memory bounded. Errors are ignored (advice).
    pub fn release(&self, offset: usize, len: usize) {
        let page = 4096;
        let start = offset / page * page;
        let end = (offset + len).min(self.map.len());
        if end <= start {
            return;
        }
        // SAFETY: DONTNEED on a read-only, file-backed, shared mapping only drops clean page
        // cache references; later reads fault the same bytes back in from the file. No
        // reference into the released range is held across this call by the reader (it
        // copies each record out before releasing).
        let _ = unsafe {
            self.map
                .unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start)
        };
    }
}
