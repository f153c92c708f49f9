//! JSONL file sink, optionally capped in size by rotation.
//!
//! With `max_bytes`, a batch that would take the file past the cap first
//! rotates it: the file becomes `PATH.1` (replacing the previous one) and a
//! new, empty `PATH` takes the batch. So at most about `2 × max_bytes` stay on
//! disk and the newest lines are always in `PATH`. A batch is never split
//! across the two files (a reader sees whole batches), so one batch larger
//! than the cap makes a file larger than the cap.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::writer::LineSink;

/// Appends (or, by default, rewrites) a JSONL file, one record per line.
pub struct JsonlFile {
    path: PathBuf,
    file: File,
    buffer: Vec<u8>,
    /// Rotate before the file would pass this many bytes.
    max_bytes: Option<u64>,
    /// Bytes in the current file.
    written: u64,
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
        let written = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            file,
            buffer: Vec::with_capacity(1 << 16),
            max_bytes: None,
            written,
        })
    }

    /// Caps the file at `max_bytes` by rotating it to `PATH.1` (see the module docs).
    pub fn with_max_bytes(mut self, max_bytes: Option<u64>) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Where the previous file goes when this one is rotated: `PATH.1`.
    pub fn rotated_path(path: &Path) -> PathBuf {
        let mut rotated = path.as_os_str().to_owned();
        rotated.push(".1");
        PathBuf::from(rotated)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        std::fs::rename(&self.path, Self::rotated_path(&self.path))?;
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

impl LineSink for JsonlFile {
    fn write_batch(&mut self, lines: &[String]) -> io::Result<()> {
        for line in lines {
            self.buffer.extend_from_slice(line.as_bytes());
            self.buffer.push(b'\n');
        }
        let size = self.buffer.len() as u64;
        if self
            .max_bytes
            .is_some_and(|max| self.written > 0 && self.written + size > max)
        {
            let rotated = self.rotate();
            if rotated.is_err() {
                self.buffer.clear();
                return rotated;
            }
        }
        // One write of whole lines: a concurrent reader sees complete lines only.
        let written = self.file.write_all(&self.buffer);
        self.buffer.clear();
        written?;
        self.written += size;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_capped_file_rotates_to_dot_1_and_keeps_the_newest_lines() {
        let dir = std::env::temp_dir().join(format!("pulse-file-sink-{}", std::process::id()));
        let path = dir.join("windows.jsonl");
        let mut sink = JsonlFile::create(&path, false).unwrap().with_max_bytes(Some(100));
        // Batches of two 20-byte lines (21 with the newline): two batches fit, a third does not.
        let batch = |n: usize| vec![format!("{n:0>19}a"), format!("{n:0>19}b")];
        for n in 0..7 {
            sink.write_batch(&batch(n)).unwrap();
            sink.flush().unwrap();
            let size = std::fs::metadata(&path).unwrap().len();
            assert!(size <= 100, "batch {n}: {size} bytes");
        }
        let current = lines_of(&path);
        let previous = lines_of(&JsonlFile::rotated_path(&path));
        assert_eq!(current, [batch(6)].concat(), "the newest batch is in the file");
        assert_eq!(previous, [batch(4), batch(5)].concat(), "the batches before it in .1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_a_cap_the_file_only_grows() {
        let dir = std::env::temp_dir().join(format!("pulse-file-sink-uncapped-{}", std::process::id()));
        let path = dir.join("out.jsonl");
        let mut sink = JsonlFile::create(&path, false).unwrap();
        for n in 0..50 {
            sink.write_batch(&[format!("line {n}")]).unwrap();
        }
        sink.flush().unwrap();
        assert_eq!(lines_of(&path).len(), 50);
        assert!(!JsonlFile::rotated_path(&path).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
