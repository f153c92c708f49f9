//! JSONL file replay: one event per line, read as fast as the dataflow takes it.
//!
//! With several workers the file is cut into equal byte ranges, one per worker,
//! each extended to whole lines (a line belongs to the range its first byte is
//! in), so every line is read exactly once. Each range has its own watermark,
//! like a Kafka partition: the frontier is the slowest range's watermark.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use pulse_core::dead_letter::Position;
use pulse_core::{DeadLetter, Event, Projection};

use crate::source::{EventReader, ReadBatch, ReadStatus};

const CHUNK: usize = 1 << 20;

/// Reads one worker's share of a JSONL file.
pub struct JsonlFileReader {
    component: String,
    path: PathBuf,
    file: File,
    /// Offset of `buffer[0]` in the file.
    buffer_offset: u64,
    /// Read-ahead; `buffer[..filled]` holds file bytes not yet parsed.
    buffer: Vec<u8>,
    filled: usize,
    /// Lines starting at or after this offset belong to the next worker.
    end: u64,
    /// Lines read so far in this range, to number dead letters.
    lines_in_range: u64,
    /// Lines before this range, counted only when a dead letter needs it
    /// (or why they could not be counted).
    lines_before_range: Option<Result<u64, String>>,
    range_start: u64,
    eof: bool,
    /// The parts of each event the pipeline reads.
    projection: Projection,
}

impl JsonlFileReader {
    /// Opens worker `worker` of `peers`'s share of the file at `path`.
    pub fn open(component: &str, path: &Path, worker: usize, peers: usize) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        let share = |i: usize| (u128::from(len) * i as u128 / peers as u128) as u64;
        let (mut start, end) = (share(worker), share(worker + 1));
        if start > 0 {
            // Skip the line that began in the previous range (from the byte before
            // ours, so that a range starting right after a newline skips nothing).
            file.seek(SeekFrom::Start(start - 1))?;
            let mut skipped = Vec::new();
            BufReader::new(&file).read_until(b'\n', &mut skipped)?;
            start = if skipped.ends_with(b"\n") {
                start - 1 + skipped.len() as u64
            } else {
                len
            };
        }
        file.seek(SeekFrom::Start(start))?;
        Ok(Self {
            component: component.to_owned(),
            path: path.to_owned(),
            file,
            buffer_offset: start,
            buffer: vec![0; CHUNK * 2],
            filled: 0,
            end,
            lines_in_range: 0,
            lines_before_range: (start == 0).then_some(Ok(0)),
            range_start: start,
            eof: start >= end,
            projection: Projection::ALL,
        })
    }

    /// Keeps only the parts of each event that `projection` asks for.
    pub fn with_projection(mut self, projection: Projection) -> Self {
        self.projection = projection;
        self
    }

    /// The lines before this range, counted through the file already open (a
    /// file renamed or removed since is still counted), at their own offsets
    /// so the read position does not move.
    fn lines_before_range(&mut self) -> Result<u64, String> {
        if let Some(lines) = &self.lines_before_range {
            return lines.clone();
        }
        // Streamed through a fixed buffer: the prefix can be most of a large file.
        let mut chunk = vec![0; CHUNK];
        let mut lines = 0;
        let mut at = 0;
        let counted = loop {
            let want = CHUNK.min((self.range_start - at) as usize);
            if want == 0 {
                break Ok(lines);
            }
            match self.file.read_at(&mut chunk[..want], at) {
                Ok(0) => break Ok(lines),
                Ok(read) => {
                    lines += memchr::memchr_iter(b'\n', &chunk[..read]).count() as u64;
                    at += read as u64;
                }
                Err(error) => break Err(format!("counting the lines before byte {at} failed: {error}")),
            }
        };
        self.lines_before_range = Some(counted.clone());
        counted
    }

    fn dead_letter(&mut self, line: &[u8], offset: u64, mut reason: String) -> DeadLetter {
        // Line 0 means unknown; the reason says why (the byte offset is exact).
        let line_number = match self.lines_before_range() {
            Ok(before) => before + self.lines_in_range,
            Err(why) => {
                reason.push_str(&format!(" (line number unknown: {why})"));
                0
            }
        };
        DeadLetter {
            component: self.component.clone(),
            reason,
            position: Position::File {
                path: self.path.display().to_string(),
                line: line_number,
                offset,
            },
            raw: String::from_utf8_lossy(line).into_owned(),
        }
    }
}

impl EventReader for JsonlFileReader {
    fn read(&mut self, batch: &mut ReadBatch) -> ReadStatus {
        if self.eof {
            return ReadStatus::Finished;
        }
        if self.buffer.len() - self.filled < CHUNK {
            // A line longer than the read-ahead: make room for it.
            self.buffer.resize(self.buffer.len() * 2, 0);
        }
        let read = match self.file.read(&mut self.buffer[self.filled..]) {
            Ok(read) => read,
            Err(error) => {
                // Not the end of the file: what follows was not read, so the run fails.
                let at = self.buffer_offset + self.filled as u64;
                self.eof = true;
                return ReadStatus::Failed(format!("reading {} failed at byte {at}: {error}", self.path.display()));
            }
        };
        self.filled += read;
        let at_eof = read == 0;

        let mut consumed = 0;
        let buffer = std::mem::take(&mut self.buffer);
        let filled = self.filled;
        loop {
            let line_offset = self.buffer_offset + consumed as u64;
            if line_offset >= self.end {
                self.eof = true;
                break;
            }
            let rest = &buffer[consumed..filled];
            let (line, next) = match memchr::memchr(b'\n', rest) {
                Some(newline) => (&rest[..newline], consumed + newline + 1),
                None if at_eof && !rest.is_empty() => (rest, filled),
                None => break,
            };
            consumed = next;
            self.lines_in_range += 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match Event::from_json_projected(line, self.projection) {
                Ok(event) => match batch.admit(event.ts) {
                    None => batch.push(0, event),
                    Some(reason) => {
                        let letter = self.dead_letter(line, line_offset, reason);
                        batch.dead_letters.push(letter);
                    }
                },
                Err(error) => {
                    let letter = self.dead_letter(line, line_offset, error.to_string());
                    batch.dead_letters.push(letter);
                }
            }
        }
        self.buffer = buffer;
        self.buffer.copy_within(consumed..filled, 0);
        self.filled = filled - consumed;
        self.buffer_offset += consumed as u64;
        if at_eof {
            self.eof = true;
        }
        if self.eof {
            ReadStatus::Finished
        } else {
            ReadStatus::More
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn metric(ts: u64) -> String {
        format!(r#"{{"ts":{ts},"tenant":"t","source":"s","kind":"metric","metric":"cpu","value":1}}"#)
    }

    fn read_all(path: &Path, worker: usize, peers: usize) -> ReadBatch {
        let mut reader = JsonlFileReader::open("file", path, worker, peers).unwrap();
        let mut batch = ReadBatch::default();
        while reader.read(&mut batch) != ReadStatus::Finished {}
        batch
    }

    #[test]
    fn every_line_is_read_once_whatever_the_split() {
        let dir = std::env::temp_dir().join(format!("pulse-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let mut file = File::create(&path).unwrap();
        for ts in 0..1000 {
            writeln!(file, "{}", metric(ts)).unwrap();
        }
        write!(file, "{}", metric(1000)).unwrap(); // no trailing newline
        drop(file);
        for peers in [1, 2, 3, 7] {
            let mut seen: Vec<u64> = (0..peers)
                .flat_map(|w| read_all(&path, w, peers).take_events())
                .map(|e| e.ts)
                .collect();
            seen.sort();
            assert_eq!(seen, (0..=1000).collect::<Vec<_>>(), "peers={peers}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A read error in the middle of the file is not its end: the source fails
    /// with the path and the byte offset where reading stopped.
    #[test]
    fn a_read_error_fails_with_the_path_and_the_byte_offset() {
        let dir = std::env::temp_dir().join(format!("pulse-file-error-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        // Two read-aheads' worth of lines, so the first read ends mid-file.
        let lines: Vec<String> = (0..(3 * CHUNK / 80) as u64).map(metric).collect();
        std::fs::write(&path, lines.join("\n")).unwrap();
        let mut reader = JsonlFileReader::open("file", &path, 0, 1).unwrap();
        let mut batch = ReadBatch::default();
        assert_eq!(reader.read(&mut batch), ReadStatus::More);
        let position = reader.buffer_offset + reader.filled as u64;
        assert!(position > 0 && position < std::fs::metadata(&path).unwrap().len());
        // The descriptor now refuses to be read (EISDIR), as a failing disk would (EIO).
        reader.file = File::open(&dir).unwrap();
        let status = reader.read(&mut batch);
        let expected = format!("reading {} failed at byte {position}: ", path.display());
        assert!(
            matches!(&status, ReadStatus::Failed(message) if message.starts_with(&expected)),
            "{status:?}"
        );
        assert_eq!(reader.read(&mut batch), ReadStatus::Finished, "and it reads no further");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The lines before a worker's range are counted through the file it has
    /// open: removing the file meanwhile no longer turns line numbers into 0.
    #[test]
    fn dead_letters_keep_their_line_numbers_when_the_file_is_removed() {
        let dir = std::env::temp_dir().join(format!("pulse-file-removed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let mut lines: Vec<String> = (0..100).map(metric).collect();
        lines[80] = "{broken".to_owned();
        std::fs::write(&path, lines.join("\n")).unwrap();
        let mut reader = JsonlFileReader::open("file", &path, 1, 2).unwrap();
        std::fs::remove_file(&path).unwrap();
        let mut batch = ReadBatch::default();
        while reader.read(&mut batch) == ReadStatus::More {}
        assert_eq!(batch.dead_letters.len(), 1);
        assert!(
            matches!(batch.dead_letters[0].position, Position::File { line: 81, .. }),
            "{:?}",
            batch.dead_letters[0]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_lines_become_dead_letters_with_their_line_number() {
        let dir = std::env::temp_dir().join(format!("pulse-file-dl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let lines = [
            metric(1),
            "{broken".to_owned(),
            String::new(),
            metric(2),
            r#"{"ts":3}"#.to_owned(),
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        let mut letters: Vec<DeadLetter> = (0..2).flat_map(|w| read_all(&path, w, 2).dead_letters).collect();
        letters.sort_by_key(|l| l.raw.clone());
        assert_eq!(letters.len(), 2);
        assert_eq!(letters[0].raw, r#"{"ts":3}"#);
        assert!(
            matches!(letters[0].position, Position::File { line: 5, .. }),
            "{:?}",
            letters[0].position
        );
        assert!(letters[0].reason.contains("missing field"), "{}", letters[0].reason);
        assert!(
            matches!(letters[1].position, Position::File { line: 2, offset, .. } if offset == metric(1).len() as u64 + 1)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
