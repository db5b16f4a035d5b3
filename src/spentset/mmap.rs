//! The one place in the `microcash` crate with `unsafe`: memory-mapping files (memmap2).
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use memmap2::MmapMut;

/// A file mapped read-write into memory.
///
/// # Safety argument
/// Mapping a file is unsafe because another process could change or truncate it under us.
/// Every mapped file lives in a store directory that [`super::SpentSet`] holds an exclusive
/// lock on (`LOCK`, `File::try_lock`) for as long as any map exists, and the store never
/// resizes a file while it is mapped (growth writes a new file and swaps it in).
pub struct MappedFile {
    _file: File,
    map: MmapMut,
}

impl MappedFile {
    /// Creates (or truncates) `path` to `len` zero bytes and maps it.
    pub fn create(path: &Path, len: usize) -> io::Result<MappedFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.set_len(len as u64)?;
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
}
