//! JSONL file sink.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::writer::LineSink;

/// Appends (or, by default, rewrites) a JSONL file, one record per line.
pub struct JsonlFile {
    file: File,
    buffer: Vec<u8>,
}

impl JsonlFile {
    /// Creates `path` (and its directory); `append` keeps what is already there.
    pub fn create(path: &Path, append: bool) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)?;
        Ok(Self {
            file,
            buffer: Vec::with_capacity(1 << 16),
        })
    }
}

impl LineSink for JsonlFile {
    fn write_batch(&mut self, lines: &[String]) -> io::Result<()> {
        for line in lines {
            self.buffer.extend_from_slice(line.as_bytes());
            self.buffer.push(b'\n');
        }
        // One write of whole lines: a concurrent reader sees complete lines only.
        self.file.write_all(&self.buffer)?;
        self.buffer.clear();
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
